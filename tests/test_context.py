"""The run context: a notebook's parameters switch everything, in one process, without environment variables."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers.config import repo_root
from helpers.context import start_run

NOTEBOOK = repo_root() / "notebooks" / "01_data_curation.ipynb"


def _cells(path: Path) -> tuple[str, str]:
    """The parameters cell and the setup cell (the next code cell) of a notebook."""
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    k = next(i for i, c in enumerate(code) if "parameters" in c["metadata"].get("tags", []))
    return "".join(code[k]["source"]), "".join(code[k + 1]["source"])


def test_setup_cell_is_a_few_lines_and_reads_no_environment():
    for path in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        _, setup = _cells(path)
        assert "start_run(" in setup and "environ" not in setup and len(setup.splitlines()) <= 8, path.name


def test_running_the_setup_cell_again_with_another_profile_switches_everything(tmp_path, capsys, monkeypatch):
    from helpers.backends import quiet_start

    monkeypatch.setenv("VGENRE_RUNS_DIR", str(tmp_path / "runs"))  # not the session's smoke run
    parameters, setup = _cells(NOTEBOOK)
    quiet_start()  # TensorFlow sets variables of its own as it loads; the run context sets none
    env_before = dict(os.environ)
    kernel: dict = {}
    exec(parameters, kernel)
    kernel["profile"] = "smoke"
    exec(setup, kernel)
    first = kernel["ctx"]
    first.record_metric("n", 1)
    kernel.update(profile="default", manifest=str(tmp_path / "manifest.csv"))  # the student edits the parameters
    exec(setup, kernel)
    second = kernel["ctx"]
    second.record_metric("n", 2)
    assert dict(os.environ) == env_before
    assert (first.profile.name, second.profile.name) == ("smoke", "default") and kernel["P"] is second.profile
    assert first.run_dir.name == "smoke" and second.run_dir.name == "default"
    assert first.manifest is None and second.manifest == (tmp_path / "manifest.csv").resolve()
    assert json.loads(first.metrics_file.read_text()) == {"n": 1}
    assert json.loads(second.metrics_file.read_text()) == {"n": 2}
    assert first.metrics_file.name == "01_data_curation.json"
    printed = capsys.readouterr().out
    assert "profile smoke" in printed and "profile default" in printed and "curated manifest" in printed
    kernel.update(manifest="")  # emptying the manifest goes back to the synthetic set
    exec(setup, kernel)
    assert kernel["ctx"].manifest is None


def test_record_metric_and_save_fig(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ctx = start_run("nb", profile="smoke", run_dir=tmp_path / "run", figures_dir=tmp_path / "readme", verbose=False)
    ctx.record_metric("acc", np.float32(0.5))
    ctx.record_metric("acc", 0.75)
    ctx.record_metric("name", "Action")
    assert json.loads((tmp_path / "run" / "metrics" / "nb.json").read_text()) == {"acc": 0.75, "name": "Action"}
    fig, _ = plt.subplots()
    saved = ctx.save_fig(fig, "demo")
    plt.close(fig)
    assert saved == tmp_path / "run" / "figures" / "demo.png" and (tmp_path / "readme" / "demo.png").exists()
    alone = start_run("nb", profile="smoke", run_dir=tmp_path / "run2", verbose=False)
    alone.save_fig(plt.figure(), "demo")
    assert not (tmp_path / "readme2").exists() and alone.figures_dir is None


def test_unknown_profile_is_refused():
    from helpers.config import ConfigError

    with pytest.raises(ConfigError, match="smoke, default, full"):
        start_run(profile="tiny", verbose=False)


def test_backend_starts_without_its_start_up_chatter():
    """`quiet_start` imports Keras with TensorFlow's start-up lines (oneDNN, cuInit...) filtered out,
    and passes on anything else written meanwhile."""
    import subprocess
    import sys

    from helpers.backends import START_UP_NOISE, start_up_lines

    # a masked LSTM makes a boolean transpose: without AVX-512, oneDNN (on, as by default) logs an
    # error line about it once per process, which quiet_start has already taken while filtering
    code = ("from helpers.backends import quiet_start; quiet_start(); import keras, numpy as np; "
            "keras.layers.Dense(2)(np.zeros((1, 3))); "
            "keras.layers.LSTM(2)(np.zeros((1, 3, 2)), mask=np.array([[True, True, False]])); "
            "import sys; print('still here', file=sys.stderr)")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stderr
    assert "still here" in err and not START_UP_NOISE.search(err), err
    assert "DT_BOOL" not in err and "E0000" not in err, err
    sample = ("I0000 port.cc:153] oneDNN custom operations are on.\nE0000 cuda_platform.cc:52] failed call to cuInit\n"
              "ValueError: a real problem\n")
    assert start_up_lines(sample) == "ValueError: a real problem\n"
