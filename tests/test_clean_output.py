"""What a student reads is clean: each number once and readable, layers with names, bars that end."""
from __future__ import annotations

import re

import numpy as np


def test_a_verdict_says_its_gap_once_with_its_interval():
    from helpers.evaluate import compare

    a = np.r_[np.ones(10), np.zeros(2)]
    b = np.r_[np.zeros(8), np.ones(4)]
    ahead, behind = compare(a, b, names=("A", "B")), compare(b, a, names=("B", "A"))
    gap = f"{ahead.difference.value:.3f}"
    for verdict in (ahead, behind):
        sentence = verdict.sentence()
        assert sentence.count(gap) == 1 and "difference" not in sentence, sentence
        low, high = (float(x) for x in re.search(r"by [\d.]+ \[([\d.]+), ([\d.]+)\]", sentence).groups())
        assert low <= float(gap) <= high, sentence
    assert behind.sentence().startswith(f"B is behind A by {gap} [")


def test_readable_tables_print_whole_numbers_as_integers():
    import pandas as pd

    from helpers.tables import readable

    report = pd.DataFrame({"precision": [0.5, 0.6667], "support": [20.0, 2.0]}, index=[2.0, 4.0])
    shown = readable(report, digits=2)
    assert shown.support.tolist() == [20, 2] and shown.support.dtype.kind == "i"
    assert shown.index.tolist() == [2, 4] and shown.precision.tolist() == [0.5, 0.67]
    assert "20.0" not in shown.to_string() and report.support.dtype.kind == "f"  # the input is left alone
    assert readable(pd.Series([0.4, 1.0])).tolist() == [0.4, 1.0]


def test_every_registry_model_names_its_layers():
    """``model.summary()`` shows what each layer is (``standardise``, ``hidden``), never a Keras
    counter name (``normalization_20``, ``dropout_40``), however many models were built before."""
    from helpers.config import get_profile
    from helpers.models import METHODS
    from helpers.train import build_model

    prof = get_profile("smoke")
    x = {"video": np.zeros((2, 4, 6), np.float32), "audio": np.ones((2, 4, 3), np.float32),
         "mask": np.ones((2, 4), bool), "thumbs": np.zeros((2, 4, 32, 32, 3), np.float32)}
    def auto_name(layer) -> bool:  # Keras' own: the class in snake case, then a counter
        kind = type(layer).__name__
        snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", kind)).lower()
        return re.fullmatch(rf"{snake}_\d+", layer.name) is not None

    for _ in range(2):  # built twice: a layer left to Keras' naming carries a counter by the second round
        for name, method in METHODS.items():
            if method.build is not None:
                layers = build_model(name, prof, x).layers
                assert not [layer.name for layer in layers if auto_name(layer)], (name, [la.name for la in layers])


def test_the_models_bar_says_what_was_trained_and_what_loaded():
    from helpers.pipeline import _trained_and_loaded

    assert _trained_and_loaded(3, 6) == "3 models trained, 6 already in the run"
    assert _trained_and_loaded(0, 9) == "9 models already in the run"
    assert _trained_and_loaded(1, 0) == "1 model trained"


def test_a_progress_bar_ends_at_its_total(capsys):
    from helpers.progress import progress_bar

    assert sum(progress_bar(range(5), desc="clips", unit="clip")) == 10
    assert "5/5" in capsys.readouterr().err
