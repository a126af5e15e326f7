"""``vgenre bench``: speed measured as ratios within one run, so a noisy machine does not fool us.

Each entry prints what it measured (medians of repeats); the last line gathers the ratios as
machine-readable ``key=value`` pairs. Goals from the issues:

* synth: smoke set under 30 s, default set in a few minutes (2 cores);
* frames: 4 fps sampling of a 720p H.264 clip at least 20x faster than real time on one core;
  several (fps, size) requests on one clip cost about one decode;
* audio: log-mel features at least 200x faster than real time; decoded once per clip;
* features: extraction from MP4 at least 0.9 of the backbone's in-memory ceiling, at least 3x the
  naive one-``predict``-per-frame loop; bfloat16 speed-up and its error against float32.
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


def bench_features(work: Path, profile: str = "smoke") -> dict:
    """Backbone ceiling, end-to-end extraction, the naive loop, bfloat16."""
    from helpers.backbone import Backbone, load_backbone, preprocess
    from helpers.features import extract_features
    from helpers.manifest import read_manifest
    from helpers.synth import generate_dataset
    from helpers.weights import WeightsError, random_status

    prof = get_profile(profile)
    try:
        backbone = load_backbone(prof, verbose=False)
    except WeightsError:  # speed does not depend on the weights' values
        backbone = Backbone(prof.input_size, random_status(prof.name))
    manifest = generate_dataset("smoke", work / "synth", progress=False)
    rows = read_manifest(manifest)[:24]
    n_frames = int(sum(get_profile("smoke").clip_seconds * prof.sample_fps for _ in rows))
    batch = np.random.default_rng(0).integers(0, 255, (prof.batch_size, prof.input_size, prof.input_size, 3),
                                              dtype=np.uint8)
    backbone.pool_features(batch, prof.batch_size)  # compile
    ceiling_s = _median_time(lambda: backbone.pool_features(batch, prof.batch_size))
    ceiling = prof.batch_size / ceiling_s

    def extract():
        extract_features(rows, backbone, prof, root=work / f"cache{time.perf_counter_ns()}", progress=False)

    extract()  # warm-up: first-call costs of the decoder, librosa and the thread pool
    e2e = n_frames / _median_time(extract, repeats=3)
    x = preprocess(batch[:16])
    backbone.model.predict(x[:1], verbose=0)
    naive = 16 / _median_time(lambda: [backbone.model.predict(x[i:i + 1], verbose=0) for i in range(16)], repeats=2)
    bf16 = Backbone(prof.input_size, backbone.status, "bfloat16")
    bf16.pool_features(batch, prof.batch_size)
    bf16_s = _median_time(lambda: bf16.pool_features(batch, prof.batch_size))
    ref, low = backbone.pool_features(batch), bf16.pool_features(batch)
    rel_err = float(np.linalg.norm(low - ref) / max(1e-12, np.linalg.norm(ref)))
    print(f"features ({prof.name}, {prof.input_size}px, {backbone.status.source} weights): ceiling {ceiling:.0f} img/s, "
          f"end-to-end from MP4 {e2e:.0f} frames/s ({e2e / ceiling:.2f} of ceiling, goal >= 0.9), naive loop "
          f"{naive:.0f} frames/s (ours {e2e / naive:.1f}x, goal >= 3), bfloat16 {ceiling_s / bf16_s:.2f}x "
          f"with relative error {rel_err:.4f}")
    return {"ceiling_img_s": round(ceiling, 1), "extract_frames_s": round(e2e, 1),
            "extract_vs_ceiling": round(e2e / ceiling, 3), "speedup_vs_naive": round(e2e / naive, 2),
            "bf16_speedup": round(ceiling_s / bf16_s, 2), "bf16_rel_err": round(rel_err, 4)}


ENTRIES = {"synth": bench_synth, "frames": bench_frames, "audio": bench_audio, "features": bench_features}


def run_bench(profile: str = "smoke", only: list[str] | None = None) -> int:
    """Run the entries (all by default) and print the key=value line last."""
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="vgenre-bench-") as tmp:
        for name, fn in ENTRIES.items():
            if only and name not in only:
                continue
            sub = Path(tmp) / name
            sub.mkdir()
            results.update(fn(sub, profile) if name == "features" else fn(sub))
    results["peak_rss_mb"] = round(_peak_rss_mb(), 0)
    print(" ".join(f"{k}={v}" for k, v in results.items()))
    return 0
