"""Curation: build a manifest from folder-per-genre trees, probe every file, split by group.

The paper sorted UCF101, HMDB51, Hollywood2 and public-domain films into six genre folders by
hand. The same curation is reproduced here through class-to-genre maps shipped with the package
(``helpers/genre_maps/ucf101.csv``, ``hmdb51.csv``); unmapped classes are left out.

Every file is probed (duration, fps, size, audio, how much decodes) and a bad one is recorded with
its reason in the ``status`` column instead of stopping the batch. Manifests are read and written
by :mod:`helpers.manifest`.

Usage (a folder of your own, one sub-folder per genre)::

    rows = manifest_from_tree("my_clips/")
    train, val, test = GroupedSplit(test_size=0.1, val_size=0.1, random_state=0).split(rows, y, groups)
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from helpers.audio import decode_audio
from helpers.config import GENRES
from helpers.manifest import MANIFEST_NAME, clip_path, read_manifest, write_manifest
from helpers.errors import SettingError, VgenreError
from helpers.media import (IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, MediaError, check_decoded, folder_reason, open_media,
                           still_image_reason, stream_duration, video_frames)

AUDIO_EXTENSIONS = {".m4a", ".mp3", ".wav", ".aac", ".ac3", ".flac", ".ogg", ".oga", ".opus", ".wma"}
OTHER_EXTENSIONS = {".csv", ".txt", ".json", ".md", ".nfo", ".srt", ".vtt", ".npz", ".pdf",
                    ".zip"}  # not media, and not worth asking FFmpeg
PROBE_FIELDS = ["duration", "fps", "width", "height", "has_audio", "decoded_share", "status"]
PROBE_AUDIO_RATE = 8000  # Hz: the audio check of a probe needs no more
SPLIT_TOLERANCE = 0.05  # GroupedSplit warns when a genre's split is further than this from the request


class CurationError(VgenreError, ValueError):
    """A tree or map that cannot be curated; the message names the path and the reason."""


def probe_video(path: str | Path) -> dict:
    """Duration (s), frame rate, size, audio presence and decoded share of one file, plus ``status``.

    ``status`` is ``"ok"`` or ``"bad: <reason>"``, the reason being that of the
    :class:`~helpers.media.MediaError` :func:`helpers.frames.sample_frames` raises for the file
    (missing, empty, not media, no video stream, undecodable, or decoding less than
    :data:`helpers.media.MIN_DECODED_SHARE` of its duration), or that of
    :func:`helpers.audio.decode_audio` for an audio track that fails the same rule. This function
    never raises for a bad file. Both streams are decoded whole (frames are not converted).
    """
    path = Path(path)
    info = {"duration": 0.0, "fps": 0.0, "width": 0, "height": 0, "has_audio": False, "decoded_share": 0.0}
    try:
        with open_media(path, need="video") as container:
            stream = container.streams.video[0]
            info["has_audio"] = bool(container.streams.audio)
            info["fps"] = round(float(stream.average_rate or stream.guessed_rate or 0), 3)
            info["width"], info["height"] = stream.codec_context.width, stream.codec_context.height
            total = stream_duration(container, stream)
            info["duration"] = round(container.duration / 1_000_000 if container.duration else total or 0.0, 3)
            decoded = 0.0
            for _, _, decoded in video_frames(path, container):
                pass
            info["decoded_share"] = round(check_decoded(path, "video", decoded, total), 3)
        if info["has_audio"]:
            decode_audio(path, sr=PROBE_AUDIO_RATE)  # the audio rule of feature extraction, cheaply
    except MediaError as exc:
        return {**info, "status": f"bad: {exc.reason}"}
    return {**info, "status": "ok"}


def _probe_kind(path: Path) -> str:
    """``"video"`` when FFmpeg finds a moving video stream in a file of unknown extension, else the
    verdict: ``skipped`` for audio and pictures, ``bad`` for a file FFmpeg cannot read."""
    try:
        with open_media(path, need="any") as container:
            if not container.streams.video:
                return "skipped: audio-only file (no video stream)"
            still = still_image_reason(container)
            if still:
                return f"skipped: {still}"
            if (container.streams.video[0].frames or 0) <= 1 and not container.duration:
                return "skipped: a still image, not a video"
            return "video"
    except MediaError as exc:
        return f"bad: {exc.reason}"


def file_verdict(path: Path) -> str:
    """What a file is to curation and validation: ``"video"``, or ``"skipped: <why>"`` (hidden,
    audio-only, a picture, a document), or ``"bad: <why>"`` (a broken link, a file of unknown
    extension FFmpeg cannot read). The same whether the file is given alone or found in a folder."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_symlink() and not path.exists():
        return "bad: broken symbolic link"
    if path.is_dir():
        return f"bad: {folder_reason(path)}"
    if not path.exists():
        return "bad: file not found"
    if path.name.startswith("."):
        return "skipped: hidden file"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in AUDIO_EXTENSIONS:
        return "skipped: audio-only file (no video stream)"
    if suffix in IMAGE_EXTENSIONS:
        return f"skipped: a still image ({suffix} file), not a video"
    if suffix in OTHER_EXTENSIONS:
        return f"skipped: not a video ({suffix} file)"
    return _probe_kind(path)


