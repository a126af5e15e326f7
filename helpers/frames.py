"""Sampling frames at N frames per second, fixed-length sequences, contact sheets and flipbooks.

The paper kept 4 of every 24 frames a second and grouped 40 sampled frames (10 s) into one
sequence. :func:`sample_frames` does the first step for any source rate; :func:`make_sequences`
the second, with a stated policy for clips shorter or longer than one sequence.

Example
-------
>>> frames, times = sample_frames("clip.mp4", fps=4.0, size=(299, 299))  # doctest: +SKIP
>>> windows, mask = make_sequences(features, length=40)  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np


class VideoError(ValueError):
    """A video that cannot be read; the message names the file and the reason."""


def _open_video(path: str | Path):
    import av

    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a readable video ({exc.__class__.__name__}: {exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    turns = int(round(degrees / 90.0)) % 4
    if turns == 0:
        return img
    return np.ascontiguousarray(np.rot90(img, k=turns))


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    """Convert (and resize, in the same swscale pass) a decoded frame to RGB, then apply its rotation."""
    rotation = getattr(frame, "rotation", 0) or 0
    if size is None:
        return _rotate(frame.to_ndarray(format="rgb24"), rotation)
    h, w = size if rotation % 180 == 0 else size[::-1]  # resize before rotating
    return _rotate(frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA"), rotation)


def sample_frames_multi(path: str | Path, requests: Sequence[tuple[float, tuple[int, int] | None]]
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sample one clip for several ``(fps, size)`` requests while decoding it only once.

    Returns one ``(frames, timestamps)`` pair per request, as :func:`sample_frames` does.
    """
    if not requests:
        raise ValueError("requests must name at least one (fps, size) pair")
    for fps, size in requests:
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
    path = Path(path)
    container = _open_video(path)
    kept: list[list[np.ndarray]] = [[] for _ in requests]
    stamps: list[list[float]] = [[] for _ in requests]
    next_k = [0 for _ in requests]

    def emit(frame, until: float) -> None:
        """Keep *frame* for every sample time before *until* (it is on screen until then)."""
        converted: dict = {}  # one conversion per distinct size, and none for frames not kept
        for k, (fps, size) in enumerate(requests):
            while next_k[k] / fps < until - 1e-9:
                if size not in converted:
                    converted[size] = _to_rgb(frame, size)
                img = converted[size]
                kept[k].append(img)
                stamps[k].append(next_k[k] / fps)
                next_k[k] += 1

    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
        prev, prev_t, step = None, 0.0, None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * frame.time_base)
            start = t if start is None else start
            t -= start
            if prev is not None:
                step = t - prev_t if t > prev_t else step
                emit(prev, t)
            prev, prev_t = frame, t
        if prev is not None:  # the last frame stays on screen for one frame duration
            rate = float(stream.average_rate or stream.guessed_rate or 0) or None
            emit(prev, prev_t + (1.0 / rate if rate else (step or 1e-3)))
    except Exception as exc:  # PyAV raises several error types for broken streams
        if not any(kept):
            raise VideoError(f"{path}: cannot decode video ({exc.__class__.__name__}: {exc})") from None
    finally:
        container.close()
    if not any(kept):
        raise VideoError(f"{path}: no decodable video frames")
    return [(np.stack(k), np.asarray(s, np.float64)) for k, s in zip(kept, stamps)]


def sample_frames(path: str | Path, fps: float = 4.0, size: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sample a video at *fps* frames per second.

    Sample times are ``0, 1/fps, 2/fps, ...`` seconds, up to the end of the last frame; each takes
    the frame on screen at that moment (the latest frame whose timestamp is not after it), so the
    source rate (24, 25, 29.97, 60 or variable) does not matter: a clip of duration ``d`` gives
    ``ceil(d * fps)`` frames. A clip shorter than ``1/fps`` yields its first frame. Rotation
    metadata is applied.

    Parameters
    ----------
    path : video file
    fps : frames per second to keep (the paper: 4)
    size : ``(height, width)`` to resize kept frames to, or None to keep the source size

    Returns
    -------
    frames : uint8 array ``[n, h, w, 3]``, RGB
    timestamps : float array ``[n]``, the sample times in seconds

    Raises
    ------
    VideoError
        When the file is missing, empty, not a video or undecodable (the message names it).
    """
    return sample_frames_multi(path, [(fps, size)])[0]


def make_sequences(features: np.ndarray, length: int = 40, *, policy: str = "pad",
                   stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut per-frame *features* ``[n, ...]`` into windows of *length* steps, with a mask.

    Policies
    --------
    ``"pad"`` (one window): a clip shorter than *length* is padded with zeros at the end and the
    mask marks the real steps; a longer clip keeps *length* evenly spaced steps.
    ``"sliding"`` (timelines): windows start every *stride* steps (default *length*); the last
    window is padded if the clip does not fill it.

    Returns
    -------
    windows : ``[w, length, ...]``, same dtype as *features*
    mask : bool ``[w, length]``, True on real steps
    """
    features = np.asarray(features)
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    n = len(features)
    if n == 0:
        raise ValueError("features are empty: a clip needs at least one sampled frame")
    if policy == "pad":
        if n >= length:
            idx = np.linspace(0, n - 1, length).round().astype(int)
            return features[idx][None], np.ones((1, length), bool)
        starts = [0]
    elif policy == "sliding":
        stride = stride or length
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        starts = list(range(0, max(1, n - length + 1), stride))
        if starts[-1] + length < n:
            starts.append(starts[-1] + stride)
    else:
        raise ValueError(f"policy must be 'pad' or 'sliding', got {policy!r}")
    windows = np.zeros((len(starts), length) + features.shape[1:], features.dtype)
    mask = np.zeros((len(starts), length), bool)
    for w, s in enumerate(starts):
        piece = features[s:s + length]
        windows[w, : len(piece)] = piece
        mask[w, : len(piece)] = True
    return windows, mask


def contact_sheet(frames: np.ndarray, cols: int = 8, *, timestamps: np.ndarray | None = None,
                  max_frames: int = 32) -> np.ndarray:
    """Tile up to *max_frames* evenly chosen frames into one uint8 RGB image, with time labels."""
    frames = np.asarray(frames)
    idx = np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int)
    tiles = [frames[i].copy() for i in idx]
    if timestamps is not None:
        for tile, i in zip(tiles, idx):
            cv2.putText(tile, f"{timestamps[i]:.2f}s", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (rows * cols - len(tiles))
    return np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(rows)])


def frame_descriptors(frames: np.ndarray) -> np.ndarray:
    """A cheap per-frame description: HSV histograms (12 hue, 4 saturation, 4 value bins), normalised.

    Used by the cheap classifiers of notebooks 01 and 02, where running InceptionV3 would hide the
    point being made.
    """
    out = []
    for f in np.asarray(frames):
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        parts = [cv2.calcHist([hsv], [c], None, [b], [0, r]).ravel() for c, b, r in ((0, 12, 180), (1, 4, 256), (2, 4, 256))]
        hist = np.concatenate(parts)
        out.append(hist / max(1.0, hist.sum() / 3))
    return np.asarray(out, np.float32)


def sequence_summary(descriptors: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time plus the mean absolute change between steps.

    The last part is the only temporal one: it sees flicker, cuts and motion that a single frame
    cannot show.
    """
    d = np.asarray(descriptors, np.float32)
    change = np.abs(np.diff(d, axis=0)).mean(0) if len(d) > 1 else np.zeros(d.shape[1], np.float32)
    return np.concatenate([d.mean(0), d.std(0), change])
