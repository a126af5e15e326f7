"""The scheduler of feature extraction: the decode queue bounded in bytes, batches across clips."""
from __future__ import annotations

import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.scheduler import MB, DecodeQueue, FrameBatcher, decoded_bytes


def test_the_queue_stays_under_its_bound_with_long_clips():
    """Fake decode jobs, some larger than the bound: the estimate out never passes max(bound, one clip)."""
    bound = 1000 * MB
    sizes = [300, 700, 2500, 200, 200, 900, 50, 50, 50, 4000, 10, 600, 600]  # MB; 2500 and 4000 exceed the bound
    sizes = {f"clip{k}": s * MB for k, s in enumerate(sizes)}
    out, seen, lock = set(), [], threading.Lock()

    def decode(name):  # a decode job: the clip is out until the consumer takes it
        time.sleep(0.002)
        return np.zeros(4, np.uint8)

    with ThreadPoolExecutor(3) as pool:
        def start(name):
            with lock:
                out.add(name)
                seen.append(sum(sizes[n] for n in out))
            return pool.submit(decode, name)

        queue = DecodeQueue(start, sizes.get, max_bytes=bound, depth=6)
        taken = []
        for name, future in queue.run(sizes):
            future.result()
            assert queue.queued_bytes == sum(sizes[n] for n in out)
            assert queue.queued_bytes <= max(bound, max(sizes[n] for n in out))
            with lock:
                out.discard(name)
            taken.append(name)
    largest = max(sizes.values())
    assert taken == list(sizes)  # in order, every one
    assert max(seen) <= max(bound, largest) and queue.peak_bytes == max(seen)
    assert all(total <= bound for total in seen if total not in (2500 * MB, 4000 * MB))  # the big ones went alone
    assert queue.peak_bytes > 700 * MB  # small clips do go out together
    assert queue.queued_bytes == 0


def test_the_queue_sends_one_clip_whatever_its_size_and_counts_unknown_as_the_bound():
    sizes = {"a": 10, "b": None, "c": 10, "skip": 5}
    with ThreadPoolExecutor(1) as pool:
        queue = DecodeQueue(lambda n: None if n == "skip" else pool.submit(str, n), sizes.get, max_bytes=0, depth=4)
        got = [name for name, _ in queue.run(["a", "b", "skip", "c"])]
    assert got == ["a", "b", "c"]  # one at a time with a bound of 0; an item start() declines is left out
    assert queue.peak_bytes == 10


def test_a_queue_left_early_cancels_what_has_not_started():
    with ThreadPoolExecutor(1) as pool:
        gate = threading.Event()
        futures = []

        def start(name):
            futures.append(pool.submit(gate.wait) if name == 0 else pool.submit(lambda: name))
            return futures[-1]

        queue = DecodeQueue(start, lambda n: 1, max_bytes=100, depth=5)
        run = queue.run(range(5))
        next(run)
        run.close()
        gate.set()
    assert all(f.cancelled() for f in futures[1:]) and queue.queued_bytes == 0


def test_batches_are_full_across_clips_and_each_clip_gets_its_rows():
    sizes = [5, 40, 3, 0, 21, 7]
    calls, done = [], []

    def run(frames):
        calls.append(len(frames))
        return frames.reshape(len(frames), -1)[:, :1].astype(np.float32)

    batcher = FrameBatcher(run, 16, lambda clip, out: done.append((clip, out)))
    for k, n in enumerate(sizes):
        batcher.add(k, np.full((n, 2, 2, 3), k, np.uint8))
    batcher.finish()
    assert calls == [16] * (sum(sizes) // 16) + [sum(sizes) % 16]
    assert [clip for clip, _ in done] == list(range(len(sizes)))
    for clip, out in done:
        assert out.dtype == np.float32 and len(out) == sizes[clip] and np.all(out == clip)


def test_a_clip_array_is_freed_once_its_frames_are_through():
    batcher = FrameBatcher(lambda f: np.zeros((len(f), 1), np.float32), 32, lambda clip, out: None)
    frames = np.zeros((70, 8, 8, 3), np.uint8)  # two full batches and 6 frames left waiting
    ref = weakref.ref(frames)
    batcher.add("long clip", frames)
    del frames
    assert ref() is None and batcher.waiting_frames == 6  # the 6 frames were copied out of the clip's array


def test_decoded_bytes_counts_the_sampled_frames():
    assert decoded_bytes(10.0, 4.0, 299, 299) == 41 * 299 * 299 * 3
    assert decoded_bytes(10.0, 4.0, 299, 299, per_frame=100) == 41 * (299 * 299 * 3 + 100)
    assert decoded_bytes(None, 4.0, 299, 299) is None
    # a ten-minute clip at 299 px, 4 fps: about 0.64 GB; fifteen workers' two-clip queue of old was ~19 GB
    assert 0.6e9 < decoded_bytes(600.0, 4.0, 299, 299) < 0.7e9


@pytest.mark.parametrize("value", [-1, -0.5])
def test_a_negative_bound_is_a_setting_error(value):
    from helpers.errors import SettingError
    from helpers.features import extract_features

    with pytest.raises(SettingError, match="max_queued_mb must be 0 or more"):
        extract_features([], type("B", (), {"key": {}})(), "smoke", max_queued_mb=value)
