"""``vgenre bench``: speed measured as ratios within one run, so a noisy machine does not fool us.

Each entry prints what it measured (medians of repeats); the last line gathers the ratios as
machine-readable ``key=value`` pairs. Goals from the issues:

* synth: smoke set under 30 s, default set in a few minutes (2 cores);
* frames: 4 fps sampling of a 720p H.264 clip at least 20x faster than real time on one core;
  several (fps, size) requests on one clip cost about one decode;
* audio: log-mel features at least 200x faster than real time; decoded once per clip;
* features: the uint8 backbone's in-memory ceiling, the decoding pool's limit, and extraction
  against both (``extract_vs_limit`` at least 0.9 on a GPU machine, ``extract_vs_serial`` at least
  0.9 on a 2-core CPU one); at least 3x the naive one-``predict``-per-frame loop; bfloat16 speed-up
  and its error against float32. ``--profile full`` is for a GPU machine.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from helpers.config import get_profile


def _median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _one_core:
    """Pin this process (and threads it starts) to one CPU while inside the block."""

    def __enter__(self):
        self.before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(self.before)})

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.before)


def bench_synth(work: Path) -> dict:
    """Seconds to generate the smoke set; the default set's time extrapolated from clip-seconds/s."""
    from helpers.synth import generate_dataset

    smoke = get_profile("smoke")
    start = time.perf_counter()
    generate_dataset(smoke, work / "synth", progress=False)
    smoke_s = time.perf_counter() - start
    default = get_profile("default")
    secs_per_clip_second = smoke_s / (smoke.n_clips * smoke.clip_seconds)
    scale = (default.frame_size[0] * default.frame_size[1] * default.source_fps) / (
        smoke.frame_size[0] * smoke.frame_size[1] * smoke.source_fps)
    default_est = secs_per_clip_second * scale * default.n_clips * default.clip_seconds
    print(f"synth: smoke set ({smoke.n_clips} clips) {smoke_s:.1f}s (goal < 30 s); default set estimated "
          f"{default_est:.0f}s from pixel rate")
    return {"synth_smoke_s": round(smoke_s, 2), "synth_default_est_s": round(default_est, 1)}


def bench_frames(work: Path) -> dict:
    """Real-time factor of 4 fps sampling from a 720p H.264 clip on one core; multi-request cost."""
    from helpers.frames import sample_frames, sample_frames_multi
    from helpers.synth import make_film, render_frames, write_video

    prof = get_profile("smoke", frame_size=(720, 1280), source_fps=24.0, clip_seconds=6.0)
    path = work / "clip720p.mp4"
    frames, _ = render_frames(make_film("Action", 0), 0, prof)
    write_video(path, frames, 24.0)
    with _one_core():
        one = _median_time(lambda: sample_frames(path, 4.0, (299, 299)))
        multi = _median_time(lambda: sample_frames_multi(path, [(2.0, (299, 299)), (4.0, (299, 299)),
                                                                (8.0, (128, 128))]))
        separate = _median_time(lambda: [sample_frames(path, f, s) for f, s in
                                         [(2.0, (299, 299)), (4.0, (299, 299)), (8.0, (128, 128))]])
    rt = prof.clip_seconds / one
    print(f"frames: 4 fps from 720p H.264 on one core: {one:.3f}s for {prof.clip_seconds:.0f}s of video = "
          f"{rt:.1f}x real time (goal >= 20); 3 requests in one call {multi / one:.2f}x one request, "
          f"3 separate calls {separate / one:.2f}x")
    return {"sample_720p_realtime_x": round(rt, 1), "multi_request_cost_x": round(multi / one, 2),
            "separate_calls_cost_x": round(separate / one, 2)}


