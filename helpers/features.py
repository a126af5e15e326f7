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
* Decoding runs in worker processes (:mod:`helpers.workers`; default: one per core but one)
  while the main process runs the network on full batches of uint8 frames, across clip
  boundaries, and writes the files (:mod:`helpers.scheduler`). The decoded clips waiting for the
  network are bounded by an estimate of their size (``max_queued_mb``, default 1024 MB; one clip
  is always allowed), and the workers are stopped when the call returns. The files do not depend
  on the number of workers or on that bound: clips are taken in the same order either way.

The work is in three parts: the cache (keys, locks, the file layout, atomic writes:
:mod:`helpers.cache`), the scheduler (workers, the bounded queue, batching across clips:
:mod:`helpers.scheduler` and :mod:`helpers.workers`), and here what a clip's features are
(:func:`decode_clip`, :func:`clip_features`) and how a set of clips is read back and cut into
model inputs (:class:`ClipSet`, :func:`clip_inputs`, :func:`sequence_inputs`).

The softmax features of the paper are the retrained head's output on the pool features; they
are computed from the cached pool features (:func:`softmax_features`), so retraining the head never
forces a new extraction.
"""
from __future__ import annotations

import time
from contextlib import closing
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from helpers.audio import StreamingLogMel, frame_audio_features, step_means
from helpers.cache import (FEATURE_VERSION, FeatureCache, cache_dir, claim_clip, content_hash,  # noqa: F401
                           feature_key, feature_path, feature_settings, in_shard, load_feature_file, parse_shard,
                           release_clip, remove_stale_partials, save_atomic)
from helpers.config import GENRES, Profile, get_profile
from helpers.errors import SettingError
from helpers.frames import decode_video, make_sequences
from helpers.manifest import clip_path
from helpers.media import MediaError, media_duration
from helpers.scheduler import MB, DecodeQueue, FrameBatcher, decoded_bytes
from helpers.workers import JobPool, run_alone, usable_workers

THUMB_SIZE = 32


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
                     threads: int = 1, max_queued_mb: float | None = None) -> list[dict]:
    """Write the feature file of every usable clip in *rows* (skipping those already cached).

    *workers* decoding processes (default :func:`helpers.workers.default_workers`; 0 decodes in
    a thread of this process) of *threads* threads each prepare the clips; this process runs the
    network and writes. The files are the same whatever the number of workers. The decoded clips
    waiting for the network take at most about *max_queued_mb* megabytes (default: the profile's
    ``max_queued_mb``), or one clip when a single clip is larger. No worker process is left
    running when this returns.

    Returns one record per clip: ``path``, ``key``, ``file``, ``status`` (``cached``, ``written``,
    ``locked``, ``skipped: <why>`` or ``bad: <reason>``). A bad clip is recorded and the batch goes on.
    A clip listed twice (the same file) is extracted once, with a warning.

    Raises
    ------
    helpers.errors.WriteError
        When a feature file cannot be written (no space left, read-only cache): the batch stops
        there, the message says how many clips were written; nothing partial is left.
    helpers.errors.SettingError
        When *workers* or *max_queued_mb* is negative.
    helpers.errors.WorkerStartError
        When the worker processes cannot start (a module they need fails to import): one error
        naming the cause, not every clip recorded as bad.

    Several processes can share one cache: each clip is locked while it is extracted
    (:func:`helpers.cache.claim_clip`), a clip locked by another running process is left to it
    (``locked``), and temporary files of writers that were killed are removed first.
    """
    from helpers.progress import progress_bar

    if workers is not None and workers < 0:
        raise SettingError(f"workers must be 0 or more (0: decode in a thread of this process), got {workers}")
    prof = get_profile(profile)
    queued_mb = prof.max_queued_mb if max_queued_mb is None else max_queued_mb
    if queued_mb < 0:
        raise SettingError(f"max_queued_mb must be 0 or more (0: one decoded clip at a time), got {queued_mb}")
    cache = FeatureCache(root, feature_settings(prof, backbone.key), save=save_atomic)
    records = cache.scan(rows, shard, stacklevel=2)
    if not cache.todo:
        return records
    workers = usable_workers(workers, stacklevel=2)
    bar = _ExtractionBar(progress_bar(total=len(cache.todo), desc="features", unit="clip", disable=not progress))

    def write(clip: tuple[dict, Decoded], pool: np.ndarray) -> None:
        rec, d = clip
        cache.write(rec, pool=pool, audio=d.audio, timestamps=d.timestamps, has_audio=np.bool_(d.has_audio),
                    thumbs=d.thumbs)
        bar.clip_done(len(pool))

    def start(rec: dict):
        if cache.claim(rec):
            return jobs.submit("helpers.features:decode_clip", Path(rec["path"]), prof, backbone.input_size)
        bar.clip_done(0)  # locked by another process, or written by it meanwhile
        return None

    batcher = FrameBatcher(lambda frames: backbone.pool_features(frames, prof.batch_size), prof.batch_size, write)
    queue = DecodeQueue(start, lambda rec: clip_bytes(Path(rec["path"]), prof, backbone.input_size),
                        max_bytes=int(queued_mb * MB), depth=2 * max(1, workers))
    try:
        with JobPool(workers, threads) as jobs, closing(queue.run(cache.todo)) as decoding:
            for rec, future in decoding:
                _to_network(rec, future, batcher, cache, prof, backbone.input_size, bar)
            batcher.finish()
    finally:
        cache.release_all()  # an interrupted call leaves no lock behind
        bar.close()
    return records


def clip_bytes(path: Path, profile: Profile, input_size: int) -> int | None:
    """About how many bytes one clip takes decoded for extraction (:func:`helpers.scheduler.decoded_bytes`):
    its sampled frames at *input_size*, thumbnails, audio features, timestamps and pool features;
    None when the file declares no duration (or cannot be opened)."""
    from helpers.backbone import POOL_DIM

    try:
        seconds = media_duration(path)
    except (MediaError, OSError, ValueError):
        seconds = None
    per_frame = THUMB_SIZE * THUMB_SIZE * 3 + profile.n_mels * 4 + 8 + POOL_DIM * 4
    return decoded_bytes(seconds, profile.sample_fps, input_size, input_size, per_frame=per_frame)


def _to_network(rec: dict, future, batcher: FrameBatcher, cache: FeatureCache, profile: Profile, input_size: int,
                bar: _ExtractionBar) -> None:
    """One decoded clip into the batcher (its frames leave the decoded record), or recorded ``bad``."""
    try:
        try:
            d = future.result()
        except BrokenProcessPool:  # a worker died (native crash): this clip alone, in a fresh process
            try:
                d = run_alone("helpers.features:decode_clip", Path(rec["path"]), profile, input_size)
            except BrokenProcessPool:
                raise MediaError(Path(rec["path"]), "decoding it crashed the worker process (FFmpeg or OpenCV "
                                                    "failed in native code)") from None
    except MediaError as exc:
        rec["status"] = f"bad: {exc}"
        cache.release(rec)
        bar.clip_done(0)
        return
    frames, d.frames = d.frames, None  # held by the batcher alone, freed once through the network
    batcher.add((rec, d), frames)


class _ExtractionBar:
    """The progress bar of :func:`extract_features`: clips done, and frames per second in its postfix."""

    def __init__(self, bar):
        self.bar, self.frames, self.start = bar, 0, time.perf_counter()

    def clip_done(self, frames: int) -> None:
        self.bar.update(1)
        if frames:
            self.frames += frames
            self.bar.set_postfix(frames_per_s=f"{self.frames / (time.perf_counter() - self.start):.0f}")

    def close(self) -> None:
        self.bar.close()


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
