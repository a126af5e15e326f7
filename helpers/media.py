"""Opening media files: one place, one error type, one rule for damaged streams.

Every stage that reads a video or its sound (frames, audio, curation, prediction) opens it with
:func:`open_media`, so a missing, empty, unreadable or stream-less file gives the same
:class:`MediaError`, whose message names the file and the reason.

Damaged streams
---------------
A truncated or corrupted file often opens fine and decodes for a while before FFmpeg gives up.
Such a stream is kept when what decoded covers :data:`MIN_DECODED_SHARE` of the duration the
container declares, and refused with a :class:`MediaError` saying how much decoded otherwise
(:func:`check_decoded`). Streams are decoded packet by packet (:class:`StreamDecoder`): a packet
FFmpeg cannot decode is skipped, wherever it is, and a read error ends the stream. Only FFmpeg's
own errors are handled; any other exception is a bug and propagates unchanged.

Usage (a file of your own)::

    with open_media("clip.mp4", need="video") as container:
        stream = container.streams.video[0]
        end = max(until for _, _, until in video_frames("clip.mp4", container))
        share = check_decoded("clip.mp4", "video", end, stream_duration(container, stream))
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from pathlib import Path
from typing import Iterable, Iterator

import av

from helpers.errors import VgenreError

logger = logging.getLogger(__name__)

MIN_DECODED_SHARE = 0.9
"""Share of the container's declared duration that must decode for a damaged stream to be kept.

A clip that loses its last tenth still shows its genre; one that stops at a third does not, and
its duration, frame count and audio alignment would all be wrong downstream.
"""

_MIN_SHARE = contextvars.ContextVar("min_decoded_share", default=MIN_DECODED_SHARE)

NEEDS = ("video", "audio", "any")

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                    ".flv", ".wmv", ".3gp", ".ogv"}
"""Extensions of video files: a folder scan takes these as videos without asking FFmpeg."""
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".avif"}
"""Extensions of still images: named as such, never taken for a video."""
_IMAGE_FORMATS = {"image2", "gif", "apng", "webp", "ico"}  # FFmpeg demuxers of pictures (and any "*_pipe")

URL_SCHEMES = ("http://", "https://", "ftp://", "rtsp://", "rtmp://", "s3://", "gs://", "file://")

DECODER_THREADS = 0
"""Threads FFmpeg may use to decode one video stream; 0 lets FFmpeg choose (one per core).