def scan_media(folder: Path, *, seen: set | None = None) -> tuple[list[Path], list[dict]]:
    """Video files under *folder*, and every other file with why it was skipped.

    Symbolic links are followed once: a folder reached again (a link loop, or two links to one
    folder) is not entered again, and a file reached twice counts once (by device and inode).
    *seen* carries the folders and files already reached across calls (a folder in it other than
    *folder* itself is not entered: pass the other genre folders so a link never moves clips
    into another genre).
    Each file gets its :func:`file_verdict`: videos by extension
    (:data:`helpers.media.VIDEO_EXTENSIONS`); audio-only, hidden files, pictures and documents
    are skipped; files of other extensions are probed with FFmpeg (bad when it cannot read them).

    Returns
    -------
    videos : sorted paths (as reached, not resolved)
    skipped : ``{"path", "status"}`` rows, ``status`` being ``"skipped: <why>"`` or, for a file or
        folder that cannot be used, ``"bad: <why>"``
    """
    videos, skipped = [], []
    seen = set() if seen is None else seen

    def visit(directory: Path, start: bool = False) -> None:
        try:
            st = directory.stat()
            entries = sorted(directory.iterdir())
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else exc.__class__.__name__
            skipped.append({"path": str(directory), "status": f"bad: folder cannot be read ({reason})"})
            return
        if ("dir", st.st_dev, st.st_ino) in seen and not start:
            return
        seen.add(("dir", st.st_dev, st.st_ino))
        for entry in entries:
            if entry.is_dir():
                if not entry.name.startswith("."):
                    visit(entry)
                continue
            why = _skip_reason(entry, seen)
            if why == "video":
                videos.append(entry)
            elif why:
                skipped.append({"path": str(entry), "status": why})

    visit(Path(folder), start=True)
    return videos, skipped


def _skip_reason(entry: Path, seen: set) -> str:
    """:func:`file_verdict`, or ``""`` for a file already reached through another path."""
    if entry.exists():
        st = entry.stat()
        if ("file", st.st_dev, st.st_ino) in seen:
            return ""
        seen.add(("file", st.st_dev, st.st_ino))
    return file_verdict(entry)


