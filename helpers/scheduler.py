"""The scheduler of feature extraction: clips to the decoders, frames to the network in full batches.

Two parts, each knowing nothing of the cache or of what a clip's features are:

* :class:`DecodeQueue` hands clips to the decoding workers in order and gives them back in the
  same order, keeping the clips handed out and not yet taken back within a bound in *bytes*
  (an estimate of each clip's decoded size, :func:`decoded_bytes`), not only in number: a few
  ten-minute clips at 299 px would otherwise fill the memory of the main process. One clip is
  always allowed, however large, so the work goes on.
* :class:`FrameBatcher` cuts the frames of consecutive clips into batches of exactly
  ``batch_size`` frames across clip boundaries (every forward pass full; only the last one of
  a job is short) and says when each clip's frames have all been through the network.

The batches do not depend on the number of workers, on the bound or on timing: the files written
from them are the same whatever those are.
"""
from __future__ import annotations

from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

MB = 1 << 20


def decoded_bytes(seconds: float | None, fps: float, height: int, width: int, *, per_frame: int = 0) -> int | None:
    """About how many bytes one clip takes once decoded: its sampled frames (``seconds x fps``
    frames of ``height x width x 3`` uint8) and *per_frame* bytes more for each (audio features,
    thumbnails, timestamps, the network's output). None when *seconds* is unknown.

    >>> round(decoded_bytes(600, 4.0, 299, 299) / 1e6)  # ten minutes at 4 fps, 299 px, in MB
    644
    """
    if seconds is None or not np.isfinite(seconds):
        return None
    n = int(np.ceil(max(seconds, 0.0) * fps)) + 1
    return n * (height * width * 3 + per_frame)


@dataclass
class _Sent:
    item: object
    future: object
    size: int


@dataclass
class DecodeQueue:
    """Items handed to *start* in order, given back in order, within a bound in bytes and in number.

    *start(item)* sends one item to the decoders and returns its future, or None when the item is
    not to be decoded after all (another process took it); *size(item)* is its estimated size in
    bytes (:func:`decoded_bytes`; None: unknown, counted as *max_bytes*). An item is sent when
    fewer than *depth* are out and the estimated bytes out, its own included, stay within
    *max_bytes*; when none is out it is sent whatever its size. So the bytes out never exceed
    ``max(max_bytes, the largest item)``.

    Iterating yields ``(item, future)`` in the order of *items*; the item counts as out until the
    loop asks for the next one, so the caller takes its result out of the queue meanwhile.
    ``queued_bytes`` is the estimate out now and ``peak_bytes`` the most it has been.
    """

    start: Callable[[object], object]
    size: Callable[[object], int | None]
    max_bytes: int
    depth: int = 2
    queued_bytes: int = 0
    peak_bytes: int = 0
    _out: deque = field(default_factory=deque)

    def run(self, items: Iterable) -> Iterator[tuple[object, object]]:
        """Send *items* and yield each with its future, in order; on leaving early, cancel those not started."""
        todo = iter(items)
        head, head_size = None, 0
        try:
            while True:
                while len(self._out) < self.depth:
                    if head is None:
                        head = next(todo, None)
                        if head is None:
                            break
                        size = self.size(head)
                        head_size = self.max_bytes if size is None else size
                    if self._out and self.queued_bytes + head_size > self.max_bytes:
                        break  # wait for the clips ahead to be taken
                    future = self.start(head)
                    if future is not None:
                        self._out.append(_Sent(head, future, head_size))
                        self.queued_bytes += head_size
                        self.peak_bytes = max(self.peak_bytes, self.queued_bytes)
                    head = None
                if not self._out:
                    return
                sent = self._out[0]
                yield sent.item, sent.future
                self._out.popleft()
                self.queued_bytes -= sent.size
        finally:
            while self._out:  # stopped early: the clips not started are not decoded for nothing
                with suppress(Exception):
                    self._out.popleft().future.cancel()
            self.queued_bytes = 0


class FrameBatcher:
    """Frames of consecutive clips through *run* in batches of exactly *batch_size*, across clips.

    :meth:`add` queues one clip's frames (uint8) and runs every full batch there is; :meth:`finish`
    runs the last, short one. When all of a clip's frames have been through, ``done(clip, out)``
    gets the clip and its rows of output (float32), in the order the clips were added.

    At most ``batch_size - 1`` frames wait between calls, copied out of their clip's array so that
    the array itself is freed as soon as its frames have gone through.
    """

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], batch_size: int,
                 done: Callable[[object, np.ndarray], None]):
        self.run, self.batch_size, self.done = run, batch_size, done
        self._waiting: list[list] = []  # [clip entry, its frames not yet through the network]

    def add(self, clip, frames: np.ndarray) -> None:
        """Queue *clip*'s *frames* and run the full batches."""
        self._waiting.append([{"clip": clip, "n": len(frames), "out": []}, frames])
        self._run_batches(final=False)
        if self._waiting and self._waiting[0][0]["out"]:  # partly through: keep the rest, not the whole array
            self._waiting[0][1] = self._waiting[0][1].copy()

    def finish(self) -> None:
        """Run what is left, a short batch."""
        self._run_batches(final=True)

    @property
    def waiting_frames(self) -> int:
        """Frames queued and not yet through the network."""
        return sum(len(f) for _, f in self._waiting)

    def _run_batches(self, final: bool) -> None:
        bs = self.batch_size
        while self._waiting and (final or self.waiting_frames >= bs):
            take, owners, need = [], [], bs
            while need and self._waiting:
                entry, frames = self._waiting[0]
                part = frames[:need]
                take.append(part)
                owners.append((entry, len(part)))
                if len(part) == len(frames):
                    self._waiting.pop(0)
                else:
                    self._waiting[0][1] = frames[len(part):]
                need -= len(part)
            out = self.run(np.concatenate(take))
            offset = 0
            for entry, n in owners:
                entry["out"].append(out[offset:offset + n])
                offset += n
                if sum(len(o) for o in entry["out"]) == entry["n"]:
                    self.done(entry["clip"], np.concatenate(entry["out"]).astype(np.float32))
