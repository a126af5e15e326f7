"""The papermill runner (failures name notebook and cell), record_metric, bench output."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from helpers.runner import read_metrics, record_metric


def test_record_metric_writes_plain_json(tmp_path, monkeypatch):
    target = tmp_path / "m" / "nb.json"
    monkeypatch.setenv("VGENRE_METRICS_FILE", str(target))
    record_metric("acc", np.float32(0.5))
    record_metric("acc", 0.75)
    record_metric("name", "Action")
    assert json.loads(target.read_text()) == {"acc": 0.75, "name": "Action"}


def _notebook(path, sources, tag_first=True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "vgenre", "display_name": "Python (vgenre)", "language": "python"}
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if tag_first:
        cells[0].metadata["tags"] = ["parameters"]
    nb.cells = cells
    nbformat.write(nb, path)


@pytest.fixture()
def tiny_series(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "00_fine.ipynb", ['profile = "default"', "from helpers import record_metric\n"
                                        "record_metric('profile_seen', profile)"])
    _notebook(books / "01_broken.ipynb", ['profile = "default"', "x = 1", "raise RuntimeError('boom in cell three')"])
    _notebook(books / "02_never.ipynb", ['profile = "default"'])
    monkeypatch.setenv("VGENRE_NOTEBOOKS_DIR", str(books))
    return tmp_path


def test_runner_injects_profile_and_stops_at_the_failing_notebook(tiny_series):
    from helpers.runner import run_series

    out, results = run_series("smoke", out=tiny_series / "run")
    assert [r.status for r in results] == ["ok", "failed"]
    assert results[0].metrics == {"profile_seen": "smoke"}
    assert "boom in cell three" in results[1].error and "In [" in results[1].error
    summary = json.loads((out / "summary.json").read_text())
    assert [n["notebook"] for n in summary["notebooks"]] == ["00_fine.ipynb", "01_broken.ipynb"]


def test_run_command_exit_status_names_notebook_and_cell(tiny_series):
    proc = subprocess.run([sys.executable, "-m", "helpers", "run", "--profile", "smoke", "--only", "01",
                           "--out", str(tiny_series / "run2")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "FAILED: 01_broken.ipynb" in proc.stderr and "boom in cell three" in proc.stderr


def test_bench_prints_ratios_last(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "helpers", "bench", "--only", "audio", "frames"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    last = dict(kv.split("=") for kv in proc.stdout.strip().splitlines()[-1].split())
    assert {"logmel_realtime_x", "sample_720p_realtime_x", "multi_request_cost_x", "peak_rss_mb"} <= set(last)
    assert float(last["logmel_realtime_x"]) > 0