def _video_files(folder: Path, problems: list[dict], seen: set | None = None) -> list[Path]:
    """The videos under *folder*; skipped files are appended to *problems* (see :func:`scan_media`)."""
    videos, skipped = scan_media(folder, seen=seen)
    problems += skipped
    return videos


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
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    seen = {("dir", st.st_dev, st.st_ino) for st in (f.stat() for f in [root, *folders])}
    for folder in folders:
        genre = (genre_of_folder or {}).get(folder.name, folder.name if genre_of_folder is None else None)
        if genre_of_folder is None:
            _check_genre_folder(folder)
        if genre is None or genre not in GENRES:
            continue
        for path in _video_files(folder, problems, seen):
            row = {"path": str(path.relative_to(root)), "genre": genre,
                   "group": group_of(path) if group_of else default_group(path, folder)}
            if probe:
                row.update(probe_video(path))
            rows.append(row)
    for problem in problems:
        rows.append({"path": problem["path"], "genre": "", "group": "", **{k: "" for k in PROBE_FIELDS[:-1]},
                     "status": problem["status"]})
    return rows


def _check_genre_folder(folder: Path) -> None:
    """Refuse a folder named like a genre but spelled otherwise (``action`` for ``Action``)."""
    spelled = {g.lower().replace(" ", "").replace("-", ""): g for g in GENRES}
    genre = spelled.get(folder.name.lower().replace(" ", "").replace("-", "").replace("_", ""))
    if genre and genre != folder.name:
        raise CurationError(f"{folder}: folder {folder.name!r} is not a genre name; rename it to {genre!r} "
                            f"(genre folders are named exactly {', '.join(GENRES)})")


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
    """A class-to-genre map shipped with the package (``ucf101`` or ``hmdb51``) as ``{class: genre}``.

    The maps are package data (``helpers/genre_maps/<name>.csv``, columns ``class``, ``genre``,
    ``why``); a class with an empty genre is left out.

    Raises
    ------
    CurationError
        When there is no map called *name*, or it names a genre outside ``GENRES``.
    """
    folder = resources.files("helpers") / "genre_maps"
    source = folder / f"{name}.csv"
    if not source.is_file():
        available = sorted(f.name.removesuffix(".csv") for f in folder.iterdir() if f.name.endswith(".csv"))
        raise CurationError(f"{name}: no such genre map; available: {', '.join(available)}")
    with source.open("r", newline="", encoding="utf-8") as fh:
        mapping = {r["class"]: r["genre"] for r in csv.DictReader(fh) if r["genre"]}
    unknown = set(mapping.values()) - set(GENRES)
    if unknown:
        raise CurationError(f"{source}: genres {sorted(unknown)} are not among {GENRES}")
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

    Each genre's groups are shuffled (one ``random_state``, as in scikit-learn) and dealt out whole:
    its smallest group to test and the next smallest to validation first, so that every side holds
    every genre, then each next group goes to the held-out side it brings closest to its requested
    share of the genre's clips, else to train. With many groups per genre the requested fractions
    hold to within a group; with few, the one-group-per-side floor dominates (5 films of 2 clips
    per genre give 3/1/1 films, 60/20/20) and a ``UserWarning`` says so whenever a genre is more
    than ``SPLIT_TOLERANCE`` off the request.
    The paper's ratios are 80/10/10.

    Parameters
    ----------
    test_size, val_size : fractions of each genre's clips to hold out (``val_size`` may be 0)
    random_state : int, ``numpy.random.RandomState`` or None, as in scikit-learn

    Raises
    ------
    ValueError
        From :meth:`split`, when a genre has fewer groups than sides (3, or 2 without validation).

    Example
    -------
    >>> y = ["Action"] * 6 + ["Horror"] * 6
    >>> groups = ["a1", "a1", "a2", "a2", "a3", "a3", "h1", "h1", "h2", "h2", "h3", "h3"]
    >>> train, val, test = GroupedSplit(test_size=1 / 3, val_size=1 / 3, random_state=0).split(y, y, groups)
    >>> len(train), len(val), len(test)  # each film's two clips stay together
    (4, 4, 4)
    >>> {groups[i] for i in train} & {groups[i] for i in test}
    set()
    """

    def __init__(self, test_size: float = 0.1, val_size: float = 0.1,
                 random_state: int | np.random.RandomState | None = 0):
        if not 0 < test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
            raise SettingError(f"test_size and val_size must be fractions summing below 1, got {test_size}, {val_size}")
        self.test_size, self.val_size, self.random_state = test_size, val_size, random_state

    def split(self, X, y, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted indices of the train, validation and test rows.

        *X* is only used for its length, as in scikit-learn. A group whose clips carry several genres
        belongs to its most common one, and all its clips go to one side.
        """
        from sklearn.utils import check_random_state

        y, groups = np.asarray(y), np.asarray(groups)
        if not len(X) == len(y) == len(groups):
            raise ValueError(f"X, y and groups need one entry per clip, got {len(X)}, {len(y)}, {len(groups)}")
        if not len(y):
            return (np.array([], int),) * 3
        rng = check_random_state(self.random_state)
        sides = ("train", "val", "test") if self.val_size else ("train", "test")
        wanted = {"train": 1 - self.test_size - self.val_size, "val": self.val_size, "test": self.test_size}
        genres, genre_of_clip = np.unique(y, return_inverse=True)
        names, group_of_clip, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        counts = np.zeros((len(names), len(genres)), int)
        np.add.at(counts, (group_of_clip, genre_of_clip), 1)
        home = counts.argmax(axis=1)
        side_of_group = np.empty(len(names), object)
        for g, genre in enumerate(genres):
            own = np.flatnonzero(home == g)
            if len(own) < len(sides):
                raise CurationError(f"GroupedSplit: genre {genre} has only {len(own)} group(s); a {'/'.join(sides)} "
                                 f"split needs at least {len(sides)} without splitting a group")
            order = own[rng.permutation(len(own))]
            smallest = np.argsort(sizes[order], kind="stable")[:len(sides) - 1]  # the groups held out first
            order = np.concatenate([order[smallest], np.delete(order, smallest)])
            side_of_group[order] = _deal(sizes[order], sides, wanted)
        side_of_clip = side_of_group[group_of_clip]
        self._warn_if_off(genres, genre_of_clip, side_of_clip, home, side_of_group, sides, wanted)
        return tuple(np.flatnonzero(side_of_clip == side) if side in sides else np.array([], int)
                     for side in ("train", "val", "test"))

    @staticmethod
    def _warn_if_off(genres, genre_of_clip, side_of_clip, home, side_of_group, sides, wanted) -> None:
        """One UserWarning naming every genre whose achieved split is off the request."""
        def percent(fractions: dict[str, float]) -> str:
            return "/".join(str(round(100 * fractions[s])) for s in sides)

        off: dict[str, list[str]] = {}
        for g, genre in enumerate(genres):
            clips = side_of_clip[genre_of_clip == g]
            got = {s: float(np.mean(clips == s)) for s in sides}
            if max(abs(got[s] - wanted[s]) for s in sides) > SPLIT_TOLERANCE:
                n_groups = {s: int(np.sum(side_of_group[home == g] == s)) for s in sides}
                how = (f"{sum(n_groups.values())} groups: " + " / ".join(f"{n_groups[s]} {s}" for s in sides)
                       + f" ({percent(got)}% of clips) instead of {percent(wanted)}")
                off.setdefault(how, []).append(str(genre))
        if off:
            parts = [f"genre{'s' * (len(gs) > 1)} {', '.join(gs)} {'have' if len(gs) > 1 else 'has'} {how}"
                     for how, gs in off.items()]
            warnings.warn("GroupedSplit: " + "; ".join(parts) + " (groups are kept whole, at least one per side)",
                          UserWarning, stacklevel=3)


