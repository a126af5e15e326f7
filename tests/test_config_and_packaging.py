"""Profiles, packaging metadata, notebook hygiene, and the command's subcommands."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml  # PyYAML and packaging come with the core dependencies (papermill, keras)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

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


# Google Colab's preinstalled versions (Python 3.13, its published freeze of 2026-08-19): the oldest
# set the ranges must admit.
COLAB = {"keras": "3.13.2", "numpy": "2.1.3", "librosa": "0.11.0", "ipywidgets": "7.7.1", "pandas": "2.2.3",
         "scikit-learn": "1.6.1", "matplotlib": "3.10.0", "opencv-python-headless": "5.0.0.93",
         "pillow": "11.3.0", "ipykernel": "6.17.1", "tqdm": "4.67.3", "soundfile": "0.14.0",
         "imageio-ffmpeg": "0.6.0", "nbformat": "5.11.1"}
COLAB_BACKEND = {"tensorflow": "2.20.0", "tensorboard": "2.20.0"}
PYTHONS = ("3.11", "3.12", "3.13")
BACKENDS = ("tensorflow", "jax", "torch")
LOCKED_EXTRAS = (*BACKENDS, "test", "lab", "browser")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(reqs) -> dict[str, Requirement]:
    parsed = [Requirement(r) for r in reqs]
    return {canonicalize_name(r.name): r for r in parsed}


def _pins(path: Path) -> dict[str, str]:
    """The ``name==version`` lines of a constraints file, by normalised name."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep and pinned, f"{path.name}: {line!r} is not an exact pin"
            assert canonicalize_name(name) not in pins, f"{path.name}: {name} pinned twice"
            pins[canonicalize_name(name)] = pinned.strip()
    return pins


def test_supports_python_311_to_313():
    project = _project()
    spec = SpecifierSet(project["requires-python"])
    assert all(spec.contains(v) for v in PYTHONS), f"requires-python {spec} must admit {PYTHONS}"
    for v in PYTHONS:
        assert f"Programming Language :: Python :: {v}" in project["classifiers"]


def test_backends_are_extras_not_core_dependencies():
    project = _project()
    core = _requirements(project["dependencies"])
    assert not set(core) & set(BACKENDS), "the core must install without TensorFlow, JAX or PyTorch"
    assert "keras" in core and "tensorboard" not in core and "jupyterlab" not in core
    extras = project["optional-dependencies"]
    for backend in BACKENDS:
        assert backend in _requirements(extras[backend]), f"the {backend} extra must install {backend}"
    assert "jupyterlab" in _requirements(extras["lab"])
    assert {"pytest", "hypothesis"} <= set(_requirements(extras["test"]))


@pytest.mark.parametrize("name", sorted(COLAB) + sorted(COLAB_BACKEND))
def test_ranges_admit_colabs_versions(name):
    project = _project()
    reqs = _requirements(project["dependencies"]) | _requirements(project["optional-dependencies"]["tensorflow"])
    wanted = (COLAB | COLAB_BACKEND)[name]
    assert name in reqs, f"{name} is not a dependency"
    assert reqs[name].specifier, f"{name} has no range"
    assert reqs[name].specifier.contains(wanted), f"{reqs[name]} does not admit Colab's {name} {wanted}"


def test_every_dependency_is_a_range():
    project = _project()
    for req in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        spec = Requirement(req).specifier
        assert any(s.operator in (">=", "~=") for s in spec), f"{req} needs a lower bound"
        assert not any(s.operator in ("==", "===") for s in spec), f"{req} is pinned; pins go in constraints.txt"


def test_lock_pins_every_dependency_inside_its_range():
    project = _project()
    pins = _pins(ROOT / "constraints.txt")
    reqs = project["dependencies"] + [r for extra in LOCKED_EXTRAS for r in project["optional-dependencies"][extra]]
    for name, req in _requirements(reqs).items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]} outside {req}"


@pytest.mark.parametrize("hosted", ["colab", "kaggle"])
def test_hosted_sets_pin_the_runtimes_versions(hosted):
    """constraints-colab.txt is Colab's published set (and what the course installs on top at the
    lock's versions); constraints-kaggle.txt the same with Kaggle's ipywidgets 8.1.5."""
    pins = _pins(ROOT / f"constraints-{hosted}.txt")
    lock = _pins(ROOT / "constraints.txt")
    wanted = COLAB | COLAB_BACKEND | ({"ipywidgets": "8.1.5"} if hosted == "kaggle" else {})
    for name, version in wanted.items():
        assert pins.get(name) == version, f"constraints-{hosted}.txt must pin {name}=={version}, not {pins.get(name)}"
    for name in ("av", "papermill"):  # not in Colab: installed on top, at the lock's versions
        assert pins.get(name) == lock[name], f"constraints-{hosted}.txt must pin {name}=={lock[name]}"
    project = _project()
    reqs = _requirements(project["dependencies"] + project["optional-dependencies"]["tensorflow"]
                         + project["optional-dependencies"]["test"])
    for name, req in reqs.items():
        assert name in pins, f"constraints-{hosted}.txt does not pin {name}"
        assert req.specifier.contains(pins[name]), f"constraints-{hosted}.txt pins {name}=={pins[name]} outside {req}"


def test_environment_yml_agrees_with_pyproject():
    project = _project()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    python = [d for d in conda if d.startswith("python")]
    assert len(python) == 1, "environment.yml names one python"
    conda_spec = SpecifierSet(python[0].removeprefix("python"))
    requires = SpecifierSet(project["requires-python"])
    assert all(conda_spec.contains(v) and requires.contains(v) for v in PYTHONS)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert len(pip) == 1, "the pip section installs the package; its dependencies come from pyproject.toml"
    match = re.fullmatch(r"-e \.\[([\w,-]+)\]", pip[0])
    assert match, f"{pip[0]!r} is not an editable install of the package with extras"
    extras = match.group(1).split(",")
    assert "tensorflow" in extras and set(extras) <= set(project["optional-dependencies"])


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
                     "06_error_analysis.ipynb", "07_classify_your_own_video.ipynb",
                     "08_beyond_the_paper.ipynb"]


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "helpers", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("synth", "validate", "features", "train", "predict", "run", "bench"):
        assert command in out
