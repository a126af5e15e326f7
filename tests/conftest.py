"""Shared fixtures. Tests run offline, in the smoke profile, with data and runs in temporary folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def session_dirs(tmp_path_factory) -> dict[str, Path]:
    """Offline, with data and runs folders shared by the whole session (the smoke set is generated
    once). The user-level settings are set through a monkeypatch, undone when the session ends."""
    root = tmp_path_factory.mktemp("vgenre")
    dirs = {"data": root / "data", "runs": root / "runs"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VGENRE_OFFLINE", "1")  # never try to download weights in tests
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        mp.delenv("VGENRE_WEIGHTS", raising=False)
        for key, path in dirs.items():
            path.mkdir()
            mp.setenv(f"VGENRE_{key.upper()}_DIR", str(path))
        yield dirs


@pytest.fixture(scope="session")
def smoke_ctx(session_dirs):
    """The run context of the tests: smoke profile, synthetic set, session folders."""
    from helpers.context import start_run

    return start_run("tests", profile="smoke", run_dir=session_dirs["runs"] / "tests", verbose=False)


@pytest.fixture(scope="session")
def smoke_manifest(smoke_ctx) -> Path:
    """The smoke synthetic set, probed and split."""
    from helpers.pipeline import ensure_dataset

    return ensure_dataset(smoke_ctx, progress=False)


@pytest.fixture(scope="session")
def smoke_run(session_dirs, smoke_manifest) -> Path:
    """The whole notebook series executed once in the smoke profile (as `vgenre run --profile smoke`), on
    what stands for a second machine: TensorFlow's oneDNN kernels off (other kernels, other rounding than
    the run that wrote references/smoke.json), so the reference check below is a cross-machine check."""
    from helpers.runner import run_series

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # the notebooks' kernels inherit it
        out, results = run_series("smoke")
    return out


def write_clip(path: Path, *, seconds: float = 1.0, fps: float = 24.0, size=(64, 80), audio_rate: int | None = 22050,
               channels: int = 1, genre: str = "Action") -> Path:
    """A small real MP4 made with the project's own writer."""
    from helpers.config import get_profile
    from helpers.synth import make_film, render_audio, render_frames, write_video

    prof = get_profile("smoke", clip_seconds=seconds, source_fps=fps, frame_size=size,
                       audio_rate=audio_rate or 22050)
    film = make_film(genre, 0)
    frames, flashes = render_frames(film, 0, prof)
    audio = None
    if audio_rate:
        mono = render_audio(film, 0, prof, flashes)
        audio = np.stack([mono, mono[::-1]]) if channels == 2 else mono
    return write_video(path, frames, fps, audio, audio_rate or 22050)


def train_tiny_late_fusion(root: Path) -> Path:
    """A small late-fusion model folder trained on random features of the smoke profile's shapes,
    recorded as made with the random backbone (what `vgenre predict` and the Predictor load)."""
    from helpers.backbone import backbone_key
    from helpers.config import get_profile
    from helpers.features import feature_settings
    from helpers.train import train_late_fusion, train_model
    from helpers.weights import random_status

    prof = get_profile("smoke", lstm_units=4, dense_units=4, epochs=1)
    rng = np.random.default_rng(0)
    n, T = 12, prof.seq_len
    x = {"video": rng.normal(size=(n, T, 2048)).astype(np.float32),
         "audio": rng.normal(size=(n, T, prof.n_mels)).astype(np.float32), "mask": np.ones((n, T), bool)}
    y = np.arange(n) % 6
    settings = {"features": feature_settings(prof, backbone_key(random_status().weights_id, prof.input_size))}
    parts = [train_model(m, (x, y), (x, y), root / m, profile=prof, extra_config=settings)
             for m in ("lstm_pool", "audio_only")]
    return train_late_fusion(*parts, root / "late_fusion")