def _deal(sizes: np.ndarray, sides: tuple[str, ...], wanted: dict[str, float]) -> list[str]:
    """Sides for groups of *sizes* clips, in the given (shuffled) order.

    Test and validation first take one group each; every next group goes to the held-out side
    furthest below its target when that brings it closer (its deficit exceeds half the group),
    else to train. The last group goes to train if train is still empty.
    """
    total, held = sizes.sum(), [s for s in ("test", "val") if s in sides]
    got = dict.fromkeys(sides, 0)
    out = []
    for i, n in enumerate(sizes):
        empty = [s for s in held if not got[s]]
        if empty:
            side = empty[0]
        elif i == len(sizes) - 1 and not got["train"]:
            side = "train"
        else:
            side = max(held, key=lambda s: wanted[s] * total - got[s])
            if wanted[side] * total - got[side] <= n / 2:
                side = "train"
        got[side] += n
        out.append(side)
    return out


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


def probe_and_split(manifest: str | Path, *, random_state: int = 0, holdout: tuple[float, float] = (0.1, 0.1)) -> Path:
    """Probe every clip listed in *manifest*, write the grouped split into it, rewrite it atomically.

    *holdout* is the (validation, test) share of each genre's films (a profile's ``holdout``).
    """
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    for row in rows:
        row.update(probe_video(clip_path(row)))
        row.pop("_root")
    assign_split(rows, val_size=holdout[0], test_size=holdout[1], random_state=random_state)
    return write_manifest(rows, manifest)


