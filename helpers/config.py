"""One place for every constant of the series: genres, paths and the three profiles.

A *profile* holds every size a notebook uses. Papermill injects the profile's name into the
cell tagged ``parameters`` of each notebook, and the notebook reads the rest from here::

    >>> from helpers.config import get_profile
    >>> get_profile("full").input_size
    299
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from helpers.errors import VgenreError

GENRES: tuple[str, ...] = ("Action", "Animation", "Horror", "Romance", "Sports", "ScienceFiction")
"""The paper's six genres, in the order of every label vector in this package."""

PROFILE_NAMES: tuple[str, ...] = ("smoke", "default", "full")


class ConfigError(VgenreError, ValueError):
    """A profile name or a configuration value that is not allowed."""


def repo_root() -> Path:
    """The project folder: the parent of ``helpers/`` in a checkout, else the working directory."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_dir() -> Path:
    """Where generated clips and feature caches go (a user's ``VGENRE_DATA_DIR`` overrides)."""
    return Path(os.environ.get("VGENRE_DATA_DIR", repo_root() / "data")).resolve()


def runs_dir() -> Path:
    """Where executed notebooks, models and summaries go (a user's ``VGENRE_RUNS_DIR`` overrides)."""
    return Path(os.environ.get("VGENRE_RUNS_DIR", repo_root() / "runs")).resolve()


def figures_dir() -> Path:
    """The committed figures the README shows (``make run`` refreshes them)."""
    return (repo_root() / "figures").resolve()


@dataclass(frozen=True)
class Profile:
    """Every size one run of the series uses. See DESIGN.md, section Profiles."""

    name: str
    # synthetic data
    films_per_genre: int
    clips_per_film: int
    clip_seconds: float
    source_fps: float
    frame_size: tuple[int, int]  # (height, width) of the synthetic MP4s
    audio_rate: int
    # frames and sequences
    sample_fps: float
    seq_len: int
    # audio features
    sr: int
    n_fft: int
    hop_length: int
    n_mels: int
    n_mfcc: int
    # backbone and head
    input_size: int
    batch_size: int
    head_steps: int
    head_checkpoint_every: int
    head_batch: int
    require_pretrained: bool
    # temporal models
    lstm_units: int
    dense_units: int
    dropout: float
    epochs: int
    patience: int
    learning_rate: float
    seeds: tuple[int, ...]
    # experiments of notebook 02
    fps_grid: tuple[float, ...]
    seq_len_grid: tuple[int, ...]
    # runner
    cell_timeout_s: int
    # how the clips are held out: fractions of each genre's films for (validation, test)
    holdout: tuple[float, float] = (0.1, 0.1)
    # the generator's difficulty: the share of clips showing another genre's look, and
    # (independently) the share carrying another genre's sound (data/README.md)
    difficulty: float = 0.0
    data_seed: int = 0
    # feature extraction: about how many MB of decoded clips may wait for the network (one clip always may)
    max_queued_mb: float = 1024
    extra: dict = field(default_factory=dict)

    @property
    def n_clips(self) -> int:
        """How many synthetic clips the profile generates (all genres, all films)."""
        return len(GENRES) * self.films_per_genre * self.clips_per_film

    def as_dict(self) -> dict:
        """The profile as plain data (for JSON files and model configs)."""
        return asdict(self)

    def settings(self, fields: tuple[str, ...]) -> dict:
        """The values of *fields* as plain data, e.g. ``profile.settings(SYNTH_FIELDS)``."""
        return {f: list(v) if isinstance(v := getattr(self, f), tuple) else v for f in fields}


SYNTH_FIELDS: tuple[str, ...] = ("films_per_genre", "clips_per_film", "clip_seconds", "source_fps", "frame_size",
                                  "audio_rate", "difficulty", "holdout", "data_seed")
"""The profile fields that shape the synthetic clips and their split (and so key the dataset folder)."""

TRAIN_FIELDS: tuple[str, ...] = ("seq_len", "lstm_units", "dense_units", "dropout", "epochs", "patience",
                                 "learning_rate")
"""The profile fields that shape a trained temporal model (besides its features and seed)."""

HEAD_FIELDS: tuple[str, ...] = ("head_steps", "head_checkpoint_every", "head_batch")
"""The profile fields that shape the retrained softmax head."""


def settings_key(settings: dict, length: int = 12) -> str:
    """A short stable hash of a settings dict: the name of whatever those settings produce."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", films_per_genre=5, clips_per_film=2, clip_seconds=4.0, source_fps=12.0,
        frame_size=(96, 128), audio_rate=22050, sample_fps=4.0, seq_len=16, sr=16000, n_fft=1024,
        hop_length=256, n_mels=32, n_mfcc=13, input_size=75, batch_size=32, head_steps=60,
        head_checkpoint_every=20, head_batch=64, require_pretrained=False, lstm_units=32,
        dense_units=32, dropout=0.2, epochs=30, patience=8, learning_rate=3e-3, seeds=(0,),
        fps_grid=(1.0, 2.0, 4.0), seq_len_grid=(4, 8, 16), cell_timeout_s=600,
    ),
    "default": Profile(
        name="default", films_per_genre=30, clips_per_film=2, clip_seconds=10.0, source_fps=24.0,
        frame_size=(144, 192), audio_rate=44100, sample_fps=4.0, seq_len=40, sr=22050, n_fft=2048,
        hop_length=512, n_mels=64, n_mfcc=20, input_size=128, batch_size=64, head_steps=400,
        head_checkpoint_every=100, head_batch=128, require_pretrained=False, lstm_units=128,
        dense_units=64, dropout=0.3, epochs=60, patience=10, learning_rate=1e-3, seeds=(0, 1, 2),
        fps_grid=(1.0, 2.0, 4.0, 6.0, 8.0), seq_len_grid=(5, 10, 20, 40), cell_timeout_s=5400,
        holdout=(0.1, 1 / 3), difficulty=0.15,
    ),
    "full": Profile(
        name="full", films_per_genre=20, clips_per_film=5, clip_seconds=10.0, source_fps=24.0,
        frame_size=(360, 480), audio_rate=44100, sample_fps=4.0, seq_len=40, sr=22050, n_fft=2048,
        hop_length=512, n_mels=128, n_mfcc=20, input_size=299, batch_size=64, head_steps=4000,
        head_checkpoint_every=400, head_batch=100, require_pretrained=True, lstm_units=2048,
        dense_units=512, dropout=0.5, epochs=100, patience=15, learning_rate=1e-4, seeds=(0, 1, 2),
        fps_grid=(1.0, 2.0, 4.0, 6.0, 8.0), seq_len_grid=(5, 10, 20, 40), cell_timeout_s=7200,
        difficulty=0.15,
    ),
}


def get_profile(name: str | Profile = "default", **overrides) -> Profile:
    """Return the profile called *name*, with any field replaced by a keyword.

    Raises
    ------
    ConfigError
        When *name* is not one of ``smoke``, ``default``, ``full``.
    """
    if isinstance(name, Profile):
        profile = name
    else:
        if name not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
        profile = PROFILES[name]
    return replace(profile, **overrides) if overrides else profile