The decoding workers of :func:`helpers.features.extract_features` set it to 1 in their own
process, since they already run one per core.
"""


class MediaError(VgenreError, ValueError):
    """A media file that cannot be used; the message is ``"<path>: <reason>"``.

    Attributes
    ----------
    path : the file
    reason : what is wrong with it, without the path (what ``probe_video`` reports)
    """

    def __init__(self, path: str | Path, reason: str):
        super().__init__(path, reason)
        self.path, self.reason = Path(path), reason
        self._shown = str(path)  # as given: an address keeps its "//", which a Path folds

    def __str__(self) -> str:
        return f"{self._shown}: {self.reason}"


def _describe(exc: Exception) -> str:
    """``"ExcName: message"`` without the errno and file name FFmpeg and the OS add."""
    return f"{exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc}"


def is_url(path: str | Path) -> bool:
    """Whether *path* is an address (``http://...``) rather than a file name (also once a ``Path``
    has folded its ``//`` into ``/``)."""
    text = str(path).lower()
    return text.startswith(URL_SCHEMES) or text.startswith(tuple(s.replace("//", "/") for s in URL_SCHEMES))


def still_image_reason(container: av.container.InputContainer) -> str | None:
    """``"a still image (PNG), not a video"`` when FFmpeg opened a picture, else None."""
    fmt = container.format.name.split(",")[0]
    if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
        codec = container.streams.video[0].codec_context.name.upper() if container.streams.video else fmt
        kind = "an animated image" if fmt in ("gif", "apng", "webp") and (container.duration or 0) > 0 \
            else "a still image"
        return f"{kind} ({codec}), not a video"
    return None


def folder_reason(path: Path) -> str:
    """Why a folder given where a media file is expected cannot be used (naming a look-alike name)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS:
        return f"is a folder named like a {suffix} file, not a media file"
    return "is a folder, not a media file"


@contextlib.contextmanager
def accept_partial(min_share: float = 1e-9) -> Iterator[None]:
    """Within the block, a damaged stream is kept when more than *min_share* of it decodes (not the
    :data:`MIN_DECODED_SHARE` training data keep): ``vgenre predict`` labels what decodes and says
    how much that was."""
    token = _MIN_SHARE.set(min_share)
    try:
        yield
    finally:
        _MIN_SHARE.reset(token)


def open_media(path: str | Path, *, need: str = "video") -> av.container.InputContainer:
    """Open *path* for decoding, checking that it holds the stream the caller *need*\\ s.

    Parameters
    ----------
    path : media file
    need : ``"video"``, ``"audio"`` or ``"any"`` (at least one video or audio stream)

    Returns
    -------
    An open PyAV container; close it (or use it in a ``with`` block).

    Raises
    ------
    MediaError
        When the file is missing, a folder, empty, not readable as media or lacks the stream;
        the container is closed first.
    ValueError
        When *need* is not one of ``"video"``, ``"audio"``, ``"any"``.

    Usage (a file of your own)::

        with open_media("clip.mp4", need="audio") as container:
            rate = container.streams.audio[0].rate
    """
    if need not in NEEDS:
        raise ValueError(f"need must be one of {NEEDS}, got {need!r}")
    if is_url(path):
        raise MediaError(path, "is an address, not a file; download it first and give the file's name")
    path = Path(path)
    try:
        if path.is_dir():
            raise MediaError(path, folder_reason(path))
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError(path, "file not found") from None
    except OSError as exc:
        raise MediaError(path, f"cannot be read ({_describe(exc)})") from None
    if size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except PermissionError:
        raise MediaError(path, "cannot be read (permission denied)") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"not a readable media file ({_describe(exc)})") from None
    streams = container.streams
    missing = {"video": None if streams.video else "has no video stream",
               "audio": None if streams.audio else "has no audio stream",
               "any": None if streams.video or streams.audio else "has no video or audio stream"}[need]
    if missing:
        container.close()
        raise MediaError(path, missing)
    if need == "video":
        still = still_image_reason(container)
        if still:
            container.close()
            raise MediaError(path, still)
    return container


def stream_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    """Seconds *stream* lasts according to the file: the stream's duration, else the container's.

    Returns None when the file declares neither (some raw or streamed formats).
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return None


def media_duration(path: str | Path) -> float | None:
    """Seconds the file declares: the container's duration, else its first video stream's.

    Raises
    ------
    MediaError
        When the file cannot be opened as media.
    """
    with open_media(path, need="any") as container:
        if container.duration:
            return container.duration / 1_000_000  # av.time_base: microseconds
        return stream_duration(container, container.streams.video[0]) if container.streams.video else None


def decoded_share(decoded_seconds: float, container_seconds: float | None) -> float:
    """Share of the declared duration that decoded, in ``[0, 1]``; 1.0 when the duration is unknown.

    Example
    -------
    >>> decoded_share(2.5, 5.0)
    0.5
    >>> decoded_share(5.04, 5.0), decoded_share(1.0, None)
    (1.0, 1.0)
    """
    if not container_seconds or container_seconds <= 0:
        return 1.0
    return min(1.0, max(0.0, decoded_seconds / container_seconds))


def check_decoded(path: str | Path, what: str, decoded_seconds: float, total_seconds: float | None) -> float:
    """Apply the damaged-stream rule: return the decoded share, or raise when below the minimum.

    Parameters
    ----------
    path : the file, for the message
    what : the stream, for the message (``"video"``, ``"audio"``)
    decoded_seconds : how much of the stream decoded
    total_seconds : the stream's declared duration (:func:`stream_duration`), or None if unknown

    Raises
    ------
    MediaError
        When less than :data:`MIN_DECODED_SHARE` of *total_seconds* decoded, e.g.
        ``"clip.mp4: video decodes only 2.5 s of 5.3 s (47%, below the 90% needed)"``; inside
        :func:`accept_partial`, only when nothing decoded.
    """
    share = decoded_share(decoded_seconds, total_seconds)
    needed = _MIN_SHARE.get()
    if share < needed or share <= 0:
        rule = f"below the {needed:.0%} needed" if needed >= 0.01 else "nothing usable"
        raise MediaError(path, f"{what} decodes only {decoded_seconds:.1f} s of {total_seconds:.1f} s "
                               f"({share:.0%}, {rule})")
    return share


class StreamDecoder:
    """Decoded frames of one stream, packet by packet, skipping the packets FFmpeg cannot decode.

    Iterating yields frames. A packet whose decoding raises an FFmpeg error is skipped and counted
    (``skipped``), so damage anywhere (the first packet, the middle, the tail) costs only the time
    those packets cover; the caller measures what it got and applies :func:`check_decoded`. An
    FFmpeg error while *reading* packets (a file cut short) ends the stream. Other exceptions are
    bugs and propagate unchanged.

    Attributes
    ----------
    skipped : packets that could not be decoded
    frames : frames decoded so far

    Raises
    ------
    MediaError
        When not a single frame decodes, naming the first FFmpeg error.

    Usage (inside ``open_media``)::

        decoder = StreamDecoder("clip.mp4", container, container.streams.audio[0], what="audio")
        n = sum(1 for _ in decoder)
        decoder.skipped   # 0 when every packet decoded
    """

    def __init__(self, path: str | Path, container: av.container.InputContainer, stream: av.stream.Stream, *,
                 what: str):
        self.path, self.container, self.stream, self.what = Path(path), container, stream, what
        self.skipped, self.frames = 0, 0
        self._first_error: Exception | None = None

    def decode(self, packet: av.Packet) -> list:
        """The frames of one *packet* (none when FFmpeg cannot decode it: the packet is skipped)."""
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            self.skipped += 1
            self._first_error = self._first_error or exc
            return []
        self.frames += len(frames)
        return frames

    def read_error(self, exc: Exception) -> None:
        """Record that reading the file stopped on *exc* (the stream ends there)."""
        self._first_error = self._first_error or exc
        logger.warning("%s: %s stream cannot be read past %d frames (%s)", self.path, self.what, self.frames,
                       _describe(exc))

    def finish(self) -> None:
        """Report skipped packets; raise when not a single frame decoded because of FFmpeg errors."""
        if self.skipped:
            logger.warning("%s: %s: %d damaged packet(s) skipped (%s)", self.path, self.what, self.skipped,
                           _describe(self._first_error))
        if not self.frames and self._first_error is not None:
            raise MediaError(self.path, f"cannot decode {self.what} ({_describe(self._first_error)})")

    def __iter__(self) -> Iterator[av.frame.Frame]:
        for _, frame in demux_frames(self.container, [self]):
            yield frame
        self.finish()


def demux_frames(container: av.container.InputContainer, decoders: list[StreamDecoder]
                 ) -> Iterator[tuple[StreamDecoder, av.frame.Frame]]:
    """One pass over the file for several streams: ``(decoder, frame)`` in the order packets come.

    Reading the file once serves the video and the audio of a clip together. Each decoder skips
    the packets it cannot decode; a read error ends every stream. Call each decoder's
    :meth:`StreamDecoder.finish` afterwards (its errors are its own: damaged audio need not stop
    the video).
    """
    by_index = {d.stream.index: d for d in decoders}
    packets = container.demux(*[d.stream for d in decoders])
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            for d in decoders:
                d.read_error(exc)
            return
        decoder = by_index.get(packet.stream.index)
        if decoder is not None:  # the last, empty packet of each stream flushes its decoder
            for frame in decoder.decode(packet):
                yield decoder, frame


def video_frames(path: str | Path, container: av.container.InputContainer, decoder: StreamDecoder | None = None,
                 frames: Iterable[av.VideoFrame] | None = None) -> Iterator[tuple[av.VideoFrame, float, float]]:
    """Each decoded frame of the first video stream with the seconds it is shown: ``(frame, start, until)``.

    Times count from the stream's start. A frame is on screen until the next one appears; the last
    stays one frame duration (from the frame rate, else the last gap). The ``until`` of the last
    frame is how much of the video decoded. Pass a *decoder* of the first video stream to read its
    ``skipped`` count afterwards.

    Raises
    ------
    MediaError
        When the stream cannot decode a single frame.
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = DECODER_THREADS
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
    prev, prev_t, step = None, 0.0, None
    for frame in frames if frames is not None else decoder or StreamDecoder(path, container, stream, what="video"):
        if frame.pts is None:
            continue
        t = float(frame.pts * frame.time_base)
        start = t if start is None else start
        t -= start
        if prev is not None:
            step = t - prev_t if t > prev_t else step
            yield prev, prev_t, t
        prev, prev_t = frame, t
    if prev is None:
        raise MediaError(path, "no decodable video frames")
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    yield prev, prev_t, prev_t + (1.0 / rate if rate else (step or 1e-3))