def curate_folder(root: str | Path, out: str | Path | None = None, *, dataset: str | None = None,
                  random_state: int = 0) -> Path:
    """Probe, split and write ``manifest.csv`` for a folder-per-genre tree; return its path.

    Raises
    ------
    CurationError
        When *root* is missing, holds no clips in genre folders, has a genre folder spelled
        otherwise (``action``), or a genre whose clips all come from one group (film).
    """
    root = Path(root)
    rows = manifest_from_dataset(root, dataset) if dataset else manifest_from_tree(root)
    if not any(r["genre"] for r in rows):
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise CurationError(f"{root}: no video files in folders named after the genres ({', '.join(GENRES)}); "
                            f"folders found: {', '.join(folders) or 'none'}")
    try:
        assign_split(rows, random_state=random_state)
    except ValueError as exc:
        raise CurationError(f"{root}: {exc}; add clips of other films (one subfolder per film) to that genre, "
                            "or leave the genre out") from None
    out = Path(out) if out else root / MANIFEST_NAME
    if out.parent.resolve() != root.resolve():  # paths in a manifest are relative to its own folder
        for row in rows:
            row["path"] = os.path.relpath(root / row["path"], out.parent)
    return write_manifest(rows, out)


def validate_paths(paths: list[str | Path]) -> list[dict]:
    """Probe every video under *paths* (files, or folders searched with :func:`scan_media`).

    Returns one row per file reached: ``path`` and the :func:`probe_video` fields, whose ``status``
    is ``ok`` or ``bad: <reason>`` (a missing file is ``bad: file not found``); a file that is not a
    video is ``skipped: <why>`` or ``bad: <why>`` (:func:`file_verdict`), the same verdict whether
    given alone or found in a folder. A file reached twice (through a link) is one row. A folder
    holding no files at all is one ``bad`` row naming it (and a video-like name it carries).
    """
    rows, seen = [], set()
    for p in map(Path, paths):
        if p.is_dir():
            videos, skipped = scan_media(p, seen=seen)
            rows += [{"path": str(f), **probe_video(f)} for f in videos]
            rows += skipped
            if not videos and not skipped:
                suffix = p.suffix.lower()
                looks = (f"is a folder named like a {suffix} file (a folder, not a video)"
                         if suffix in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS else "is a folder")
                rows.append({"path": str(p), "status": f"bad: {looks}, holding no files"})
            continue
        verdict = _skip_reason(p, seen)
        if verdict == "video":
            rows.append({"path": str(p), **probe_video(p)})
        elif verdict:
            rows.append({"path": str(p), "status": verdict})
    return rows
