"""Per-clip feature files: InceptionV3 pool features, aligned audio features, thumbnails.

For each clip of a manifest, :func:`extract_features` samples frames once at the profile's fps,
runs the backbone on them and computes one log-mel vector per frame step. One ``.npz`` file per
clip is written under ``data/cache/features/`` with a name derived from everything that changes
its content (the clip's bytes, backbone, weights, input size, fps, precision, audio settings).

* Writes are atomic (:mod:`helpers.fileio`): an interrupted run never leaves a partial file and a
  rerun resumes where it stopped. A write that fails (a full disk, a read-only folder) stops the
  batch with one :class:`~helpers.errors.WriteError` saying how far it got: the next clip would
  fail too, and the clips written are kept.
* A clip listed twice in the manifest is extracted once (a warning names it).
* ``shard=(i, n)`` takes every clip whose key hashes to ``i`` modulo ``n``, so several machines
  can share a manifest deterministically.
* Several processes on one cache share the work: a clip is locked while it is extracted, and a
  lock or temporary file left by a killed process is taken over or removed.
* Decoding runs in a pool of worker processes (:mod:`helpers.workers`; default: one per core but
  one) while the main process runs the network on full batches of uint8 frames, across clip
  boundaries, and writes the files. At most a few decoded clips wait, so memory stays bounded.
  The files do not depend on the number of workers: clips are taken in the same order either way.

The softmax features of the paper are the retrained head's output on the pool features; they
are computed from the cached pool features (:func:`softmax_features`), so retraining the head never
forces a new extraction.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from helpers.audio import StreamingLogMel, frame_audio_features, step_means
from helpers.config import GENRES, ConfigError, Profile, data_dir, get_profile
from helpers.errors import SettingError, WriteError
from helpers.fileio import pid_alive, remove_stale_temps, save_npz, write_error
from helpers.frames import decode_video, make_sequences
from helpers.manifest import clip_path
from helpers.media import MediaError, media_duration
from helpers.workers import default_workers, init_worker, main_is_importable, process_pool, worker_initargs

FEATURE_VERSION = 3  # bump whenever decoding or resizing changes the features
THUMB_SIZE = 32


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


@dataclass
class Decoded:
    """What a decoding worker prepares for one clip."""

    frames: np.ndarray
    timestamps: np.ndarray
    audio: np.ndarray
    has_audio: bool
    thumbs: np.ndarray
    audio_error: str = ""


def decode_clip(path: Path, profile: Profile, input_size: int, *, audio_optional: bool = False) -> Decoded:
    """Sample frames (resized to the backbone's input), thumbnails and aligned audio of one clip.

    The file is read once for video and audio; the audio is resampled once and gets one
    spectrogram, averaged per frame step. Runs in the decoding workers.

    With *audio_optional*, audio that cannot be decoded (or decodes less than the minimum share)
    is treated as no audio and its reason kept in ``audio_error``; otherwise it raises.

    Raises
    ------
    MediaError
        When the video (or, unless *audio_optional*, the audio) cannot be used.
    """
    video = decode_video(path, [(profile.sample_fps, (input_size, input_size))], audio_sr=profile.sr)
    frames, times = video.samples[0]
    thumbs = thumbnails(frames)
    if video.audio_error and not audio_optional:
        raise MediaError(path, video.audio_error)
    y, audio_error = (video.audio.samples if video.audio is not None else None), video.audio_error
    audio, has_audio = frame_audio_features(y, profile.sr, times, profile.sample_fps, n_fft=profile.n_fft,
                                            hop_length=profile.hop_length, n_mels=profile.n_mels)
    return Decoded(frames, times, audio, has_audio, thumbs, audio_error)


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """The 32x32 thumbnails the 3D CNN reads, one per sampled frame (``[n, 32, 32, 3]`` uint8)."""
    return np.stack([cv2.resize(f, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA) for f in frames])


def clip_features(path: str | Path, backbone, profile: str | Profile, *, chunk_frames: int = 256,
                  thumbs: bool = True) -> dict:
    """All features of one clip, computed now (no cache): what ``vgenre predict`` uses.

    Audio that cannot be decoded does not stop it: ``has_audio`` is then False and ``audio_error``
    says why; ``duration`` is the seconds the file declares (else the sampled span); ``share`` and
    ``decoded_seconds`` say how much of the video decoded. With
    *thumbs* False (a model that does not take them) ``thumbs`` is None.

    Memory does not grow with the file's length beyond the per-frame features: frames go through
    the backbone *chunk_frames* at a time as they decode, into an array sized from the declared
    duration, and the audio becomes its log-mel spectrogram as it decodes
    (:class:`helpers.audio.StreamingLogMel`).
    """
    from helpers.backbone import POOL_DIM

    prof = get_profile(profile)
    size, duration = backbone.input_size, media_duration(path)
    # sized from the declared duration, trusted up to 4 hours (a bogus header must not reserve
    # gigabytes); a longer or mis-declared file makes the arrays grow
    planned = min(max(duration or 0.0, 0.0), 4 * 3600.0)
    pool = _Rows(int(np.ceil(planned * prof.sample_fps)) + 1, (POOL_DIM,), np.float32)
    small = _Rows(pool.capacity, (THUMB_SIZE, THUMB_SIZE, 3), np.uint8) if thumbs else None

    def frames_done(frames: np.ndarray) -> None:
        pool.add(backbone.pool_features(frames, prof.batch_size))
        if small is not None:
            small.add(thumbnails(frames))

    mel = StreamingLogMel(prof.sr, n_fft=prof.n_fft, hop_length=prof.hop_length, n_mels=prof.n_mels,
                          seconds=planned)
    video = decode_video(path, [(prof.sample_fps, (size, size))], audio_sr=prof.sr, audio_consumer=mel.add,
                         frame_consumer=frames_done, chunk_frames=chunk_frames)
    times = video.samples[0][1]
    has_audio = video.audio is not None and mel.n >= prof.hop_length
    audio = (step_means(mel.finish(), prof.sr, times, prof.sample_fps, hop_length=prof.hop_length) if has_audio
             else np.zeros((len(times), prof.n_mels), np.float32))
    return {"pool": pool.result(), "audio": audio, "timestamps": times, "has_audio": has_audio,
            "thumbs": small.result() if small is not None else None, "audio_error": video.audio_error,
            "duration": duration, "share": video.share, "decoded_seconds": video.decoded_seconds}


class _Rows:
    """Rows appended chunk by chunk into one array allocated up front (no copy of the whole at the end)."""

    def __init__(self, capacity: int, shape: tuple, dtype):
        self.capacity, self.n = max(1, capacity), 0
        self.data = np.empty((self.capacity, *shape), dtype)

    def add(self, rows: np.ndarray) -> None:
        if self.n + len(rows) > len(self.data):  # more frames than the declared duration: grow
            grown = np.empty((max(2 * len(self.data), self.n + len(rows)), *self.data.shape[1:]), self.data.dtype)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:self.n + len(rows)] = rows
        self.n += len(rows)

    def result(self) -> np.ndarray:
        return self.data[:self.n]


def extract_features(rows: list[dict], backbone, profile: str | Profile, *, root: Path | None = None,
                     shard: tuple[int, int] | None = None, progress: bool = True, workers: int | None = None,
                     threads: int = 1) -> list[dict]:
    """Write the feature file of every usable clip in *rows* (skipping those already cached).

    *workers* decoding processes (default :func:`helpers.workers.default_workers`; 0 decodes in
    a thread of this process) of *threads* threads each prepare the clips; this process runs the
    network and writes. The files are the same whatever the number of workers.

    Returns one record per clip: ``path``, ``key``, ``file``, ``status`` (``cached``, ``written``,
    ``locked``, ``skipped: <why>`` or ``bad: <reason>``). A bad clip is recorded and the batch goes on.
    A clip listed twice (the same file) is extracted once, with a warning.

    Raises
    ------
    helpers.errors.WriteError
        When a feature file cannot be written (no space left, read-only cache): the batch stops
        there, the message says how many clips were written; nothing partial is left.
    helpers.errors.SettingError
        When *workers* is negative.

    Several processes can share one cache: each clip is locked while it is extracted
    (:func:`claim_clip`), a clip locked by another running process is left to it (``locked``), and
    temporary files of writers that were killed are removed first.
    """
    from helpers.progress import progress_bar

    if workers is not None and workers < 0:
        raise SettingError(f"workers must be 0 or more (0: decode in a thread of this process), got {workers}")
    prof = get_profile(profile)
    settings = feature_settings(prof, backbone.key)
    remove_stale_partials(root or cache_dir())
    records, todo, listed = [], [], {}
    for line, row in enumerate(rows, start=2):
        path = clip_path(row)
        if str(path) in listed:
            warnings.warn(f"{path}: listed twice in the manifest (lines {listed[str(path)]} and {line}); "
                          "extracted once", stacklevel=2)
            continue
        listed[str(path)] = line
        if row.get("status", "ok") not in ("", "ok"):
            records.append({"path": str(path), "status": f"skipped: {row['status']}"})
            continue
        try:
            key = feature_key(content_hash(path), settings)
        except OSError as exc:
            records.append({"path": str(path), "status": f"bad: cannot read ({exc.__class__.__name__})"})
            continue
        if not in_shard(key, shard):
            continue
        rec = {"path": str(path), "key": key, "file": str(feature_path(key, root))}
        records.append(rec)
        if feature_path(key, root).exists():
            rec["status"] = "cached"
        else:
            todo.append(rec)
    if not todo:
        return records
    bar = progress_bar(total=len(todo), desc="features", unit="clip", disable=not progress)
    start, bs = time.perf_counter(), prof.batch_size
    done = {"frames": 0}
    queue: list[list] = []  # [clip entry, its frames not yet through the network], in clip order
    claimed: list[Path] = []

    def write(entry: dict) -> None:
        d, rec = entry["decoded"], entry["rec"]
        try:
            save_atomic(Path(rec["file"]), pool=np.concatenate(entry["out"]).astype(np.float32), audio=d.audio,
                        timestamps=d.timestamps, has_audio=np.bool_(d.has_audio), thumbs=d.thumbs,
                        settings=json.dumps(settings))
        except WriteError as exc:  # the next clip would fail too: stop, saying how far the batch got
            n = sum(r.get("status") == "written" for r in todo)
            raise WriteError(exc.path, f"{exc.reason}; feature extraction stopped after writing {n} of {len(todo)} "
                                       "clips (they are kept: run the same command again once there is room)",
                             exc.errno) from exc
        release_clip(Path(rec["file"]))
        rec["status"] = "written"
        done["frames"] += len(d.frames)
        bar.update(1)
        bar.set_postfix(frames_per_s=f"{done['frames'] / (time.perf_counter() - start):.0f}")

    def run_batches(final: bool) -> None:
        """Full batches of frames across clip boundaries, so every forward pass is full."""
        while queue and (final or sum(len(f) for _, f in queue) >= bs):
            take, owners, need = [], [], bs
            while need and queue:
                entry, frames = queue[0]
                part = frames[:need]
                take.append(part)
                owners.append((entry, len(part)))
                if len(part) == len(frames):
                    queue.pop(0)
                else:
                    queue[0][1] = frames[len(part):]
                need -= len(part)
            feats = backbone.pool_features(np.concatenate(take), bs)
            offset = 0
            for entry, n in owners:
                entry["out"].append(feats[offset:offset + n])
                offset += n
                if sum(len(o) for o in entry["out"]) == len(entry["decoded"].frames):
                    write(entry)

    def mine():
        """The clips this process takes, locked as they are reached; the others marked as they are."""
        for rec in todo:
            file = Path(rec["file"])
            if not claim_clip(file):
                rec["status"] = "locked"
            elif file.exists():  # written by another process since the scan
                release_clip(file)
                rec["status"] = "cached"
            else:
                claimed.append(file)
                yield rec
                continue
            bar.update(1)

    def take(rec: dict, future) -> None:
        try:
            try:
                d = future.result()
            except BrokenProcessPool:  # a worker died (native crash): this clip alone, in a fresh process
                d = _decode_alone(Path(rec["path"]), prof, backbone.input_size)
        except MediaError as exc:
            rec["status"] = f"bad: {exc}"
            release_clip(Path(rec["file"]))
            bar.update(1)
            return
        queue.append([{"rec": rec, "decoded": d, "out": []}, d.frames])
        run_batches(final=False)

    workers = default_workers() if workers is None else workers
    if workers:
        safe, why = main_is_importable()
        if not safe:
            warnings.warn(why, stacklevel=2)
            workers = 0
    own = ThreadPoolExecutor(max_workers=1) if workers == 0 else None
    depth = 2 * max(1, workers)  # decoded clips waiting for the network: memory stays bounded

    def submit(rec: dict):
        args = (decode_clip, Path(rec["path"]), prof, backbone.input_size)
        if own is not None:
            return own.submit(*args)
        try:
            return process_pool(workers, threads).submit(*args)
        except BrokenProcessPool:  # the pool lost a worker earlier: process_pool gives a fresh one
            return process_pool(workers, threads).submit(*args)

    pending: deque = deque()
    try:
        for rec in mine():
            pending.append((rec, submit(rec)))
            if len(pending) > depth:
                take(*pending.popleft())
        while pending:
            take(*pending.popleft())
        run_batches(final=True)
    finally:
        for _, future in pending:  # stopped early: the clips not started are not decoded for nothing
            future.cancel()
        if own is not None:
            own.shutdown(cancel_futures=True)
        for file in claimed:  # an interrupted call leaves no lock behind
            release_clip(file)
        bar.close()
    return records


def _decode_alone(path: Path, profile: Profile, input_size: int) -> Decoded:
    """Decode one clip in a process of its own; a crash there makes the clip bad, not the batch."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                             initargs=worker_initargs(1)) as pool:
        try:
            return pool.submit(decode_clip, path, profile, input_size).result()
        except BrokenProcessPool:
            raise MediaError(path, "decoding it crashed the worker process (FFmpeg or OpenCV failed "
                                   "in native code)") from None


def load_feature_file(path: str | Path) -> dict:
    """Read one feature file into a dict of arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def softmax_features(head, pool: np.ndarray) -> np.ndarray:
    """The paper's softmax features: the retrained head's six genre probabilities per frame."""
    return np.asarray(head.predict(pool, verbose=0, batch_size=512), np.float32)


@dataclass
class ClipSet:
    """Per-clip features and labels of a set of clips (one entry per clip), read from feature files."""

    pool: list[np.ndarray]
    audio: list[np.ndarray]
    thumbs: list[np.ndarray]
    has_audio: np.ndarray
    y: np.ndarray
    meta: list[dict] = field(default_factory=list)

    def subset(self, index) -> "ClipSet":
        """The clips at *index* (a boolean mask or integer indices)."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, int)
        return ClipSet([self.pool[i] for i in idx], [self.audio[i] for i in idx], [self.thumbs[i] for i in idx],
                       self.has_audio[idx], self.y[idx], [self.meta[i] for i in idx])

    def split(self, name: str) -> "ClipSet":
        """The clips whose manifest split is *name* (train, val, test or hard)."""
        return self.subset(np.array([m.get("split") == name for m in self.meta], bool))

    def __len__(self) -> int:
        return len(self.y)


def load_clips(rows: list[dict], records: list[dict]) -> ClipSet:
    """Join manifest rows with their feature files (records of :func:`extract_features`) into a ClipSet."""
    by_path = {r["path"]: r for r in records if r.get("status") in ("cached", "written")}
    pool, audio, thumbs, has_audio, y, meta = [], [], [], [], [], []
    for row in rows:
        rec = by_path.get(str(clip_path(row)))
        if rec is None or row.get("genre") not in GENRES:
            continue
        f = load_feature_file(rec["file"])
        pool.append(f["pool"]); audio.append(f["audio"]); thumbs.append(f["thumbs"])
        has_audio.append(bool(f["has_audio"])); y.append(GENRES.index(row["genre"]))
        meta.append({k: v for k, v in row.items() if not k.startswith("_")} | {"file": rec["file"],
                    "abspath": rec["path"], "timestamps": f["timestamps"]})
    return ClipSet(pool, audio, thumbs, np.array(has_audio, bool), np.array(y, int), meta)


def clip_inputs(pool: np.ndarray, audio: np.ndarray, thumbs: np.ndarray | None, seq_len: int, *, head=None,
                policy: str = "pad", stride: int | None = None, starts: list[int] | None = None
                ) -> dict[str, np.ndarray]:
    """The model inputs of one clip: windows of *seq_len* steps of ``video``, ``audio`` and ``thumbs``
    with their ``mask``, cut by :func:`helpers.frames.make_sequences` (*policy* ``pad``: one window;
    ``sliding``: one every *stride* steps, or only those at *starts*). With a retrained *head*,
    ``video`` holds its softmax features in place of the pool features. This is the one place a
    clip's model inputs are built.
    """
    video = softmax_features(head, pool) if head is not None else pool
    cut = dict(policy=policy, stride=stride, starts=starts)
    windows, mask = make_sequences(video, seq_len, **cut)
    inputs = {"video": windows.astype(np.float32), "mask": mask,
              "audio": make_sequences(audio, seq_len, **cut)[0].astype(np.float32)}
    if thumbs is not None:  # None: the model takes no thumbnails
        inputs["thumbs"] = make_sequences(thumbs, seq_len, **cut)[0]
    return inputs


def sequence_inputs(clips: ClipSet, seq_len: int, *, head=None) -> dict[str, np.ndarray]:
    """Every clip's one window (:func:`clip_inputs`, policy ``pad``) stacked into model inputs ``[N, ...]``."""
    if not len(clips):
        raise ValueError("no clips to stack into model inputs")
    per_clip = [clip_inputs(p, a, t, seq_len, head=head) for p, a, t in zip(clips.pool, clips.audio, clips.thumbs)]
    return {k: np.concatenate([c[k] for c in per_clip]) for k in per_clip[0]}
