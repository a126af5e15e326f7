"""Sampling frames at N frames per second, fixed-length sequences, contact sheets and flipbooks.

The paper kept 4 of every 24 frames a second and grouped 40 sampled frames (10 s) into one
sequence. :func:`sample_frames` does the first step for any source rate; :func:`make_sequences`
the second, with a stated policy for clips shorter or longer than one sequence. The sampling rule
(which sample times a decoded frame serves) is notebook 02's ``# @save`` cell
:func:`helpers.course.frame_rate_experiments.samples_due`; this module decodes, converts and resizes.

Usage (a file of your own)::

    frames, times = sample_frames("clip.mp4", fps=4.0, size=(299, 299))
    windows, mask = make_sequences(features, length=40)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from helpers.audio import AudioSink
from helpers.course.frame_rate_experiments import samples_due
from helpers.errors import SettingError
from helpers.media import (MediaError, StreamDecoder, check_decoded, demux_frames, open_media, stream_duration,
                           video_frames)


@dataclass(frozen=True)
class DecodedVideo:
    """What :func:`decode_video` got from one clip.

    Attributes
    ----------
    samples : one ``(frames, timestamps)`` pair per request, as :func:`sample_frames` returns
    duration : seconds the file declares for its video, or None when it declares none
    decoded_seconds : seconds of video that decoded (up to the end of the last frame)
    share : ``decoded_seconds / duration`` in ``[0, 1]`` (1.0 when the duration is unknown); never
        below :data:`helpers.media.MIN_DECODED_SHARE`, since a clip decoding less is refused
    skipped_packets : damaged packets FFmpeg could not decode, skipped
    audio : with ``audio_sr``, the clip's audio read in the same pass
        (:class:`helpers.audio.DecodedAudio`), or None when it has no audio track or it is unusable
    audio_error : why the audio track is unusable (the reason of its :class:`MediaError`), else ""
    """

    samples: list[tuple[np.ndarray, np.ndarray]]
    duration: float | None
    decoded_seconds: float
    share: float
    skipped_packets: int = 0
    audio: object = None
    audio_error: str = ""


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


def decode_video(path: str | Path, requests: Sequence[tuple[float, tuple[int, int] | None]], *,
                 audio_sr: int | None = None, audio_consumer: Callable[[np.ndarray], None] | None = None,
                 frame_consumer: Callable[[np.ndarray], None] | None = None, chunk_frames: int = 256
                 ) -> DecodedVideo:
    """Decode a clip once, sampling it for every ``(fps, size)`` request, and say how much decoded.

    With *audio_sr*, the audio track is decoded in the same pass over the file and resampled to
    mono at that rate (``audio``); an unusable audio track does not stop the video: its reason
    is kept in ``audio_error``.

    For long files, consumers keep memory bounded: *frame_consumer* receives the sampled frames of
    the first request *chunk_frames* at a time (they are then not kept: ``samples[0]`` holds only
    their timestamps), and *audio_consumer* receives the resampled audio as it decodes.

    Sampling is that of :func:`sample_frames`. Packets FFmpeg cannot decode are skipped
    (``skipped_packets``); a stream that stops part-way (a truncated or damaged file) is kept
    when it covers :data:`helpers.media.MIN_DECODED_SHARE` of the declared duration; ``share``
    reports how much it covered.

    Parameters
    ----------
    path : video file
    requests : ``(fps, size)`` pairs; *size* is ``(height, width)`` or None for the source size
    audio_sr : sample rate to decode the audio track at in the same pass, or None for no audio

    Returns
    -------
    DecodedVideo

    Raises
    ------
    MediaError
        When the file cannot be opened, has no video stream, decodes no frame, or decodes less
        than the minimum share (the message names the file and says how much decoded).
    ValueError
        When a request has a non-positive *fps* or a malformed *size*.

    Usage (a file of your own)::

        clip = decode_video("clip.mp4", [(4.0, (299, 299)), (1.0, None)])
        frames, times = clip.samples[0]
        clip.share   # 1.0 when the whole file decodes
    """
    if not requests:
        raise SettingError("requests must name at least one (fps, size) pair")
    for fps, size in requests:
        if not fps or fps <= 0:
            raise SettingError(f"fps must be positive, got {fps!r}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise SettingError(f"size must be (height, width) with positive values, got {size!r}")
    path = Path(path)
    kept: list[list[np.ndarray]] = [[] for _ in requests]
    stamps: list[list[float]] = [[] for _ in requests]
    next_k = [0 for _ in requests]
    audio, audio_error = None, ""
    with open_media(path, need="video") as container:
        duration = stream_duration(container, container.streams.video[0])
        decoder = StreamDecoder(path, container, container.streams.video[0], what="video")
        audio_decoder = sink = None
        if audio_sr and container.streams.audio:
            audio_decoder = StreamDecoder(path, container, container.streams.audio[0], what="audio")
            sink = AudioSink(audio_sr, audio_consumer)

        def video_only():  # one read of the file: audio frames go to the sink as they come
            for owner, frame in demux_frames(container, [decoder] + ([audio_decoder] if sink else [])):
                if owner is decoder:
                    yield frame
                else:
                    sink.add(frame)
            decoder.finish()

        decoded = 0.0
        for frame, _, until in video_frames(path, container, decoder, frames=video_only()):
            converted: dict = {}  # one conversion per distinct size, and none for frames not kept
            for k, (fps, size) in enumerate(requests):
                due = samples_due(next_k[k], fps, until)  # every sample time before the next frame shows
                for sample in due:
                    if size not in converted:
                        converted[size] = _to_rgb(frame, size)
                    kept[k].append(converted[size])
                    stamps[k].append(sample / fps)
                next_k[k] = due.stop
            if frame_consumer is not None and len(kept[0]) >= chunk_frames:
                frame_consumer(np.stack(kept[0]))
                kept[0] = []
            decoded = until
        if sink is not None:
            try:
                audio_decoder.finish()
                audio = sink.result(path, audio_decoder, stream_duration(container, container.streams.audio[0]))
            except MediaError as exc:
                audio_error = exc.reason
    share = check_decoded(path, "video", decoded, duration)
    if frame_consumer is not None:
        if kept[0]:
            frame_consumer(np.stack(kept[0]))
        kept[0] = []
    samples = [(np.stack(k) if k else np.zeros((0, 0, 0, 3), np.uint8), np.asarray(s, np.float64))
               for k, s in zip(kept, stamps)]
    return DecodedVideo(samples, duration, decoded, share, decoder.skipped, audio, audio_error)


def sample_frames_multi(path: str | Path, requests: Sequence[tuple[float, tuple[int, int] | None]]
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sample one clip for several ``(fps, size)`` requests while decoding it only once.

    Returns one ``(frames, timestamps)`` pair per request, as :func:`sample_frames` does; see
    :func:`decode_video` for how much of a damaged clip must decode.
    """
    return decode_video(path, requests).samples


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
    MediaError
        When the file is missing, empty, not a video, undecodable or decodes less than
        :data:`helpers.media.MIN_DECODED_SHARE` of its duration (the message names it).
    """
    return sample_frames_multi(path, [(fps, size)])[0]


def sliding_starts(n: int, length: int, stride: int) -> list[int]:
    """First steps of the sliding windows over *n* steps: every *stride*, and one more for a tail
    the last full window leaves out (see :func:`make_sequences`)."""
    if stride < 1:
        raise SettingError(f"stride must be at least 1, got {stride}")
    starts = list(range(0, max(1, n - length + 1), stride))
    if starts[-1] + length < n:
        starts.append(starts[-1] + stride)
    return starts


def make_sequences(features: np.ndarray, length: int = 40, *, policy: str = "pad",
                   stride: int | None = None, starts: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut per-frame *features* ``[n, ...]`` into windows of *length* steps, with a mask.

    Policies
    --------
    ``"pad"`` (one window): a clip shorter than *length* is padded with zeros at the end and the
    mask marks the real steps; a longer clip keeps *length* evenly spaced steps.
    ``"sliding"`` (timelines): windows start every *stride* steps (default *length*); the last
    window is padded if the clip does not fill it. *starts* picks some of those windows only
    (:func:`sliding_starts`), so a long clip's windows can be made a few at a time.

    Returns
    -------
    windows : ``[w, length, ...]``, same dtype as *features*
    mask : bool ``[w, length]``, True on real steps
    """
    features = np.asarray(features)
    if length < 1:
        raise SettingError(f"length must be at least 1, got {length}")
    n = len(features)
    if n == 0:
        raise ValueError("features are empty: a clip needs at least one sampled frame")
    if policy == "pad":
        if n >= length:
            idx = np.linspace(0, n - 1, length).round().astype(int)
            return features[idx][None], np.ones((1, length), bool)
        starts = [0]
    elif policy == "sliding":
        starts = sliding_starts(n, length, stride or length) if starts is None else list(starts)
    else:
        raise SettingError(f"policy must be 'pad' or 'sliding', got {policy!r}")
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
