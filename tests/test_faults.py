"""Faults (DESIGN.md, "Bad input"): every write atomic and cleaned up, a full disk or a read-only
folder in one line, file names of any bytes, one verdict per file, one line per bad setting,
workers that die with their parent."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_clip
from helpers.errors import SettingError, VgenreError, WriteError

QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "VGENRE_OFFLINE": "1"}


def vgenre(*args, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *map(str, args)], capture_output=True, text=True,
                          errors="replace", env={**os.environ, **QUIET, **(env or {})}, timeout=timeout)


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a writer left behind."""
    return [p for p in Path(folder).rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


def can_mount_tmpfs() -> bool:
    """Whether a small file system can be mounted without privileges (a user namespace)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


def on_small_disk(folder: Path, size: str, command: list[str], *, fill: bool = False) -> subprocess.CompletedProcess:
    """Run *command* with a tmpfs of *size* mounted on *folder* (full from the start with *fill*)."""
    script = f"mount -t tmpfs -o size={size} tmpfs '{folder}'"
    if fill:
        script += f" && (cat /dev/zero > '{folder}/fill' 2>/dev/null; true)"
    script += " && exec " + " ".join(f"'{c}'" for c in command)
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, errors="replace", env={**os.environ, **QUIET}, timeout=600)


# -- 1. atomic writes -----------------------------------------------------------------------------

def test_atomic_write_leaves_nothing_on_any_error_and_names_a_full_disk(tmp_path, monkeypatch):
    from helpers import fileio

    target = tmp_path / "out" / "a.npz"
    with pytest.raises(ZeroDivisionError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            1 / 0
    assert not target.exists() and not leftovers(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(WriteError) as err:
        fileio.save_npz(target, x=np.zeros(500_000, np.float32))
    message = str(err.value)
    assert message.startswith(f"cannot write {target}: no space left on device at {target.parent}: ")
    assert "MB free, about 2.0 MB needed" in message and err.value.disk_full
    assert isinstance(err.value, VgenreError) and isinstance(err.value, OSError)
    assert not target.exists() and not leftovers(tmp_path)


def test_a_write_error_crosses_processes_whole():
    import pickle

    err = pickle.loads(pickle.dumps(WriteError(Path("a/b.npz"), "no space left on device at a", errno.ENOSPC)))
    assert str(err) == "cannot write a/b.npz: no space left on device at a" and err.disk_full


def test_files_get_the_umask_mode(tmp_path):
    from helpers.fileio import write_json
    from helpers.manifest import write_manifest

    old = os.umask(0o022)
    try:
        write_manifest([{"path": "a.mp4", "genre": "Action"}], tmp_path / "manifest.csv")
        write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("manifest.csv", "x.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    from helpers.fileio import remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".model.keras.{int(dead.stdout)}.partial.keras"
    mine = tmp_path / f".x.json.{os.getpid()}.partial.json"
    stale.write_bytes(b"x")
    mine.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [stale] and mine.exists()


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    """Two genres of three one-second clips (each its own film), one with a name that is not UTF-8."""
    root = tmp_path_factory.mktemp("faults") / "tree"
    for genre in ("Action", "Horror"):
        for k in range(3):
            clip = write_clip(root / genre / f"{genre.lower()}{k}.mp4", seconds=1.0, genre=genre)
            with open(clip, "ab") as fh:  # distinct bytes: distinct clips to the feature cache
                fh.write(bytes([k + 1]) * 16)
    odd = root / os.fsdecode(b"Action/caf\xe9 \xff.mp4")
    shutil.copy(root / "Action" / "action0.mp4", odd)
    with open(odd, "ab") as fh:  # other bytes: another clip
        fh.write(b"\0" * 64)
    return root


def test_a_feature_batch_stops_at_a_full_disk_saying_how_far_it_got(small_tree, tmp_path, monkeypatch, capsys):
    """Fault injection (no privileges needed): the third feature file meets a full disk."""
    from helpers import cli, fileio

    manifest = cli.main(["curate", str(small_tree), "--out", str(tmp_path / "manifest.csv")])
    assert manifest == 0
    real_savez, calls = np.savez, []

    def fills_up(file, **arrays):
        calls.append(file)
        if len(calls) == 3:
            Path(file).write_bytes(b"\0" * 1000)  # part of it made it to disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, **arrays)

    monkeypatch.setattr(fileio.np, "savez", fills_up)
    monkeypatch.setenv("VGENRE_DATA_DIR", str(tmp_path / "data"))
    status = cli.main(["features", "--profile", "smoke", "--manifest", str(tmp_path / "manifest.csv"), "--workers", "0"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 1 and len(lines) == 1 and "Traceback" not in err
    assert "no space left on device at " in lines[0] and "MB free, about " in lines[0]
    assert "feature extraction stopped after writing 2 of 7 clips" in lines[0]
    assert len(list((tmp_path / "data").rglob("*.npz"))) == 2
    assert not leftovers(tmp_path / "data") and not list((tmp_path / "data").rglob("*.lock"))


@pytest.mark.skipif(not can_mount_tmpfs(), reason="no unprivileged tmpfs here (user namespaces)")
def test_a_real_full_disk_in_curate_and_features(small_tree, tmp_path):
    assert vgenre("curate", small_tree, "--out", tmp_path / "manifest.csv").returncode == 0
    full = tmp_path / "full"
    full.mkdir()
    proc = on_small_disk(full, "64k", [sys.executable, "-m", "helpers", "curate", str(small_tree), "--out",
                                       str(full / "manifest.csv")], fill=True)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert errors[0].startswith(f"error: cannot write {full / 'manifest.csv'}: no space left on device at {full}: ")
    data = tmp_path / "data"
    data.mkdir()
    proc = on_small_disk(data, "100k", ["env", f"VGENRE_DATA_DIR={data}", sys.executable, "-m", "helpers",
                                        "features", "--profile", "smoke", "--manifest", str(tmp_path / "manifest.csv"),
                                        "--workers", "1"])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no space left on device" in errors[0] and "feature extraction stopped after writing" in errors[0]
    assert not list(small_tree.rglob("*.tmp")) and not leftovers(small_tree)


@pytest.mark.skipif(not can_mount_tmpfs(), reason="no unprivileged tmpfs here (user namespaces)")
def test_train_into_a_read_only_run_folder_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    script = (f"mount -t tmpfs -o ro tmpfs '{runs}' && exec '{sys.executable}' -m helpers train --profile smoke "
              f"--out '{runs / 'smoke'}'")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, env={**os.environ, **QUIET}, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"error: --out {runs / 'smoke'}: cannot write there "
                                                     f"(read-only file system at {runs / 'smoke'}); choose a folder "
                                                     "you can write to")


# -- 2. file names of any bytes --------------------------------------------------------------------

def test_a_name_that_is_not_utf8_goes_through_curate_features_and_train(small_tree, tmp_path):
    from helpers.manifest import read_manifest

    manifest = tmp_path / "manifest.csv"
    proc = vgenre("curate", small_tree, "--out", manifest)
    assert proc.returncode == 0, proc.stderr
    manifest.read_bytes().decode("utf-8")  # the manifest stays UTF-8: the odd bytes are escaped
    odd = [r for r in read_manifest(manifest) if "caf" in r["path"]]
    assert len(odd) == 1 and os.fsencode(odd[0]["path"]) == os.fsencode(os.path.relpath(
        small_tree / os.fsdecode(b"Action/caf\xe9 \xff.mp4"), tmp_path)) and odd[0]["status"] == "ok"
    assert not leftovers(small_tree) and not leftovers(tmp_path)
    env = {"VGENRE_DATA_DIR": str(tmp_path / "data"), "VGENRE_RUNS_DIR": str(tmp_path / "runs")}
    proc = vgenre("features", "--profile", "smoke", "--manifest", manifest, "--workers", "1", env=env)
    assert proc.returncode == 0 and "written=7" in proc.stdout, proc.stderr
    proc = vgenre("train", "--profile", "smoke", "--manifest", manifest, "--method", "lstm_pool",
                  "--out", tmp_path / "runs" / "odd", env=env)
    assert proc.returncode == 0 and "test_accuracy=" in proc.stdout, proc.stderr[-3000:]
    model = tmp_path / "runs" / "odd" / "models" / "lstm_pool_seed0"
    assert (model / "model.keras").is_file() and not leftovers(model)


# -- 3. one verdict per file -----------------------------------------------------------------------

def test_validate_gives_one_verdict_per_file_alone_or_in_a_folder(tmp_path):
    from PIL import Image

    from helpers.curate import validate_paths

    folder = tmp_path / "mixed"
    folder.mkdir()
    write_clip(folder / "good.mp4")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "poster.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "anim.gif")
    (folder / "mystery.bin").write_bytes(b"\x01" * 200)
    (folder / "notes.txt").write_text("notes")
    (tmp_path / "looks like.mp4").mkdir()
    in_folder = {Path(r["path"]).name: r["status"] for r in validate_paths([folder])}
    alone = {Path(r["path"]).name: r["status"] for r in validate_paths(sorted(folder.iterdir()))}
    assert in_folder == alone
    assert in_folder["good.mp4"] == "ok" and in_folder["mystery.bin"].startswith("bad: not a readable media file")
    assert in_folder["poster.png"].startswith("skipped: a still image") and "still image" in in_folder["anim.gif"]
    assert vgenre("validate", folder).returncode == 1  # a folder holding an unusable file
    proc = vgenre("validate", tmp_path / "looks like.mp4")
    assert proc.returncode == 1 and "is a folder named like a .mp4 file" in proc.stdout + proc.stderr


def test_a_still_image_is_named_as_such_by_every_command(tmp_path):
    from PIL import Image

    from helpers.frames import sample_frames
    from helpers.media import MediaError

    png = tmp_path / "frame.mp4"  # a picture behind a video's name
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(png, format="PNG")
    with pytest.raises(MediaError, match=r"a still image \(PNG\), not a video"):
        sample_frames(png, fps=4)
    from helpers.curate import probe_video

    assert probe_video(png)["status"] == "bad: a still image (PNG), not a video"


# -- 4. one line for every bad setting ------------------------------------------------------------

BAD_SETTINGS = [
    (["--backend", "nosuch", "validate", "x"], {}, "argument --backend: invalid choice"),
    (["features", "--workers", "-1"], {}, "--workers must be 0 or more"),
    (["bench", "--workers", "-2"], {}, "--workers must be 0 or more"),
    (["synth", "--out", "{tmp}/s", "--workers", "-1"], {}, "--workers must be 0 or more"),
    (["synth", "--out", "{tmp}/s", "--seed", "-5"], {}, "--seed must be between 0 and"),
    (["synth", "--out", "{tmp}/s", "--difficulty", "1.5"], {}, "difficulty must be in [0, 1), got 1.5"),
    (["synth", "--out", "{file}"], {}, "a file, not a folder"),
    (["synth", "--out", "{tmp}/s", "--profile", "huge"], {}, "argument --profile: invalid choice"),
    (["synth", "--out", "{tmp}/s", "--seed", "x"], {}, "argument --seed: invalid int value"),
    (["curate", "{tmp}/nothing"], {}, "not a folder"),
    (["curate", "{tmp}", "--dataset", "kinetics"], {}, "argument --dataset: invalid choice"),
    (["curate", "{tmp}", "--out", "{tmp}"], {}, "a folder; give the manifest's file name"),
    (["curate", "{tmp}", "--seed", "-1"], {}, "--seed must be between 0 and"),
    (["features", "--shard", "3/2"], {}, "--shard i/n needs 0 <= i < n"),
    (["features", "--precision", "float8"], {}, "argument --precision: invalid choice"),
    (["features", "--manifest", "{tmp}/none.csv"], {}, "manifest not found"),
    (["features", "--manifest", "{manifest}", "--weights", "{tmp}/none.h5"], {}, "none.h5"),
    (["features"], {"KERAS_BACKEND": "nosuch"}, "KERAS_BACKEND='nosuch' is not a Keras backend"),
    (["features"], {"VGENRE_DATA_DIR": "{file}"}, "VGENRE_DATA_DIR="),
    (["train", "--method", "svm"], {}, "argument --method: invalid choice"),
    (["train", "--seed", "-3"], {}, "--seed must be between 0 and"),
    (["train", "--out", "{file}/run"], {}, "--out {file}/run: cannot write there"),
    (["predict", "http://example.com/clip.mp4", "--model", "{tmp}"], {}, "not a model folder"),
    (["predict", "x.mp4", "--model", "{tmp}/none"], {}, "not a model folder"),
    (["run", "--cell-timeout", "0"], {}, "--cell-timeout is seconds per cell"),
    (["run", "--notebooks", "{tmp}/none"], {}, "--notebooks"),
    (["run", "--manifest", "{tmp}/none.csv"], {}, "manifest not found"),
    (["check", "{tmp}/none", "{tmp}/none.json"], {}, "none"),
    (["bench", "--only", "everything"], {}, "argument --only: invalid choice"),
    (["nosuch"], {}, "invalid choice: 'nosuch'"),
]


@pytest.mark.parametrize("argv,env,expected", BAD_SETTINGS, ids=[" ".join(a[:3]) + "".join(e) for a, e, _ in BAD_SETTINGS])
def test_every_bad_setting_is_one_line(argv, env, expected, tmp_path):
    """Each option (and environment variable) with an invalid value: one line on stderr, naming the
    setting, exit status 1 (2 for what argparse refuses), no traceback, nothing written."""
    file = tmp_path / "a_file"
    file.write_text("x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,genre\nclip.mp4,Action\n")
    fill = {"tmp": str(tmp_path), "file": str(file), "manifest": str(manifest)}
    proc = vgenre(*[a.format(**fill) for a in argv], env={k: v.format(**fill) for k, v in env.items()}, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected.format(**fill) in lines[0]
    assert not leftovers(tmp_path)


def test_url_gets_download_it_first(tmp_path):
    from helpers.media import MediaError, open_media

    with pytest.raises(MediaError, match="download it first"):
        open_media("https://example.com/clip.mp4")
    with pytest.raises(MediaError, match="download it first"):
        open_media(Path("http://example.com/clip.mp4"))  # a Path folds the //
    with pytest.raises(MediaError) as err:
        open_media("http://example.com/clip.mp4")
    assert str(err.value) == ("http://example.com/clip.mp4: is an address, not a file; download it first and give "
                              "the file's name")


def test_setting_errors_sit_under_the_one_root():
    from helpers.config import ConfigError
    from helpers.curate import CurationError
    from helpers.manifest import ManifestError
    from helpers.media import MediaError
    from helpers.synth import SynthError
    from helpers.train import ModelFolderError

    for cls in (SettingError, WriteError, CurationError, ManifestError, MediaError, SynthError, ModelFolderError):
        assert issubclass(cls, VgenreError), cls
    assert issubclass(SettingError, ValueError) and issubclass(MediaError, ValueError)
    assert issubclass(ConfigError, ValueError)


# -- 5. workers die with their parent -------------------------------------------------------------

def _children(pid: int) -> set[int]:
    """Every descendant of process *pid* (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_and_resource_tracker_die_with_a_killed_parent(small_tree, tmp_path):
    from helpers.manifest import write_manifest

    rows = []
    for k in range(40):  # forty distinct clips: work for longer than the test needs
        clip = tmp_path / f"c{k}.mp4"
        clip.write_bytes((small_tree / "Horror" / "horror0.mp4").read_bytes() + bytes([k]) * 16)
        rows.append({"path": clip.name, "genre": "Horror"})
    write_manifest(rows, tmp_path / "manifest.csv")
    proc = subprocess.Popen([sys.executable, "-m", "helpers", "features", "--profile", "smoke", "--manifest",
                             str(tmp_path / "manifest.csv"), "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **QUIET, "VGENRE_DATA_DIR": str(tmp_path / "d")})
    deadline, children = time.time() + 240, set()
    while time.time() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        if len(children) >= 3:  # two workers and the resource tracker
            break
        time.sleep(0.2)
    assert proc.poll() is None and len(children) >= 3, "the workers never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in children):
        time.sleep(0.2)
    survivors = [p for p in children if _alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors, "processes outlived their killed parent"


def test_a_pool_from_another_thread_is_watched_without_the_kernel_signal():
    from helpers.workers import worker_initargs

    import threading

    assert worker_initargs(1) == (1, os.getpid(), threading.current_thread() is threading.main_thread())
    result = {}
    thread = threading.Thread(target=lambda: result.update(args=worker_initargs(2)))
    thread.start()
    thread.join()
    assert result["args"] == (2, os.getpid(), False)


# -- 7. predict on what decodes; duplicates ----------------------------------------------------------

def test_duplicate_manifest_rows_are_extracted_once_with_a_warning(small_tree, tmp_path):
    from helpers.backbone import load_backbone
    from helpers.features import extract_features

    clip = small_tree / "Action" / "action1.mp4"
    rows = [{"path": str(clip), "genre": "Action"}] * 3
    with pytest.warns(UserWarning, match="listed twice in the manifest"):
        records = extract_features(rows, load_backbone("smoke", verbose=False), "smoke", root=tmp_path / "cache",
                                   progress=False, workers=0)
    assert len(records) == 1 and records[0]["status"] == "written"
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1
    with pytest.raises(SettingError, match="workers must be 0 or more"):
        extract_features(rows, None, "smoke", root=tmp_path / "cache", workers=-1)


def test_errors_print_file_names_of_any_bytes(tmp_path):
    odd = tmp_path / os.fsdecode(b"nope \xff.mp4")
    proc = subprocess.run([sys.executable, "-m", "helpers", "validate", str(odd)], capture_output=True,
                          env={**os.environ, **QUIET})
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert b"nope \xff.mp4" in proc.stdout and b"bad: file not found" in proc.stdout


def test_json_lines_of_validate_hold_any_name(tmp_path):
    odd = tmp_path / os.fsdecode(b"x\xfe.mp4")
    proc = subprocess.run([sys.executable, "-m", "helpers", "validate", "--json", str(odd)], capture_output=True,
                          env={**os.environ, **QUIET})
    row = json.loads(proc.stdout.splitlines()[0])
    assert os.fsencode(row["path"]).endswith(b"x\xfe.mp4")
