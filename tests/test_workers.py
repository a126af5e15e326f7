"""Feature extraction and data generation in worker processes: same files, one read per clip, uint8 in."""
from __future__ import annotations

import hashlib
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import helpers.frames
from helpers.audio import decode_audio
from helpers.backbone import load_backbone, preprocess
from helpers.config import get_profile
from helpers.features import decode_clip, extract_features, load_feature_file
from helpers.manifest import clip_path, read_manifest
from helpers.workers import default_workers, main_is_importable, process_pool, thread_settings


@pytest.fixture()
def rows(smoke_manifest):
    return [r for r in read_manifest(smoke_manifest) if r["split"] != "hard"][1::9][:6]


def test_pool_and_single_worker_write_identical_files(rows, tmp_path):
    prof = get_profile("smoke")
    backbone = load_backbone(prof, verbose=False)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    rows = rows[:3] + [{"path": str(bad), "genre": "Action", "status": "ok"}] + rows[3:]
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # really in worker processes, not in-process
        warnings.simplefilter("always")
        one = extract_features(rows, backbone, prof, root=tmp_path / "one", progress=False, workers=1)
        two = extract_features(rows, backbone, prof, root=tmp_path / "two", progress=False, workers=2)
    assert not [w for w in caught if "in this process" in str(w.message)]
    assert [r["status"].split(":")[0] for r in one] == ["written"] * 3 + ["bad"] + ["written"] * (len(rows) - 4)
    assert [r["status"] for r in one] == [r["status"] for r in two]
    assert "broken.mp4" in one[3]["status"]  # the bad file is named, the others went on
    for a, b in zip(one, two):
        if "file" not in a or a["status"] != "written":
            continue
        fa, fb = load_feature_file(a["file"]), load_feature_file(b["file"])
        assert Path(a["file"]).name == Path(b["file"]).name and fa.keys() == fb.keys()
        for key in fa:
            assert np.array_equal(fa[key], fb[key]), key
    assert not list(tmp_path.rglob("*partial*")) and not list(tmp_path.rglob("*.lock"))


def test_workers_keep_to_one_thread_each():
    settings = process_pool(1, 1).submit(thread_settings).result()
    assert settings["ffmpeg"] == 1 and settings["opencv"] == 1 and settings["OMP_NUM_THREADS"] == "1"
    assert all(n == 1 for n in settings["blas"].values())
    assert "keras" not in settings["modules"] and "tensorflow" not in settings["modules"]


def test_a_clip_is_read_once_for_video_and_audio(rows, monkeypatch):
    path = clip_path(rows[0])
    prof = get_profile("smoke")
    opened = []
    real = helpers.frames.open_media
    monkeypatch.setattr(helpers.frames, "open_media", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    d = decode_clip(path, prof, prof.input_size)
    assert len(opened) == 1
    alone = decode_audio(path, prof.sr)
    video = helpers.frames.decode_video(path, [(prof.sample_fps, None)], audio_sr=prof.sr)
    assert np.array_equal(video.audio.samples, alone.samples) and video.audio.share == alone.share
    assert d.has_audio and d.audio.shape == (len(d.frames), prof.n_mels)


def test_the_backbone_takes_uint8_and_scales_on_the_device():
    import keras

    backbone = load_backbone("smoke", precision="float32", verbose=False)  # bfloat16 on a GPU would round
    first = backbone.extractor.layers[1]
    assert backbone.extractor.inputs[0].dtype == "uint8" and isinstance(first, keras.layers.Rescaling)
    frames = np.random.default_rng(1).integers(0, 256, (3, 75, 75, 3), dtype=np.uint8)
    expected = np.asarray(backbone.model.predict(preprocess(frames), verbose=0))
    assert np.allclose(backbone.pool_features(frames, batch_size=4), expected, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        backbone.pool_features(frames.astype(np.float32))


def test_a_script_without_main_guard_decodes_in_process(tmp_path, monkeypatch):
    script = tmp_path / "my_script.py"
    script.write_text("from helpers.pipeline import ensure_features\nensure_features(ctx)\n")
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__=str(script), __spec__=None))
    safe, why = main_is_importable()
    assert not safe and "my_script.py" in why and '__name__ == "__main__"' in why
    script.write_text("def main():\n    pass\n\nif __name__ == '__main__':\n    main()\n")
    assert main_is_importable() == (True, "")
    assert default_workers() >= 1


