"""Bad input (DESIGN.md): damaged packets skipped, one rule and one message in every command, one-line
CLI errors naming the file or setting, safe folder scans, checked labels, a shared feature cache."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import train_tiny_late_fusion, write_clip
from helpers.audio import decode_audio
from helpers.config import GENRES
from helpers.frames import decode_video
from helpers.media import MediaError


def vgenre(*args, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "helpers", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def damage_packets(src: Path, dst: Path, kind: str, which: list[int]) -> Path:
    """A copy of *src* whose *which* packets of its first *kind* stream are overwritten with 0xFF
    bytes in place (the container's index stays intact, as when a disk sector goes bad)."""
    with av.open(str(src)) as container:
        stream = container.streams.audio[0] if kind == "audio" else container.streams.video[0]
        spans = [(p.pos, p.size) for p in container.demux(stream) if p.size]
    data = bytearray(src.read_bytes())
    for k in which:
        pos, size = spans[k]
        data[pos:pos + size] = b"\xff" * size
    dst.write_bytes(bytes(data))
    return dst


def write_manifest_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Path]:
    import imageio_ffmpeg

    root = tmp_path_factory.mktemp("damaged")
    source = write_clip(root / "source.mp4", seconds=4.0)
    good = root / "good.mp4"  # index up front, so a file cut short still opens
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), "-c", "copy",
                    "-movflags", "+faststart", str(good)], check=True)
    cut = root / "cut tail.mp4"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.6)])
    return {"good": good, "cut": cut,
            "first_audio": damage_packets(good, root / "first audio packet.mp4", "audio", [0]),
            "middle_audio": damage_packets(good, root / "middle audio packet.mp4", "audio", [40]),
            "middle_video": damage_packets(good, root / "middle video packet.mp4", "video", [40])}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small late-fusion model on random features of the smoke profile's shapes."""
    return train_tiny_late_fusion(tmp_path_factory.mktemp("tiny_model"))


# -- 1. decode what can be decoded ---------------------------------------------------------------

def test_damaged_first_audio_packet_is_skipped_not_the_track(damaged):
    audio = decode_audio(damaged["first_audio"], 16000)
    assert audio.share >= 0.9 and audio.skipped_packets == 1


@pytest.mark.parametrize("name, kind", [("middle_audio", "audio"), ("middle_video", "video")])
def test_damaged_middle_packet_is_skipped(damaged, name, kind):
    clip = decode_audio(damaged[name], 16000) if kind == "audio" else decode_video(damaged[name], [(4.0, None)])
    assert clip.skipped_packets == 1 and clip.share >= 0.9
    assert decode_audio(damaged["good"], 16000).skipped_packets == 0


def test_cut_tail_gives_one_message_in_validate_and_features_and_a_warning_in_predict(damaged, tiny_model, tmp_path):
    """Training data keep the 90% rule (validate, features: one message); predict labels what decodes
    and gives the share in a warning."""
    with pytest.raises(MediaError) as err:
        decode_video(damaged["cut"], [(4.0, None)])
    message = str(err.value)
    assert message.startswith(f"{damaged['cut']}: video decodes only ") and "of 4.0 s" in message
    validate = vgenre("validate", damaged["cut"])
    assert validate.returncode == 1 and f"bad: {err.value.reason}" in validate.stdout
    manifest = write_manifest_csv(tmp_path / "manifest.csv", [{"path": str(damaged["cut"]), "genre": "Action"}])
    features = vgenre("features", "--profile", "smoke", "--manifest", manifest)
    assert features.returncode == 1 and f"bad: {message}" in features.stderr
    predict = vgenre("predict", damaged["cut"], damaged["first_audio"], "--model", tiny_model, "--json")
    assert predict.returncode == 0 and "Traceback" not in validate.stderr + features.stderr + predict.stderr
    cut, kept = [json.loads(line) for line in predict.stdout.splitlines()]  # the damaged first packet is kept
    assert cut["genre"] in GENRES and 0 < cut["decoded_share"] < 0.9
    assert cut["warning"].startswith(f"only {cut['decoded_share']:.0%} of the video decodes")
    assert f"warning: {damaged['cut']}: only " in predict.stderr
    assert kept["path"] == str(damaged["first_audio"]) and kept["has_audio"] and not kept["warning"]
    assert kept["duration"] == pytest.approx(4.0, abs=0.05) and kept["decoded_share"] == 1.0


def test_an_audio_only_file_is_predicted_by_the_audio_branch(damaged, tiny_model, tmp_path):
    import imageio_ffmpeg

    from helpers.predict import Predictor

    sound = tmp_path / "sound only.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(damaged["good"]), "-vn",
                    "-c:a", "copy", str(sound)], check=True)
    p = Predictor(tiny_model).predict_file(sound)
    assert p.genre in GENRES and p.has_audio and "audio branch alone" in p.note
    assert set(p.ood_parts) <= {"audio"} and p.duration == pytest.approx(4.0, abs=0.1)


