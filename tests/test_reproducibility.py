"""What makes `make run` pass on any machine of its kind: metrics carry the kind their notebook declared,
intervals never collapse, a second seed set runs through the same parameters, and a TensorFlow that is
installed but broken does not stop another backend's training."""
from __future__ import annotations

import sys

import pytest

from helpers.config import ConfigError


def test_record_metric_keeps_the_kind_declared_where_it_is_recorded(tmp_path):
    from helpers.context import start_run
    from helpers.evaluate import accuracy_interval
    from helpers.runner import read_kinds, read_metrics

    ctx = start_run("05_demo", profile="smoke", run_dir=tmp_path, verbose=False)
    ctx.record_metric("verdict_x", "ahead", kind="lesson")
    ctx.record_metric("spread", 0.04)  # no kind: only shown
    ctx.record_accuracy("test_acc_x", 0.5, accuracy_interval([1, 0] * 6))
    assert read_kinds(tmp_path, "05_demo") == {"verdict_x": "lesson", "spread": "shown", "test_acc_x": "lesson",
                                               "test_acc_x_ci": "lesson"}
    low, high = read_metrics(tmp_path, "05_demo")["test_acc_x_ci"]
    assert low < 0.5 < high and low != round(low, 4)  # full precision: a bound is never rounded away
    with pytest.raises(ValueError, match="unknown kind 'lessons'"):
        ctx.record_metric("y", 1, kind="lessons")
    assert not list(tmp_path.glob("metrics/*.tmp"))


@pytest.mark.parametrize("k, n", [(0, 14), (14, 14), (0, 1), (3, 12)])
def test_intervals_over_a_handful_of_clips_never_collapse(k, n):
    from helpers.evaluate import accuracy_interval

    est = accuracy_interval([1] * k + [0] * (n - k))
    assert est.low <= k / n <= est.high and est.high - est.low > 0.1
    if k == 0:
        assert est.low == 0 and 0.15 < est.high < 0.8  # 0 of 14: about [0, 0.215], the Wilson interval
    est2 = accuracy_interval([[1] * k + [0] * (n - k)] * 3)  # three seeds agreeing on every clip
    assert (est2.low, est2.high) == pytest.approx((est.low, est.high))


@pytest.mark.parametrize("text, seeds", [("3,4,5", (3, 4, 5)), (" 7 ", (7,)), ((1, 2), (1, 2))])
def test_a_second_seed_set_reaches_every_notebook_through_its_parameters(text, seeds, tmp_path):
    import nbformat

    from helpers.context import parse_seeds, start_run
    from helpers.runner import default_run_dir, list_notebooks, run_parameters

    assert parse_seeds(text) == seeds
    assert start_run("x", profile="default", seeds=text, run_dir=tmp_path, verbose=False).profile.seeds == seeds
    assert run_parameters("default", tmp_path, seeds=seeds)["seeds"] == ",".join(map(str, seeds))
    assert default_run_dir("default", (3, 4, 5)).name == "default-seeds-3-4-5"
    for book in list_notebooks():  # every notebook takes the parameter and hands it to its run context
        cells = nbformat.read(book, as_version=4).cells
        params = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
        assert 'seeds = ""' in params.source, book.name
        assert any("start_run(" in c.source and "seeds=seeds" in c.source for c in cells), book.name


@pytest.mark.parametrize("bad", ["", "a,b", "1,1", "-1", "3;4"])
def test_bad_seeds_are_one_line_errors(bad):
    from helpers.context import parse_seeds

    if bad == "":
        return  # empty means the profile's seeds (start_run never parses it)
    with pytest.raises(ConfigError, match="distinct non-negative integers"):
        parse_seeds(bad)


def test_a_broken_tensorflow_does_not_stop_training_on_another_backend(tmp_path, monkeypatch):
    """TensorFlow installed but failing to import (a broken wheel, here a module that raises ImportError
    ahead of the real one on the path): the TensorBoard callback is left out, training keeps its CSV log,
    no ImportError reaches the training cell."""
    import helpers.backends as backends
    from helpers.train import training_callbacks

    fake = tmp_path / "site" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libtensorflow_framework.so.2: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    monkeypatch.setattr(backends, "_TENSORBOARD", None)
    with pytest.raises(ImportError, match="cannot open shared object"):
        import tensorflow  # noqa: F401  (the broken install the test stands for)
    assert backends.tensorboard_available() is False
    names = [type(c).__name__ for c in training_callbacks(tmp_path)]
    assert "CSVLogger" in names and "ModelCheckpoint" in names and "TensorBoard" not in names


def test_a_notebook_shows_a_warning_in_one_line(tmp_path):
    import warnings

    from helpers.context import start_run

    start_run("x", profile="smoke", run_dir=tmp_path, verbose=False)
    text = warnings.formatwarning("GroupedSplit: 2 groups for 3 sides", UserWarning, "/x/curate.py", 363,
                                  'warnings.warn("GroupedSplit: ...")')
    assert text == "UserWarning: GroupedSplit: 2 groups for 3 sides\n"