def test_generated_set_is_byte_identical_with_a_pool(tmp_path):
    from helpers.synth import HARD_CASES, generate_dataset

    prof = get_profile("smoke", films_per_genre=1, clips_per_film=2)

    def digests(root: Path) -> dict:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    generate_dataset(prof, tmp_path / "serial", progress=False, workers=0, hard_cases_per_kind=1)
    generate_dataset(prof, tmp_path / "pool", progress=False, workers=2, hard_cases_per_kind=1)
    serial, pool = digests(tmp_path / "serial"), digests(tmp_path / "pool")
    assert len(serial) == 6 * 2 + len(HARD_CASES) + 1 and serial == pool  # clips, hard cases, manifest


def _worker_processes() -> set[int]:
    """This process's children that are workers (not multiprocessing's resource tracker), from /proc."""
    import os

    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"resource_tracker" not in cmdline:
            found.add(int(entry.name))
    return found


@pytest.fixture()
def two_clips(tmp_path):
    from conftest import write_clip

    return [{"path": str(write_clip(tmp_path / f"c{k}.mp4", seconds=1.0 + k, genre="Horror")), "genre": "Horror"}
            for k in range(2)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_worker_process_remains_after_extraction(two_clips, tmp_path):
    import multiprocessing

    before = _worker_processes()
    backbone = load_backbone("smoke", verbose=False)
    records = extract_features(two_clips, backbone, "smoke", root=tmp_path / "cache", progress=False, workers=2)
    assert [r["status"] for r in records] == ["written", "written"]
    assert not _worker_processes() - before and not multiprocessing.active_children()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_shared_pool_shuts_down_once_idle(monkeypatch):
    """The pool of process_pool (the synthetic set's) stops its workers after IDLE_SECONDS without work."""
    import os

    import helpers.workers as workers

    monkeypatch.setattr(workers, "IDLE_SECONDS", 0.2)
    pool = workers.SharedPool(1)
    pid = pool.submit(os.getpid).result()
    assert pid != os.getpid() and pool.running
    deadline = time.time() + 20
    while (pool.running or Path(f"/proc/{pid}").exists()) and time.time() < deadline:
        time.sleep(0.1)  # shut down, then its process joined
    assert not pool.running and not Path(f"/proc/{pid}").exists()
    assert pool.submit(os.getpid).result() != pid  # the next job starts a fresh one
    pool.shutdown()
    assert not pool.running


def test_a_worker_that_cannot_start_is_one_error_naming_the_cause(two_clips, tmp_path, monkeypatch):
    """An ImportError in the workers' initialiser (OpenCV without its libGL) is a setup error, not bad clips."""
    from helpers.errors import WorkerStartError

    fake = tmp_path / "fake_modules"
    fake.mkdir()
    (fake / "cv2.py").write_text('raise ImportError("libGL.so.1: cannot open shared object file: No such file")\n')
    monkeypatch.syspath_prepend(str(fake))  # spawned workers get this sys.path; this process has cv2 already
    backbone = load_backbone("smoke", verbose=False)
    with pytest.raises(WorkerStartError, match="libGL.so.1") as caught:
        extract_features(two_clips, backbone, "smoke", root=tmp_path / "cache", progress=False, workers=1)
    assert "ImportError" in str(caught.value) and "workers=0" in str(caught.value)
    assert not list((tmp_path / "cache").rglob("*.npz")) and not list((tmp_path / "cache").rglob("*.lock"))