def bench_audio(work: Path) -> dict:
    """Real-time factor of decode + log-mel; cost of per-frame alignment relative to one log-mel."""
    from helpers.audio import frame_audio_features, load_audio, log_mel_spectrogram
    from helpers.synth import make_film, render_audio, write_video

    prof = get_profile("default")
    path = work / "audio_clip.mp4"
    audio = render_audio(make_film("Horror", 0), 0, prof, [2.0, 6.0])
    write_video(path, np.zeros((int(prof.clip_seconds * 4), 64, 64, 3), np.uint8), 4.0, audio, prof.audio_rate)
    y = load_audio(path, prof.sr)
    times = np.arange(int(prof.clip_seconds * prof.sample_fps)) / prof.sample_fps
    total = _median_time(lambda: log_mel_spectrogram(load_audio(path, prof.sr), prof.sr, n_mels=prof.n_mels))
    mel = _median_time(lambda: log_mel_spectrogram(y, prof.sr, n_mels=prof.n_mels))
    aligned = _median_time(lambda: frame_audio_features(y, prof.sr, times, prof.sample_fps, n_mels=prof.n_mels))
    rt = prof.clip_seconds / total
    print(f"audio: decode + log-mel {total * 1000:.1f} ms for {prof.clip_seconds:.0f}s = {rt:.0f}x real time "
          f"(goal >= 200); per-frame alignment of {len(times)} frames costs {aligned / mel:.2f}x one log-mel")
    return {"logmel_realtime_x": round(rt, 0), "aligned_vs_logmel": round(aligned / mel, 2)}


