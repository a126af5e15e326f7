"""Metrics, reliability and timelines on hand-made predictions."""
from __future__ import annotations

import numpy as np

from helpers.config import GENRES
from helpers.evaluate import clip_metrics, predictions_table, reliability, timeline


def test_clip_metrics_on_known_predictions():
    y = np.array([0, 1, 2, 3])
    probs = np.eye(6)[[0, 1, 2, 4]] * 0.7 + 0.05
    probs[3, 3] = 0.6  # the wrong clip has the truth as second guess
    m = clip_metrics(y, probs)
    assert m["accuracy"] == 0.75 and m["top2_accuracy"] == 1.0
    assert m["confusion"][3, 4] == 1 and m["confusion"].sum() == 4
    assert set(m["report"]) >= set(GENRES)


def test_reliability_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 20000)
    correct = rng.uniform(size=conf.size) < conf  # right exactly as often as it claims
    probs = np.full((conf.size, 6), 0.0)
    probs[:, 0] = conf
    probs[:, 1:] = ((1 - conf) / 5)[:, None]
    y = np.where(correct, 0, 1)
    assert reliability(y, probs)["ece"] < 0.02
    assert reliability(np.ones(conf.size, int), probs)["ece"] > 0.5  # always wrong, confident


def test_timeline_windows_and_table():
    probs = np.eye(6)[[3, 0]]
    windows = timeline(probs, np.array([0, 20]), seq_len=40, fps=4.0, duration=15.0)
    assert windows == [{"start": 0.0, "end": 10.0, "genre": "Romance", "confidence": 1.0},
                       {"start": 5.0, "end": 15.0, "genre": "Action", "confidence": 1.0}]
    table = predictions_table([{"path": "a.mp4"}, {"path": "b.mp4"}], np.array([3, 1]), probs)
    assert table.correct.tolist() == [True, False] and table.predicted.tolist() == ["Romance", "Action"]
