"""Reference results: `vgenre check` reproduces a run against itself, flags drift by the metric's kind,
and the README's results table is the one the default reference writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import main
from helpers.reference import (RESULTS_END, RESULTS_START, ReferenceError, check, load_reference, load_run,
                               results_table, save_reference, write_readme_table)

REPO = Path(__file__).resolve().parent.parent


def write_summary(folder: Path, metrics: dict, *, profile="default", backend="tensorflow", status="ok") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    notebooks = [{"notebook": f"{nb}.ipynb", "status": status, "wall_s": 1.0, "metrics": m} for nb, m in metrics.items()]
    (folder / "summary.json").write_text(json.dumps({"profile": profile, "backend": backend, "keras": "3",
                                                     "framework_version": "x", "devices": ["cpu:0"],
                                                     "notebooks": notebooks}))
    return folder


METRICS = {
    "00_setup": {"backend": "tensorflow", "n_cpus": 2, "weights_source": "random"},
    "05_lstm_training": {"n_test_clips": 120, "test_acc_lstm_pool": 0.8, "test_acc_lstm_pool_ci": [0.73, 0.87],
                         "test_acc_std_lstm_pool": 0.02, "test_f1_lstm_pool": 0.79,
                         "test_acc_single_frame": 0.5, "test_acc_single_frame_ci": [0.41, 0.59],
                         "test_acc_std_single_frame": 0.03, "test_f1_single_frame": 0.45,
                         "verdict_lstm_vs_single_frame": "ahead", "train_time_lstm_pool_seconds": 30.0},
}


def drifted(**changes) -> dict:
    out = json.loads(json.dumps(METRICS))
    for key, value in changes.items():
        nb, name = key.split("__")
        if value is None:
            out[nb].pop(name)
        else:
            out[nb][name] = value
    return out


@pytest.fixture
def reference(tmp_path) -> Path:
    return save_reference(write_summary(tmp_path / "ref_run", METRICS), tmp_path / "references" / "default.json")


def test_the_run_that_made_the_reference_reproduces_it(reference, tmp_path, capsys):
    assert main(["check", str(tmp_path / "ref_run"), str(reference)]) == 0
    assert "0 drifted, 0 missing" in capsys.readouterr().out
    saved = load_reference(reference)
    assert saved["profile"] == "default" and "CPU cores" in saved["machine"]
    assert "wall_s" not in json.dumps(saved) and saved["metrics"]["05_lstm_training"]["n_test_clips"] == 120


@pytest.mark.parametrize("change, reproduced", [
    ({"05_lstm_training__test_acc_lstm_pool": 0.86}, True),     # inside the reference's interval
    ({"05_lstm_training__test_acc_lstm_pool": 0.70}, False),    # below it
    ({"05_lstm_training__n_test_clips": 119}, False),           # counts must be equal
    ({"05_lstm_training__verdict_lstm_vs_single_frame": "not distinguishable"}, False),
    ({"05_lstm_training__test_acc_std_lstm_pool": 0.025}, True),   # within 0.02
    ({"05_lstm_training__test_acc_std_lstm_pool": 0.09}, False),
    ({"05_lstm_training__test_f1_single_frame": None}, False),  # missing from the run
    ({"00_setup__n_cpus": 16, "00_setup__backend": "jax"}, True),  # the machine: shown, not compared
    ({"05_lstm_training__train_time_lstm_pool_seconds": 90.0}, True),  # a time: the machine's speed, not a result
])
def test_check_flags_drift_by_the_kind_of_metric(reference, tmp_path, change, reproduced, capsys):
    run = write_summary(tmp_path / "new_run", drifted(**change))
    assert (main(["check", str(run), str(reference)]) == 0) is reproduced
    out = capsys.readouterr().out
    if not reproduced:
        name = next(iter(change)).split("__")[1]
        assert "DRIFT" in out and name in out  # the table names what drifted
    rows = check(load_run(run), load_reference(reference))
    assert any(r.status == "info" and r.metric == "n_cpus" for r in rows)


def test_a_new_metric_is_listed_but_is_not_drift(reference, tmp_path, capsys):
    run = write_summary(tmp_path / "new_run", drifted(**{"05_lstm_training__test_acc_gru": 0.5}))
    assert main(["check", str(run), str(reference)]) == 0
    assert "test_acc_gru" in capsys.readouterr().out


def test_bad_files_get_one_line_errors(reference, tmp_path, capsys):
    assert main(["check", str(tmp_path / "nowhere"), str(reference)]) == 1
    assert "nowhere: no such run folder or summary.json" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty"), str(reference)]) == 1
    assert "summary.json: run summary not found" in capsys.readouterr().err
    failed = write_summary(tmp_path / "failed", METRICS, status="failed")
    with pytest.raises(ReferenceError, match="did not finish"):
        load_run(failed)
    (tmp_path / "garbage.json").write_text("{not json")
    assert main(["check", str(tmp_path / "ref_run"), str(tmp_path / "garbage.json")]) == 1
    assert "garbage.json: reference is not valid JSON" in capsys.readouterr().err
    # `vgenre run --check` refuses a missing reference before running anything
    assert main(["run", "--profile", "smoke", "--only", "00", "--check", str(tmp_path / "none.json")]) == 1
    assert "none.json: reference not found" in capsys.readouterr().err


def test_readme_table_is_written_between_markers(reference, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{RESULTS_START}\nold table\n{RESULTS_END}\nafter\n")
    assert write_readme_table(reference, readme) is True
    text = readme.read_text()
    assert "old table" not in text and text.endswith(f"{RESULTS_END}\nafter\n")
    assert "| `lstm_pool` | **0.800 ± 0.020** | [0.730, 0.870] | 0.790 | CNN-LSTM pool 90.3% |" in text
    assert "120 test clips" in text
    assert write_readme_table(reference, readme) is False  # unchanged the second time
    readme.write_text("no markers")
    with pytest.raises(ReferenceError, match="no results table markers"):
        write_readme_table(reference, readme)


def test_committed_readme_table_is_the_default_reference():
    """README, reference and run agree: the README's table is what `vgenre readme-table` writes."""
    ref = REPO / "references" / "default.json"
    text = (REPO / "README.md").read_text()
    table = text.split(RESULTS_START + "\n", 1)[1].split("\n" + RESULTS_END, 1)[0]
    assert table == results_table(load_reference(ref))
    assert load_reference(ref)["profile"] == "default"
    assert load_reference(REPO / "references" / "smoke.json")["profile"] == "smoke"