def test_undecodable_audio_falls_back_to_the_video_branch(damaged, tiny_model, tmp_path):
    from helpers.predict import Predictor

    with av.open(str(damaged["good"])) as container:
        n_audio = sum(1 for p in container.demux(container.streams.audio[0]) if p.size)
    mute = damage_packets(damaged["good"], tmp_path / "mute.mp4", "audio", list(range(n_audio)))
    p = Predictor(tiny_model).predict_file(mute)
    assert not p.has_audio and "audio cannot be decoded" in p.note and "video branch alone" in p.note


# -- 3. one-line errors --------------------------------------------------------------------------

def _one_line_error(proc, *named: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert all(n in proc.stderr for n in named), proc.stderr


@pytest.fixture(scope="module")
def small_manifest(damaged, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small_manifest")
    return write_manifest_csv(root / "manifest.csv", [{"path": str(damaged["good"]), "genre": "Action"}])


def test_weights_setting_naming_a_missing_or_garbage_file(small_manifest, tiny_model, damaged, tmp_path):
    garbage = tmp_path / "weights.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    for weights in (tmp_path / "missing.h5", garbage):
        env = {"VGENRE_WEIGHTS": str(weights)}
        _one_line_error(vgenre("features", "--profile", "smoke", "--manifest", small_manifest, env=env), str(weights))
        _one_line_error(vgenre("predict", damaged["good"], "--model", tiny_model, env=env), str(weights))
        # the option behaves as the setting does, in both commands
        _one_line_error(vgenre("features", "--profile", "smoke", "--manifest", small_manifest, "--weights", weights),
                        str(weights))
        _one_line_error(vgenre("predict", damaged["good"], "--model", tiny_model, "--weights", weights), str(weights))


def test_manifest_errors(tmp_path):
    (tmp_path / "nopath.csv").write_text("file,genre\na.mp4,Action\n")
    (tmp_path / "header.csv").write_text("path,genre\n")
    for name, says in (("missing.csv", "manifest not found"), ("nopath.csv", "no 'path' column"),
                       ("header.csv", "lists no clips")):
        proc = vgenre("features", "--profile", "smoke", "--manifest", tmp_path / name)
        _one_line_error(proc, str(tmp_path / name), says)
    _one_line_error(vgenre("run", "--profile", "smoke", "--manifest", tmp_path / "missing.csv"),
                    str(tmp_path / "missing.csv"), "manifest not found")
    _one_line_error(vgenre("features", "--profile", "smoke", "--shard", "5/4"), "--shard", "5/4")
    debug = vgenre("--debug", "features", "--profile", "smoke", "--manifest", tmp_path / "missing.csv")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ManifestError" in debug.stderr


def test_curate_errors(tmp_path, damaged):
    import shutil

    (tmp_path / "empty").mkdir()
    _one_line_error(vgenre("curate", tmp_path / "empty"), str(tmp_path / "empty"), "no video files")
    _one_line_error(vgenre("curate", tmp_path / "nowhere"), str(tmp_path / "nowhere"), "not a folder")
    (tmp_path / "lower" / "action").mkdir(parents=True)
    shutil.copy(damaged["good"], tmp_path / "lower" / "action" / "a.mp4")
    _one_line_error(vgenre("curate", tmp_path / "lower"), "'action'", "rename it to 'Action'")
    (tmp_path / "one" / "Action").mkdir(parents=True)
    for k in range(3):
        shutil.copy(damaged["good"], tmp_path / "one" / "Action" / f"a{k}.mp4")
    (tmp_path / "one" / "Action" / "a0.mp4").rename(tmp_path / "one" / "Action" / "film_g01_c01.mp4")
    for k in (1, 2):
        (tmp_path / "one" / "Action" / f"a{k}.mp4").rename(tmp_path / "one" / "Action" / f"film_g01_c0{k + 1}.mp4")
    _one_line_error(vgenre("curate", tmp_path / "one"), str(tmp_path / "one"), "genre Action has only 1 group")


def test_corrupt_model_file_and_missing_default_model(tiny_model, damaged, tmp_path):
    import shutil

    copy = shutil.copytree(tiny_model, tmp_path / "broken")
    (copy / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    _one_line_error(vgenre("predict", damaged["good"], "--model", copy), str(copy / "model.keras"),
                    "not a readable Keras model")
    proc = vgenre("predict", damaged["good"], "--profile", "full")
    _one_line_error(proc, "full/models/late_fusion_seed0", "vgenre run --profile full")


def test_runner_reports_the_error_line_of_the_failing_cell():
    from helpers.runner import _failing_cell

    class Failed(Exception):
        ename, evalue, exec_count = "ManifestError", "/x/manifest.csv: manifest not found", 2

    assert _failing_cell(Failed("header\n---------\nlong traceback")) == \
        "cell In [2]: ManifestError: /x/manifest.csv: manifest not found"
    assert _failing_cell(TimeoutError("cell timed out\nafter 60 s")) == "TimeoutError: cell timed out after 60 s"


# -- 4. labels -----------------------------------------------------------------------------------

def test_genre_outside_the_six_is_an_error_naming_the_rows(tmp_path):
    from helpers.context import start_run
    from helpers.manifest import ManifestError
    from helpers.pipeline import ensure_dataset

    rows = [{"path": f"c{k}.mp4", "genre": g, "group": str(k), "split": "train", "status": "ok"}
            for k, g in enumerate(["Action", "Comedy", "Horror", "Comedy"])]
    manifest = write_manifest_csv(tmp_path / "manifest.csv", rows)
    ctx = start_run("tests", profile="smoke", manifest=manifest, run_dir=tmp_path / "run", verbose=False)
    with pytest.raises(ManifestError) as err:
        ensure_dataset(ctx)
    assert str(manifest) in str(err.value) and "line 3 (Comedy), line 5 (Comedy)" in str(err.value)
    assert ", ".join(GENRES) in str(err.value)


def test_macro_f1_averages_over_the_genres_present():
    from helpers.evaluate import clip_metrics

    y = np.repeat(np.arange(5), 2)  # five genres, no ScienceFiction
    pred = y.copy()
    pred[[1, 3]] = [2, 4]  # two mistakes: accuracy 0.8
    m = clip_metrics(y, np.eye(6)[pred])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["labels_present"] == list(GENRES[:5])
    assert m["macro_f1"] == pytest.approx(0.7867, abs=1e-4)  # counting ScienceFiction as 0 would give 0.656


# -- 2. folders scanned safely -------------------------------------------------------------------

def test_folder_scan_follows_links_once_and_lists_every_skipped_file(tmp_path, damaged):
    import shutil

    from helpers.curate import manifest_from_tree, validate_paths

    action = tmp_path / "Action" / "film1"
    action.mkdir(parents=True)
    (tmp_path / "Horror").mkdir()
    shutil.copy(damaged["good"], action / "a.mp4")
    shutil.copy(damaged["good"], tmp_path / "Horror" / "h.mp4")
    (action / "loop").symlink_to(tmp_path / "Action")  # a loop
    (action / "root").symlink_to(tmp_path)  # a way into another genre
    (action / "same.mp4").symlink_to(action / "a.mp4")  # one file reached twice
    shutil.copy(damaged["good"], action / "b.webm.bin")  # unknown extension, probed: a video
    (action / "notes.txt").write_text("notes")
    (action / "sound.m4a").write_bytes(b"\0" * 10)
    (action / "mystery.dat").write_bytes(b"\0" * 100)
    rows = manifest_from_tree(tmp_path, probe=False)
    clips = sorted(r["path"] for r in rows if r["genre"])
    assert clips == sorted([str(Path("Action/film1/a.mp4")), str(Path("Action/film1/b.webm.bin")),
                            str(Path("Horror/h.mp4"))])
    assert [r["genre"] for r in rows if r["path"].endswith("h.mp4")] == ["Horror"]
    checked = validate_paths([tmp_path])
    assert len(checked) == 6  # a.mp4, b.webm.bin, h.mp4, notes.txt, sound.m4a, mystery.dat
    why = {Path(r["path"]).name: r["status"] for r in checked}
    assert why["sound.m4a"] == "skipped: audio-only file (no video stream)"
    assert why["notes.txt"].startswith("skipped: not a video")
    assert why["mystery.dat"].startswith("bad: not a readable media file")  # unusable, as when given alone
    proc = vgenre("validate", tmp_path)
    assert "6 files checked, 3 ok, 1 bad, 2 skipped" in proc.stderr and "sound.m4a" in proc.stdout
    assert proc.returncode == 1


# -- 5. cache sharing ----------------------------------------------------------------------------

def test_two_feature_processes_share_one_cache(tmp_path, damaged, session_dirs):
    import shutil

    from helpers.features import cache_dir, claim_clip, release_clip

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    data = tmp_path / "data"
    stale = cache_dir(data) / "ab" / f".abcdef.{dead_pid}.partial.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a file")
    lock_file = cache_dir(data) / "cd" / "cdef.npz"
    lock_file.parent.mkdir()
    import socket

    lock_file.with_suffix(".lock").write_text(f"{socket.gethostname()} {dead_pid}")
    assert claim_clip(lock_file)  # a dead process's lock is taken over
    release_clip(lock_file)
    assert not lock_file.with_suffix(".lock").exists()
    rows = []
    for k in range(4):  # four distinct clips (their bytes differ)
        clip = shutil.copy(damaged["good"], tmp_path / f"c{k}.mp4")
        with open(clip, "ab") as fh:
            fh.write(bytes([k]) * 16)
        rows.append({"path": str(clip), "genre": "Action"})
    manifest = write_manifest_csv(tmp_path / "manifest.csv", rows)
    env = {"VGENRE_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "helpers", "features", "--profile", "smoke", "--manifest", str(manifest)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env}) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    counts = [dict(kv.split("=") for kv in o[0].strip().splitlines()[-1].split()) for o in outs]
    assert sum(int(c["written"]) for c in counts) == 4
    assert all(int(c["written"]) + int(c["cached"]) + int(c["locked"]) == 4 for c in counts)
    assert not stale.exists() and not list(cache_dir(data).glob("*/*.lock"))