def _bench_clips(work: Path, prof, n: int = 24) -> list[dict]:
    """*n* synthetic clips of *prof*'s size (frame size, rate, length), four genres' worth of films."""
    from helpers.config import GENRES
    from helpers.synth import generate_clip, make_film
    from helpers.workers import available_cores, process_pool

    jobs = [(make_film(GENRES[k % len(GENRES)], k // len(GENRES)), work / "clips" / f"clip{k:02d}.mp4")
            for k in range(n)]
    pool = process_pool(available_cores())
    for future in [pool.submit(generate_clip, film, 0, prof, path) for film, path in jobs]:
        future.result()
    return [{"path": str(path), "genre": film.genre} for film, path in jobs]


def bench_features(work: Path, profile: str = "smoke", workers: int | None = None) -> dict:
    """The uint8 backbone's ceiling, the decoding pool's limit, and extraction against both.

    * ``ceiling_img_s``: the backbone on in-memory uint8 batches (no decoding);
    * ``decode_limit_frames_s``: the worker pool decoding clips alone (no network);
    * ``extract_frames_s``: :func:`extract_features` end to end, MP4 to feature files;
    * ``extract_vs_limit`` = extract / min(ceiling, decode limit): how close to the slower side;
    * ``extract_vs_serial`` = extract / (1 / (1/ceiling + 1/decode limit)): against doing the two
      one after the other, the figure that matters when network and decoders share the CPU cores;
    * ``extract_vs_thread``: against decoding in one thread of the main process (workers=0).
    """
    import keras

    from helpers.backbone import Backbone, load_backbone, preprocess
    from helpers.backends import describe
    from helpers.features import decode_clip, extract_features
    from helpers.weights import WeightsError, random_status
    from helpers.workers import default_workers, process_pool

    prof = get_profile(profile)
    workers = default_workers() if workers is None else workers
    try:
        backbone = load_backbone(prof, verbose=False)
    except WeightsError:  # speed does not depend on the weights' values
        backbone = Backbone(prof.input_size, random_status(prof.name))
    rows = _bench_clips(work, prof)
    n_frames = len(rows) * int(np.ceil(prof.clip_seconds * prof.sample_fps))
    bs = prof.batch_size
    batch = np.random.default_rng(0).integers(0, 255, (bs, prof.input_size, prof.input_size, 3), dtype=np.uint8)
    backbone.pool_features(batch, bs)  # compile
    ceiling_s = _median_time(lambda: backbone.pool_features(batch, bs), repeats=5)
    ceiling = bs / ceiling_s

    def decode_all():
        if workers == 0:
            return [decode_clip(Path(r["path"]), prof, prof.input_size) for r in rows]
        pool = process_pool(workers)
        return [f.result() for f in [pool.submit(decode_clip, Path(r["path"]), prof, prof.input_size)
                                     for r in rows]]

    decode_all()  # starts the workers
    limit = n_frames / _median_time(decode_all)

    def extract(w):
        extract_features(rows, backbone, prof, root=work / f"cache{time.perf_counter_ns()}", progress=False,
                         workers=w)

    extract(workers)  # warm-up
    e2e = n_frames / _median_time(lambda: extract(workers))
    thread = n_frames / _median_time(lambda: extract(0), repeats=2)
    serial = 1.0 / (1.0 / ceiling + 1.0 / limit)
    x = preprocess(batch[:16])
    backbone.model.predict(x[:1], verbose=0)
    naive = 16 / _median_time(lambda: [backbone.model.predict(x[i:i + 1], verbose=0) for i in range(16)], repeats=2)
    # float32 against bfloat16, each built for the comparison (extraction above ran at precision auto)
    fp32 = backbone if backbone.precision == "float32" else Backbone(prof.input_size, backbone.status, "float32")
    bf16 = backbone if backbone.precision == "bfloat16" else Backbone(prof.input_size, backbone.status, "bfloat16")
    fp32.pool_features(batch, bs), bf16.pool_features(batch, bs)  # compile
    fp32_s = _median_time(lambda: fp32.pool_features(batch, bs))
    bf16_s = _median_time(lambda: bf16.pool_features(batch, bs))
    ref, low = fp32.pool_features(batch, bs), bf16.pool_features(batch, bs)
    rel_err = float(np.linalg.norm(low - ref) / max(1e-12, np.linalg.norm(ref)))
    devices = ", ".join(describe()["accelerators"]) or "CPU only"
    print(f"features ({prof.name}, {prof.input_size}px, batch {bs}, {backbone.precision}, {backbone.status.source} weights, "
          f"{keras.backend.backend()} on {devices}, {workers} decoding workers, {len(rows)} clips of "
          f"{prof.frame_size[1]}x{prof.frame_size[0]}): uint8 backbone ceiling {ceiling:.0f} img/s; decoding "
          f"limit {limit:.0f} frames/s; extraction {e2e:.0f} frames/s = {e2e / min(ceiling, limit):.2f} of the "
          f"slower side, {e2e / serial:.2f} of the two in series (goal >= 0.9), {e2e / thread:.2f}x decoding in a "
          f"thread; naive loop {naive:.0f} frames/s (ours {e2e / naive:.1f}x); bfloat16 {fp32_s / bf16_s:.2f}x "
          f"with relative error {rel_err:.4f}")
    return {"workers": workers, "precision": backbone.precision, "ceiling_img_s": round(ceiling, 1), "decode_limit_frames_s": round(limit, 1),
            "extract_frames_s": round(e2e, 1), "extract_vs_limit": round(e2e / min(ceiling, limit), 3),
            "extract_vs_serial": round(e2e / serial, 3), "extract_thread_frames_s": round(thread, 1),
            "extract_vs_thread": round(e2e / thread, 2), "speedup_vs_naive": round(e2e / naive, 2),
            "bf16_speedup": round(fp32_s / bf16_s, 2), "bf16_rel_err": round(rel_err, 4)}


ENTRIES = {"synth": bench_synth, "frames": bench_frames, "audio": bench_audio, "features": bench_features}


def run_bench(profile: str = "smoke", only: list[str] | None = None, workers: int | None = None) -> int:
    """Run the entries (all by default) and print the key=value line last."""
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="vgenre-bench-") as tmp:
        for name, fn in ENTRIES.items():
            if only and name not in only:
                continue
            sub = Path(tmp) / name
            sub.mkdir()
            results.update(fn(sub, profile, workers) if name == "features" else fn(sub))
    results["peak_rss_mb"] = round(_peak_rss_mb(), 0)
    print(" ".join(f"{k}={v}" for k, v in results.items()))
    return 0
