"""Profiles, packaging metadata, notebook hygiene, and the command's subcommands."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers.config import GENRES, PROFILES, ConfigError, get_profile

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_six_genres_and_three_profiles():
    assert GENRES == ("Action", "Animation", "Horror", "Romance", "Sports", "ScienceFiction")
    assert set(PROFILES) == {"smoke", "default", "full"}


def test_full_profile_is_paper_scale():
    full = get_profile("full")
    assert (full.input_size, full.sample_fps, full.seq_len) == (299, 4.0, 40)
    assert full.lstm_units >= 2048 and full.head_steps == 4000 and full.head_checkpoint_every == 400
    assert full.require_pretrained


def test_profiles_grow_from_smoke_to_full():
    s, d, f = (get_profile(n) for n in ("smoke", "default", "full"))
    assert s.n_clips < d.n_clips < f.n_clips
    assert s.input_size < d.input_size < f.input_size


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match="smoke, default, full"):
        get_profile("huge")


def test_profile_override():
    assert get_profile("smoke", seq_len=8).seq_len == 8


def test_data_and_run_folders_follow_the_users_settings(monkeypatch, tmp_path):
    from helpers import config

    monkeypatch.setenv("VGENRE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("VGENRE_RUNS_DIR", str(tmp_path / "r"))
    assert config.data_dir() == (tmp_path / "d").resolve()
    assert config.runs_dir() == (tmp_path / "r").resolve()


def _requirement_names(reqs):
    return {re.split(r"[~=<>!\[ ]", r, maxsplit=1)[0].lower(): r for r in reqs}


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    text = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in text
    pip = [line.strip().lstrip("- ").strip('"') for line in text.splitlines() if line.strip().startswith('- "')]
    pip = [p for p in pip if not p.startswith("-e")]
    assert _requirement_names(pip) == _requirement_names(wanted)


def test_dependencies_are_pinned_to_minor_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert "~=" in req, f"{req} is not pinned to a minor version"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterised(notebook):
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert 'profile = "default"' in "".join(tagged[0]["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "vgenre"


def test_series_is_complete():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["00_setup.ipynb", "01_data_curation.ipynb", "02_frame_rate_experiments.ipynb",
                     "03_mel_spectrograms.ipynb", "04_inceptionv3_transfer_learning.ipynb", "05_lstm_training.ipynb",
                     "06_error_analysis.ipynb", "07_classify_your_own_video.ipynb"]


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "helpers", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("synth", "validate", "features", "train", "predict", "run", "bench"):
        assert command in out
