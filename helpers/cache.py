"""The feature cache: one ``.npz`` file per clip, named by everything that changes its content.

This module holds what the cache is, apart from how the features are computed
(:mod:`helpers.features`) and how the work is spread (:mod:`helpers.scheduler`):

* **keys**: :func:`feature_key` hashes the clip's bytes (:func:`content_hash`) with every setting
  that changes the file (:func:`feature_settings`); :func:`in_shard` splits the keys between
  machines;
* **the layout**: ``<data>/cache/features/<first two characters of the key>/<key>.npz``
  (:func:`cache_dir`, :func:`feature_path`), with ``<key>.lock`` beside a file being written;
* **locks**: :func:`claim_clip` and :func:`release_clip`, so several processes can share a cache;
* **writing**: through :func:`helpers.fileio.save_npz`, the package's one atomic writer, so a
  reader never sees half a file and a killed writer leaves none (:func:`remove_stale_partials`).

:class:`FeatureCache` puts these together for one batch of clips: which are cached already, which
this process takes, and writing each file as its features are ready.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np

from helpers.config import ConfigError, Profile, data_dir
from helpers.errors import WriteError
from helpers.fileio import pid_alive, remove_stale_temps, save_npz, write_error
from helpers.manifest import clip_path

FEATURE_VERSION = 3  # bump whenever decoding or resizing changes the features


def cache_dir(root: Path | None = None) -> Path:
    """Where feature files go: ``cache/features`` under the data folder *root* (default: :func:`data_dir`)."""
    return Path(root or data_dir()) / "cache" / "features"


def content_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (files over 64 MiB: size plus three 4 MiB samples)."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        if size <= 64 << 20:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            for offset in (0, size // 2, size - (4 << 20)):
                fh.seek(offset)
                h.update(fh.read(4 << 20))
    return h.hexdigest()


def feature_settings(profile: Profile, backbone_key: dict) -> dict:
    """Every setting besides the clip itself that changes a feature file."""
    return {"version": FEATURE_VERSION, **backbone_key, "fps": profile.sample_fps, "sr": profile.sr,
            "n_fft": profile.n_fft, "hop_length": profile.hop_length, "n_mels": profile.n_mels}


def feature_key(clip_hash: str, settings: dict) -> str:
    """The cache key of one clip's features."""
    return hashlib.sha256((clip_hash + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:24]


def feature_path(key: str, root: Path | None = None) -> Path:
    """The file a key is stored in, under the feature cache folder *root* (default: :func:`cache_dir`)."""
    return (root or cache_dir()) / key[:2] / f"{key}.npz"


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the clip with *key* belongs to shard ``(i, n)`` (all clips when *shard* is None)."""
    if shard is None:
        return True
    i, n = shard
    return int(key[:8], 16) % n == i


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` into ``(i, n)`` with ``0 <= i < n``.

    Raises
    ------
    ConfigError
        When *text* is not of that form (the message names ``--shard``).
    """
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (for example 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard i/n needs 0 <= i < n (shards 0/{max(n, 1)} to {max(n, 1) - 1}/{max(n, 1)}), "
                          f"got {text!r}")
    return i, n


def save_atomic(path: Path, **arrays) -> None:
    """One feature file, written atomically (:func:`helpers.fileio.save_npz`)."""
    save_npz(path, **arrays)


def _lock_owner(lock: Path) -> tuple[str, int] | None:
    """``(host, pid)`` written in a lock file, or None when it cannot be read."""
    try:
        host, pid = lock.read_text().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def claim_clip(feature_file: Path) -> bool:
    """Take the lock of one clip's feature file (``<key>.lock`` beside it); False when another live
    process holds it.

    The lock holds this machine's name and process id. A lock left by a process of this machine
    that is no longer running (killed mid-extraction), or by this very process (an interrupted
    call), is taken over; a lock from another machine is respected.
    """
    lock = feature_file.with_suffix(".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, lock) from exc
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = _lock_owner(lock)
            here = socket.gethostname()
            if owner and (owner[0] != here or (owner[1] != os.getpid() and pid_alive(owner[1]))):
                return False
            lock.unlink(missing_ok=True)  # stale (or half-written: its writer died between open and write)
            continue
        except OSError as exc:
            raise write_error(exc, lock) from exc
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{socket.gethostname()} {os.getpid()}")
        except OSError as exc:
            lock.unlink(missing_ok=True)
            raise write_error(exc, lock) from exc
        return True
    return False


def release_clip(feature_file: Path) -> None:
    """Remove the lock :func:`claim_clip` took (a lock another process holds is left alone)."""
    lock = feature_file.with_suffix(".lock")
    if _lock_owner(lock) == (socket.gethostname(), os.getpid()):
        lock.unlink(missing_ok=True)


def remove_stale_partials(root: Path) -> list[Path]:
    """Delete temporary feature files (``.<key>.<pid>.partial.npz``) of writers no longer running; return them."""
    return remove_stale_temps(root, "*/.*.partial.npz")


def load_feature_file(path: str | Path) -> dict:
    """Read one feature file into a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class FeatureCache:
    """The feature files of one batch of clips under *root* (default :func:`cache_dir`), for *settings*.

    One record per clip (a dict: ``path``, ``key``, ``file``, ``status``) says where it stands:
    :meth:`scan` marks those already ``cached``, ``skipped`` or ``bad``; :meth:`claim` takes a
    clip's lock (else marks it ``locked`` or ``cached``); :meth:`write` writes its file with
    *save* (default :func:`save_atomic`) and marks it ``written``; :meth:`release_all` drops every
    lock still held, whatever happened.
    """

    def __init__(self, root: Path | None, settings: dict, *, save=None):
        self.root = Path(root) if root is not None else cache_dir()
        self.settings = settings
        self.save = save or save_atomic
        self.todo: list[dict] = []
        self._claimed: list[Path] = []

    def scan(self, rows: list[dict], shard: tuple[int, int] | None = None, *, stacklevel: int = 2) -> list[dict]:
        """The record of every clip of *rows* in *shard*; those still to write are kept in ``todo``.

        Temporary files of killed writers are removed first. A clip listed twice (the same file)
        gets one record and a warning naming both manifest lines; a row whose ``status`` is not
        ``ok`` is ``skipped``; a file that cannot be read is ``bad``.
        """
        remove_stale_partials(self.root)
        records, self.todo, listed = [], [], {}
        for line, row in enumerate(rows, start=2):
            path = clip_path(row)
            if str(path) in listed:
                warnings.warn(f"{path}: listed twice in the manifest (lines {listed[str(path)]} and {line}); "
                              "extracted once", stacklevel=stacklevel + 1)
                continue
            listed[str(path)] = line
            if row.get("status", "ok") not in ("", "ok"):
                records.append({"path": str(path), "status": f"skipped: {row['status']}"})
                continue
            try:
                key = feature_key(content_hash(path), self.settings)
            except OSError as exc:
                records.append({"path": str(path), "status": f"bad: cannot read ({exc.__class__.__name__})"})
                continue
            if not in_shard(key, shard):
                continue
            file = feature_path(key, self.root)
            rec = {"path": str(path), "key": key, "file": str(file)}
            records.append(rec)
            if file.exists():
                rec["status"] = "cached"
            else:
                self.todo.append(rec)
        return records

    def claim(self, rec: dict) -> bool:
        """Take *rec*'s lock; False (its status set to ``locked`` or ``cached``) when it is not this process's to write."""
        file = Path(rec["file"])
        if not claim_clip(file):
            rec["status"] = "locked"
            return False
        if file.exists():  # written by another process since the scan
            release_clip(file)
            rec["status"] = "cached"
            return False
        self._claimed.append(file)
        return True

    def write(self, rec: dict, **arrays) -> None:
        """Write *rec*'s feature file (the *arrays* and the settings) atomically, release its lock, mark it ``written``.

        Raises
        ------
        helpers.errors.WriteError
            When the file cannot be written; the message says how many clips of the batch were
            written (they are kept) and nothing of this one is left.
        """
        try:
            self.save(Path(rec["file"]), **arrays, settings=json.dumps(self.settings))
        except WriteError as exc:  # the next clip would fail too: stop, saying how far the batch got
            n = sum(r.get("status") == "written" for r in self.todo)
            raise WriteError(exc.path, f"{exc.reason}; feature extraction stopped after writing {n} of "
                                       f"{len(self.todo)} clips (they are kept: run the same command again once "
                                       "there is room)", exc.errno) from exc
        self.release(rec)
        rec["status"] = "written"

    def release(self, rec: dict) -> None:
        """Drop *rec*'s lock (a clip that will not be written by this process after all)."""
        release_clip(Path(rec["file"]))

    def release_all(self) -> None:
        """Drop every lock this cache took (an interrupted batch leaves none behind)."""
        for file in self._claimed:
            release_clip(file)
        self._claimed = []
