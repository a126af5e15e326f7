"""Reference results: `vgenre check` reproduces a run against itself, fails on a lesson and never on a number
only shown, knows which lessons a second seed set did not settle, and the README's results table is the one
the default reference writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import main
from helpers.reference import (RESULTS_END, RESULTS_START, ReferenceError, add_seed_table, check, load_reference,
                               load_run, results_table, save_reference, write_readme_table, declared_lines,
                               other_results)

REPO = Path(__file__).resolve().parent.parent


def write_summary(folder: Path, metrics: dict, *, profile="default", backend="tensorflow", status="ok",
                  seeds=(0, 1, 2), kinds=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    kinds = KINDS if kinds is None else kinds
    notebooks = [{"notebook": f"{nb}.ipynb", "status": status, "wall_s": 1.0, "metrics": m,
                  "kinds": {k: v for k, v in kinds.get(nb, {}).items() if k in m}} for nb, m in metrics.items()]
    (folder / "summary.json").write_text(json.dumps({"profile": profile, "seeds": list(seeds), "backend": backend,
                                                     "keras": "3",
                                                     "framework_version": "x", "devices": ["cpu:0"],
                                                     "notebooks": notebooks}))
    return folder


METRICS = {
    "00_setup": {"backend": "tensorflow", "n_cpus": 2, "weights_source": "random"},
    "05_lstm_training": {"n_test_clips": 120, "test_acc_lstm_pool": 0.8, "test_acc_lstm_pool_ci": [0.73, 0.87],
                         "test_acc_std_lstm_pool": 0.02, "test_f1_lstm_pool": 0.79,
                         "test_acc_single_frame": 0.5, "test_acc_single_frame_ci": [0.41, 0.59],
                         "test_acc_std_single_frame": 0.03, "test_f1_single_frame": 0.45,
                         "verdict_lstm_vs_single_frame": "ahead", "verdict_wide_vs_deep": "not distinguishable",
                         "train_time_lstm_pool_seconds": 30.0, "gate_input_corr_median": 0.45},
    "06_error_analysis": {"hard_acc_lstm_pool": 0.0, "hard_acc_lstm_pool_ci": [0.0, 0.2153]},
}
KINDS = {  # as the notebooks declare them where they record the metrics
    "00_setup": {"weights_source": "setup"},
    "05_lstm_training": {"n_test_clips": "setup", "test_acc_lstm_pool": "lesson", "test_acc_lstm_pool_ci": "lesson",
                         "test_acc_single_frame": "lesson", "test_acc_single_frame_ci": "lesson",
                         "verdict_lstm_vs_single_frame": "lesson", "verdict_wide_vs_deep": "lesson"},
    "06_error_analysis": {"hard_acc_lstm_pool": "lesson", "hard_acc_lstm_pool_ci": "lesson"},
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
    out = capsys.readouterr().out
    assert "0 drifted, 0 missing" in out and "every lesson reproduced" in out
    assert "Lessons and setup (compared" in out and "Numbers shown beside the reference" in out
    saved = load_reference(reference)
    assert saved["profile"] == "default" and "CPU cores" in saved["machine"] and saved["seeds"] == [0, 1, 2]
    from helpers.reference import cpu_model
    assert cpu_model() in saved["machine"]  # the CPU model, so another machine's drift can be told apart
    assert "wall_s" not in json.dumps(saved) and saved["metrics"]["05_lstm_training"]["n_test_clips"] == 120


@pytest.mark.parametrize("change, reproduced", [
    ({"05_lstm_training__test_acc_lstm_pool": 0.86}, True),     # inside the reference's interval
    ({"05_lstm_training__test_acc_lstm_pool": 0.87}, True),     # on its bound: inside
    ({"05_lstm_training__test_acc_lstm_pool": 0.70}, False),    # below it
    ({"05_lstm_training__n_test_clips": 119}, False),           # setup must be equal
    ({"05_lstm_training__verdict_lstm_vs_single_frame": "not distinguishable"}, False),  # a flipped verdict
    ({"05_lstm_training__test_acc_std_lstm_pool": 0.044}, True),  # a spread over seeds: shown, never compared
    ({"05_lstm_training__gate_input_corr_median": -0.77}, True),  # a correlation: shown
    ({"05_lstm_training__test_f1_single_frame": None}, True),   # a number shown, missing: still no failure
    ({"05_lstm_training__verdict_lstm_vs_single_frame": None}, False),  # a lesson missing from the run
    ({"06_error_analysis__hard_acc_lstm_pool": 1 / 14}, True),  # 1 of 14 inside 0 of 14's Wilson interval
    ({"00_setup__n_cpus": 16, "00_setup__backend": "jax"}, True),  # the machine: shown, not compared
    ({"05_lstm_training__train_time_lstm_pool_seconds": 90.0}, True),  # a time: the machine's speed, not a result
])
def test_check_fails_on_lessons_only(reference, tmp_path, change, reproduced, capsys):
    run = write_summary(tmp_path / "new_run", drifted(**change))
    assert (main(["check", str(run), str(reference)]) == 0) is reproduced
    out = capsys.readouterr().out
    name = next(iter(change)).split("__")[1]
    assert name in out  # both tables name every metric
    if not reproduced:
        assert "DRIFT" in out
    rows = check(load_run(run), load_reference(reference))
    assert any(r.status == "shown" and r.metric == "n_cpus" for r in rows)


def test_an_undeclared_metric_is_shown_never_compared(reference, tmp_path):
    """A metric recorded without a kind cannot silently become a failing one."""
    metrics = drifted(**{"05_lstm_training__test_acc_std_lstm_pool": 0.5})
    rows = check(load_run(write_summary(tmp_path / "r", metrics, kinds={})), load_reference(reference))
    row = next(r for r in rows if r.metric == "test_acc_std_lstm_pool")
    assert row.kind == "shown" and not row.drifted


def test_a_lesson_the_second_seed_set_did_not_settle_is_shown_not_compared(reference, tmp_path, capsys):
    other = drifted(**{"05_lstm_training__verdict_wide_vs_deep": "ahead",
                       "05_lstm_training__test_acc_lstm_pool": 0.75})
    run = write_summary(tmp_path / "seeds_345", other, seeds=(3, 4, 5))
    assert main(["seed-table", str(reference), str(run)]) == 0
    out = capsys.readouterr().out
    assert "NOT SETTLED" in out and "4 of 5 lessons settled" in out
    table = load_reference(reference)["seed_table"]
    settled = {r["metric"]: r["settled"] for r in table["rows"]}
    assert settled == {"verdict_lstm_vs_single_frame": True, "verdict_wide_vs_deep": False,
                       "test_acc_lstm_pool": True, "test_acc_single_frame": True, "hard_acc_lstm_pool": True}
    # a flip of the unsettled verdict no longer fails the check; a flip of a settled one still does
    flipped = write_summary(tmp_path / "flip", drifted(**{"05_lstm_training__verdict_wide_vs_deep": "behind"}))
    rows = check(load_run(flipped), load_reference(reference))
    assert next(r for r in rows if r.metric == "verdict_wide_vs_deep").status == "not settled"
    assert main(["check", str(flipped), str(reference)]) == 0
    flipped = write_summary(tmp_path / "flip2", drifted(**{"05_lstm_training__verdict_lstm_vs_single_frame": "behind"}))
    assert main(["check", str(flipped), str(reference)]) == 1
    # the README says which lessons are not settled
    readme = tmp_path / "README.md"
    readme.write_text(f"{RESULTS_START}\n{RESULTS_END}\n")
    write_readme_table(reference, readme)
    assert "4 of 5 held; not settled, so not lessons: `verdict_wide_vs_deep`" in readme.read_text()
    with pytest.raises(ReferenceError, match="other seeds"):
        add_seed_table(reference, tmp_path / "ref_run")  # the same seeds again


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
    assert table == results_table(load_reference(ref), REPO / "notebooks")
    assert load_reference(ref)["profile"] == "default"
    assert load_reference(REPO / "references" / "smoke.json")["profile"] == "smoke"


def test_a_seed_run_of_the_training_notebooks_only_leaves_the_others_out_of_the_table(reference, tmp_path, capsys):
    """`vgenre run --seeds 3,4,5 --only 04 05 06 07 08`: a notebook the second run did not execute trains
    nothing, so its lessons are listed as not run, not as unsettled."""
    other = drifted()
    other.pop("06_error_analysis")
    run = write_summary(tmp_path / "seeds_345_some", other, seeds=(3, 4, 5))
    assert main(["seed-table", str(reference), str(run)]) == 0
    out = capsys.readouterr().out
    table = load_reference(reference)["seed_table"]
    assert table["not_run"] == ["06_error_analysis"] and "hard_acc_lstm_pool" not in {r["metric"] for r in table["rows"]}
    assert all(r["settled"] for r in table["rows"]) and "not run with the other seeds" in out


def _notebook(path: Path, *sources: str) -> Path:
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_readme_lines_are_declared_where_the_metric_is_recorded(tmp_path):
    """A README line lives beside the value in the notebook: renaming the metric there and in the
    reference moves the line with it; a line that names a metric the reference lacks fails loudly."""
    books = tmp_path / "notebooks"
    recorded = ('ctx.record_accuracy("test_acc_gru", 0.8, ci, readme="A GRU: {}, against the LSTM: {verdict_gru}")\n'
                'ctx.record_metric("verdict_gru", v.word, kind="lesson")\n'
                'for m in ("a", "b"):\n'
                '    ctx.record_metric(f"share_{m}", s, readme=("Shares: ", "`{label}` {:.0%}"))\n'
                'ctx.record_metric("share_total", 1.0)  # a literal name: not a part of the shares line\n')
    _notebook(books / "05_lstm_training.ipynb", "%matplotlib inline\n" + recorded)
    ref = {"metrics": {"05_lstm_training": {"test_acc_gru": 0.8, "test_acc_gru_ci": [0.7, 0.9], "verdict_gru": "ahead",
                                            "share_a": 0.25, "share_b": 0.5, "share_total": 1.0}},
           "kinds": {"05_lstm_training": {"verdict_gru": "lesson", "test_acc_gru": "lesson"}}}
    assert other_results(ref, books) == [
        "- A GRU: 0.800 [0.700, 0.900], against the LSTM: **ahead** (notebook 05).",
        "- Shares: `a` 25%; `b` 50% (notebook 05)."]
    # renamed in the notebook and in the reference: the line follows
    _notebook(books / "05_lstm_training.ipynb", recorded.replace("verdict_gru", "verdict_gru_vs_lstm"))
    ref["metrics"]["05_lstm_training"]["verdict_gru_vs_lstm"] = ref["metrics"]["05_lstm_training"].pop("verdict_gru")
    ref["kinds"]["05_lstm_training"]["verdict_gru_vs_lstm"] = "lesson"
    assert other_results(ref, books)[0] == "- A GRU: 0.800 [0.700, 0.900], against the LSTM: **ahead** (notebook 05)."
    # renamed in the notebook only: the reference lacks the name the line uses
    _notebook(books / "05_lstm_training.ipynb", recorded.replace("{verdict_gru}", "{verdict_gru_vs_mlp}"))
    with pytest.raises(ReferenceError, match="names 'verdict_gru_vs_mlp', which the reference does not hold"):
        other_results(ref, books)
    # a line whose own metric was not recorded (a row that did not run) is left out
    del ref["metrics"]["05_lstm_training"]["test_acc_gru"]
    _notebook(books / "05_lstm_training.ipynb", recorded)
    assert other_results(ref, books) == ["- Shares: `a` 25%; `b` 50% (notebook 05)."]
    # a template that is not a literal is refused with the notebook and cell named
    _notebook(books / "06_error_analysis.ipynb", 'ctx.record_metric("x", 1, readme=text)\n')
    with pytest.raises(ReferenceError, match="06_error_analysis.ipynb, cell 0, line 1: readme= must be a literal"):
        other_results(ref, books)


def test_every_line_the_notebooks_declare_fills_from_the_default_reference():
    """No README line of the committed notebooks names a metric the committed reference lacks: a metric
    renamed in a notebook without a new reference fails here, not silently in the README."""
    ref = load_reference(REPO / "references" / "default.json")
    declared = [d for d in declared_lines(REPO / "notebooks") if d.template is not None]
    literal = [d for d in declared if not d.pattern]
    assert len(declared) >= 20
    missing = [f"{d.notebook}: {d.name}" for d in literal if d.name not in ref["metrics"].get(d.notebook, {})]
    assert not missing, f"declared README lines whose metric the default reference lacks: {missing}"
    import re

    lines = other_results(ref, REPO / "notebooks")
    patterns = [d for d in declared if d.pattern]
    matched = [d for d in patterns if any(re.fullmatch(d.name, k) for k in ref["metrics"].get(d.notebook, {}))]
    assert len(lines) == len(literal) + len(matched)  # a pattern without a match: rows that did not run offline


def test_a_readme_template_that_does_not_parse_is_refused(tmp_path):
    from helpers.context import start_run
    from helpers.errors import SettingError

    ctx = start_run("99_scratch", profile="smoke", run_dir=tmp_path / "run", data_dir=tmp_path / "data")
    with pytest.raises(SettingError, match="does not parse"):
        ctx.record_metric("x", 1, readme="an open {brace")
    ctx.record_metric("x", 1, readme="fine: {}")
