"""Metrics, reliability and timelines on hand-made predictions."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.config import GENRES
from helpers.evaluate import clip_metrics, predictions_table, reliability
from helpers.predict import timeline


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


def test_accuracy_interval_matches_the_binomial_spread():
    from helpers.evaluate import accuracy_interval

    correct = np.r_[np.ones(90), np.zeros(30)]
    est = accuracy_interval(correct)
    half = 1.96 * np.sqrt(0.75 * 0.25 / 120)  # the normal approximation of a binomial proportion
    assert est.value == 0.75 and est.n == 120 and est.low < 0.75 < est.high
    assert abs((est.high - est.low) / 2 - half) < 0.02
    assert str(est) == f"0.750 [{est.low:.3f}, {est.high:.3f}]"
    saturated = accuracy_interval(np.ones(24))  # 24 of 24: the Wilson interval, not a point
    assert saturated.value == saturated.high == 1.0 and 0.8 < saturated.low < 0.9
    from scipy.stats import binomtest  # the same as scipy's own Wilson interval
    wilson = binomtest(90, 120).proportion_ci(method="wilson")
    assert (est.low, est.high) == pytest.approx((wilson.low, wilson.high))
    seeds = np.stack([correct, correct[::-1], correct])  # [seeds, clips]: a clip scores its share of seeds
    assert abs(accuracy_interval(seeds).value - 0.75) < 1e-12 and accuracy_interval(seeds).n == 120


def test_compare_pairs_the_clips_and_words_the_verdict():
    from helpers.evaluate import accuracy_interval, compare

    rng = np.random.default_rng(3)
    b = (rng.random(120) < 0.5).astype(int)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:8]] = 1  # a gets 8 more clips right, and none fewer
    paired = compare(a, b, names=("the LSTM", "frame averaging"))
    assert paired.word == "ahead" and paired.paired and abs(paired.difference.value - 8 / 120) < 1e-12
    assert paired.sentence().startswith("the LSTM is ahead of frame averaging by 0.067")
    assert compare(b, a).word == "behind"
    # the same gap seen through two separate intervals overlaps: only pairing the clips sees it
    ia, ib = accuracy_interval(a), accuracy_interval(b)
    assert ia.low < ib.high
    assert compare(a, b[:100], paired=False).word == "not distinguishable" and not compare(a, b[:100], paired=False).paired
    with pytest.raises(ValueError, match="paired=False"):
        compare(a, b[:100])
    c = b.copy()
    c[np.flatnonzero(b == 0)[0]], c[np.flatnonzero(b == 1)[0]] = 1, 0  # one clip won, one lost
    tie = compare(c, b, names=("x", "y"))
    assert tie.word == "not distinguishable" and tie.difference.value == 0
    assert "not distinguishable with these clips" in tie.sentence() and "the same 120 test clips" in tie.sentence()
    assert "own test clips, 120 and 100" in compare(a, b[:100], paired=False).sentence()
    assert compare(b, b).word == "not distinguishable" and compare(b, b).difference.low == 0
