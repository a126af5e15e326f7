"""Curation: build a manifest from folder-per-genre trees, probe every file, split by group.

The paper sorted UCF101, HMDB51, Hollywood2 and public-domain films into six genre folders by
hand. The same curation is reproduced here through class-to-genre maps committed under ``data/``
(``ucf101_genre_map.csv``, ``hmdb51_genre_map.csv``); unmapped classes are left out.

Every file is probed (duration, fps, size, audio) and a bad one is recorded with its reason in the
``status`` column instead of stopping the batch.

Example
-------
>>> rows = manifest_from_tree("my_clips/")  # doctest: +SKIP
>>> splitter = GroupedSplit(test_size=0.1, val_size=0.1, random_state=0)  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Callable

import numpy as np

from helpers.config import GENRES, repo_root
from helpers.synth import MANIFEST_NAME, write_manifest

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv"}
PROBE_FIELDS = ["duration", "fps", "width", "height", "has_audio", "status"]


class CurationError(ValueError):
    """A tree or map that cannot be curated; the message names the path and the reason."""


def probe_video(path: str | Path) -> dict:
    """Duration (s), frame rate, size and audio presence of one file, plus ``status``.

    ``status`` is ``"ok"`` or ``"bad: <reason>"``; this function never raises for a bad file.
    A file is bad when it is empty, not a video, has no video stream, or cannot be decoded to
    its first frame (truncated files often fail there).
    """
    import av

    path = Path(path)
    info = {"duration": 0.0, "fps": 0.0, "width": 0, "height": 0, "has_audio": False}
    try:
        if path.is_dir():
            return {**info, "status": "bad: is a folder, not a video file"}
        size = path.stat().st_size
        if size == 0:
            return {**info, "status": "bad: empty file (0 bytes)"}
        with av.open(str(path)) as container:
            if not container.streams.video:
                return {**info, "status": "bad: no video stream"}
            stream = container.streams.video[0]
            info["has_audio"] = bool(container.streams.audio)
            info["fps"] = round(float(stream.average_rate or stream.guessed_rate or 0), 3)
            info["width"], info["height"] = stream.codec_context.width, stream.codec_context.height
            if container.duration:
                info["duration"] = round(container.duration / 1_000_000, 3)
            elif stream.duration and stream.time_base:
                info["duration"] = round(float(stream.duration * stream.time_base), 3)
            decoded = 0
            last_t = 0.0
            for frame in container.decode(stream):
                decoded += 1
                if frame.pts is not None:
                    last_t = float(frame.pts * frame.time_base)
            if decoded == 0:
                return {**info, "status": "bad: no decodable video frames"}
            if info["duration"] and last_t < 0.5 * info["duration"] - 1.0:
                return {**info, "status": f"bad: truncated (frames stop at {last_t:.1f}s of {info['duration']:.1f}s)"}
    except PermissionError:
        return {**info, "status": "bad: permission denied"}
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        reason = str(exc).split(":")[0] if "Invalid data" in str(exc) else exc.__class__.__name__
        return {**info, "status": f"bad: not a readable video ({reason})"}
    return {**info, "status": "ok"}


def _video_files(folder: Path, problems: list[dict]) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        problems.append({"path": str(folder), "status": "bad: folder cannot be read (permission denied)"})
        return []
    files = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files += _video_files(entry, problems)
        elif entry.suffix.lower() in VIDEO_EXTENSIONS:
            files.append(entry)
    return files


def manifest_from_tree(root: str | Path, *, genre_of_folder: dict[str, str] | None = None,
                       group_of: Callable[[Path], str] | None = None, probe: bool = True) -> list[dict]:
    """One manifest row per video file under folder-per-genre *root*.

    Top-level folder names are genres (``GENRES``), or are mapped to genres by *genre_of_folder*
    (folders mapped to nothing are left out). The group of a clip is ``group_of(path)`` when
    given, else :func:`default_group` (UCF101's ``gNN``, else the film subfolder, else the file).
    Paths in the manifest are relative to *root*.
    """
    root = Path(root)
    if not root.is_dir():
        raise CurationError(f"{root}: not a folder")
    rows, problems = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        genre = (genre_of_folder or {}).get(folder.name, folder.name if genre_of_folder is None else None)
        if genre is None or genre not in GENRES:
            continue
        for path in _video_files(folder, problems):
            row = {"path": str(path.relative_to(root)), "genre": genre,
                   "group": group_of(path) if group_of else default_group(path, folder)}
            if probe:
                row.update(probe_video(path))
            rows.append(row)
    for problem in problems:
        rows.append({"path": problem["path"], "genre": "", "group": "", **{k: "" for k in PROBE_FIELDS[:-1]},
                     "status": problem["status"]})
    return rows


_UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def default_group(path: Path, genre_folder: Path | None = None) -> str:
    """The film a clip comes from: UCF101's ``gNN`` (clips of one group share a long video), else
    the subfolder of the genre folder the clip sits in (one folder per film), else the file itself."""
    match = _UCF_GROUP.search(path.stem)
    if match:
        return f"{path.parent.name}_g{match.group(1)}"
    if genre_folder is None:
        return f"{path.parent.name}/{path.stem}"
    if path.parent != genre_folder:
        return path.parent.relative_to(genre_folder.parent).as_posix()
    return path.relative_to(genre_folder.parent).with_suffix("").as_posix()


def load_genre_map(name: str) -> dict[str, str]:
    """A committed class-to-genre map (``ucf101`` or ``hmdb51``) as ``{class: genre}``."""
    path = repo_root() / "data" / f"{name}_genre_map.csv"
    if not path.exists():
        raise CurationError(f"{path}: no such genre map; available: ucf101, hmdb51")
    with path.open(newline="") as fh:
        mapping = {r["class"]: r["genre"] for r in csv.DictReader(fh) if r["genre"]}
    unknown = set(mapping.values()) - set(GENRES)
    if unknown:
        raise CurationError(f"{path}: genres {sorted(unknown)} are not among {GENRES}")
    return mapping


def manifest_from_dataset(root: str | Path, dataset: str, *, probe: bool = True) -> list[dict]:
    """Curate a UCF101 or HMDB51 tree (one folder per class) into the six genres."""
    mapping = load_genre_map(dataset.lower())
    if dataset.lower() == "hmdb51":
        return manifest_from_tree(root, genre_of_folder=mapping, probe=probe,
                                  group_of=lambda p: p.stem.split(f"_{p.parent.name}_")[0])
    return manifest_from_tree(root, genre_of_folder=mapping, probe=probe)


class GroupedSplit:
    """Split clips into train/val/test so that no group (film, UCF101 gNN) lands on two sides.

    Stratified by genre as far as groups allow, with one ``random_state``; built on
    scikit-learn's ``StratifiedGroupKFold``. The paper's ratios are 80/10/10.

    Example
    -------
    >>> split = GroupedSplit(test_size=0.1, val_size=0.1, random_state=0)  # doctest: +SKIP
    >>> train, val, test = split.split(X, y, groups)  # doctest: +SKIP
    """

    def __init__(self, test_size: float = 0.1, val_size: float = 0.1, random_state: int | None = 0):
        if not 0 < test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
            raise ValueError(f"test_size and val_size must be fractions summing below 1, got {test_size}, {val_size}")
        self.test_size, self.val_size, self.random_state = test_size, val_size, random_state

    def split(self, X, y, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of train, validation and test rows."""
        y, groups = np.asarray(y), np.asarray(groups)
        idx = np.arange(len(y))
        test = self._hold_out(idx, y, groups, self.test_size)
        rest = np.setdiff1d(idx, test)
        val = np.array([], int)
        if self.val_size:
            val = self._hold_out(rest, y, groups, self.val_size / (1 - self.test_size))
        train = np.setdiff1d(rest, val)
        return train, val, test

    def _hold_out(self, idx, y, groups, fraction):
        from sklearn.model_selection import StratifiedGroupKFold

        # each genre needs a group on every side: fewer folds when a genre has few groups
        groups_per_genre = [len(np.unique(groups[idx][y[idx] == g])) for g in np.unique(y[idx])]
        n_splits = int(min(max(2, round(1 / fraction)), min(groups_per_genre)))
        if n_splits < 2:
            raise ValueError(f"a genre has only {min(groups_per_genre)} group(s): cannot hold out {fraction:.0%} "
                             "of the clips without splitting a group")
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        _, held = next(cv.split(idx, y[idx], groups[idx]))
        return idx[held]


def assign_split(rows: list[dict], *, test_size: float = 0.1, val_size: float = 0.1,
                 random_state: int = 0) -> list[dict]:
    """Write a ``split`` column (train/val/test) into *rows*; bad files get ``excluded``,
    rows already marked ``hard`` keep it."""
    usable = [i for i, r in enumerate(rows) if r.get("status", "ok") == "ok" and r.get("split") != "hard"]
    y = [rows[i]["genre"] for i in usable]
    groups = [rows[i]["group"] for i in usable]
    train, val, test = GroupedSplit(test_size, val_size, random_state).split(np.zeros(len(usable)), y, groups)
    names = {}
    for part, name in ((train, "train"), (val, "val"), (test, "test")):
        names.update({usable[i]: name for i in part})
    for i, row in enumerate(rows):
        if row.get("split") != "hard":
            row["split"] = names.get(i, "excluded")
    return rows


def read_manifest(path: str | Path) -> list[dict]:
    """Read a manifest CSV; paths stay relative to the manifest's folder (see :func:`clip_path`)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise CurationError(f"{path}: manifest not found")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["_root"] = str(path.parent)
    return rows


def clip_path(row: dict) -> Path:
    """The absolute path of a manifest row's clip."""
    p = Path(row["path"])
    return p if p.is_absolute() else Path(row.get("_root", ".")) / p


def probe_and_split(manifest: str | Path, *, random_state: int = 0) -> Path:
    """Probe every clip listed in *manifest*, write the grouped split into it, rewrite it atomically."""
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    for row in rows:
        row.update(probe_video(clip_path(row)))
        row.pop("_root")
    assign_split(rows, random_state=random_state)
    return write_manifest(rows, manifest)


def curate_folder(root: str | Path, out: str | Path | None = None, *, dataset: str | None = None,
                  random_state: int = 0) -> Path:
    """Probe, split and write ``manifest.csv`` for a folder-per-genre tree; return its path."""
    root = Path(root)
    rows = manifest_from_dataset(root, dataset) if dataset else manifest_from_tree(root)
    if not rows:
        raise CurationError(f"{root}: no video files in folders named after the genres {GENRES}")
    assign_split(rows, random_state=random_state)
    return write_manifest(rows, Path(out) if out else root / MANIFEST_NAME)


def validate_paths(paths: list[str | Path]) -> list[dict]:
    """Probe every video under *paths* (files or folders); one row per file with its status."""
    rows = []
    for p in map(Path, paths):
        if p.is_dir():
            problems: list[dict] = []
            for f in _video_files(p, problems):
                rows.append({"path": str(f), **probe_video(f)})
            rows += [{"path": q["path"], "status": q["status"]} for q in problems]
        else:
            rows.append({"path": str(p), **probe_video(p)} if p.exists() else {"path": str(p), "status": "bad: file not found"})
    return rows
