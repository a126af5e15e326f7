"""The statistics of evaluation: clip metrics, accuracies with intervals, paired verdicts, reliability.

Metrics come from scikit-learn and intervals from scipy. Classifying new videos (what ``vgenre
predict`` does) is :mod:`helpers.predict`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.config import GENRES


def clip_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, macro-F1, top-2 accuracy, the confusion matrix and a per-genre report.

    Macro-F1 averages over the genres present in *y_true* (``labels_present``): a genre the set
    does not hold has no F1 to average, and counting it as 0 would understate every score (five of
    six genres at accuracy 0.8 would give 0.61). Predicting an absent genre still costs recall of
    the true one. The confusion matrix and the report keep all six genres.
    """
    from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix, f1_score,
                                 top_k_accuracy_score)

    labels = list(range(len(GENRES)))
    y_true = np.asarray(y_true)
    present = sorted(set(y_true.tolist()))
    y_pred = np.asarray(probs).argmax(1)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "labels_present": [GENRES[i] for i in present],
        "top2_accuracy": float(top_k_accuracy_score(y_true, probs, k=2, labels=labels)),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels),
        "report": classification_report(y_true, y_pred, labels=labels, target_names=list(GENRES),
                                        output_dict=True, zero_division=0),
    }


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% bootstrap interval over *n* test clips."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _per_clip(correct) -> np.ndarray:
    """``[clips]`` or ``[seeds, clips]`` of right/wrong as one score per clip (the mean over seeds)."""
    c = np.asarray(correct, np.float64)
    if c.ndim == 2:
        c = c.mean(0)
    if c.ndim != 1 or not len(c):
        raise ValueError(f"expected right/wrong per test clip ([clips] or [seeds, clips]), got shape {c.shape}")
    return c


def accuracy_interval(correct, *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Accuracy with its interval over test clips: the one helper behind every interval of the series.

    *correct* holds 1 or 0 per clip, or ``[seeds, clips]`` for several training seeds (each clip then
    scores the share of seeds that got it right). The interval says how much the accuracy could move
    with another draw of test clips of the same kind; the spread over seeds is a different question
    (how much training varies) and is reported beside it.

    * Right or wrong per clip (one seed): a Wilson score interval for k right of n
      (``scipy.stats.binomtest``). It never collapses: 0 of 14 gives [0.000, 0.215], not [0, 0].
    * Shares of seeds per clip: a percentile bootstrap over clips (``scipy.stats.bootstrap``); when
      every clip scores alike (all right, say), no resample differs, and the Wilson interval of the
      rounded count is given instead.

    >>> str(accuracy_interval([0] * 14))
    '0.000 [0.000, 0.215]'
    """
    c = _per_clip(correct)
    n = len(c)
    binary = bool(np.all((c == 0) | (c == 1)))
    if binary or np.all(c == c[0]):
        from scipy.stats import binomtest

        k = int(round(float(c.sum())))
        ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        return Estimate(float(c.mean()), max(0.0, float(ci.low)), min(1.0, float(ci.high)), n, level)
    from scipy.stats import bootstrap

    ci = bootstrap((c,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile",
                   random_state=np.random.default_rng(seed)).confidence_interval
    return Estimate(float(c.mean()), float(ci.low), float(ci.high), n, level)


@dataclass(frozen=True)
class Verdict:
    """How result *a* compares with result *b*: ``ahead``, ``behind`` or ``not distinguishable``."""

    word: str
    a: str
    b: str
    difference: Estimate  # a minus b, with its interval
    paired: bool
    sizes: tuple[int, int] = (0, 0)  # test clips behind a and b

    def sentence(self) -> str:
        clips = (f"the same {self.sizes[0]} test clips" if self.paired
                 else f"each side's own test clips, {self.sizes[0]} and {self.sizes[1]}")
        if self.word == "not distinguishable":
            return (f"{self.a} and {self.b} are not distinguishable with these clips "
                    f"(difference {self.difference}, {self.difference.level:.0%} interval over {clips})")
        d = self.difference  # said once: the gap, then its interval (both as a gap: behind by 0.2 [0.1, 0.3])
        how_far, sign = ("ahead of", 1) if self.word == "ahead" else ("behind", -1)
        low, high = sorted((sign * d.low, sign * d.high))
        return (f"{self.a} is {how_far} {self.b} by {sign * d.value:.3f} [{low:.3f}, {high:.3f}] "
                f"({d.level:.0%} interval over {clips})")


def compare(a_correct, b_correct, *, names: tuple[str, str] = ("A", "B"), paired: bool = True,
            level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Verdict:
    """Compare two results on test clips: the verdict every sentence about a result comes from.

    With *paired* (the default) both results are on the same clips, in the same order, and the clips
    are resampled together (a paired bootstrap of the difference in accuracy), which sees a small but
    consistent gap that two separate intervals would hide; ``paired=False`` is for results on
    different clips (two different test sets), each resampled on its own. The verdict is ``ahead`` when
    the whole interval of the difference is above zero, ``behind`` when below, and ``not
    distinguishable`` otherwise.
    """
    from scipy.stats import bootstrap

    a, b = _per_clip(a_correct), _per_clip(b_correct)
    if paired and len(a) != len(b):
        raise ValueError(f"paired results need the same clips: {names[0]} has {len(a)}, {names[1]} {len(b)}; "
                         "pass paired=False for two different test sets")
    diff = float(a.mean() - b.mean())
    if paired and np.all(a - b == (a - b)[0]):
        low = high = diff
    else:
        data, stat = ((a, b), lambda x, y: np.mean(x) - np.mean(y))
        ci = bootstrap(data, stat, paired=paired, vectorized=False, confidence_level=level,
                       n_resamples=n_resamples, method="percentile",
                       random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    word = "ahead" if low > 0 else "behind" if high < 0 else "not distinguishable"
    return Verdict(word, names[0], names[1], Estimate(diff, low, high, min(len(a), len(b)), level), paired,
                   (len(a), len(b)))


def predictions_table(meta: list[dict], y_true: np.ndarray, probs: np.ndarray):
    """One row per clip: path, true genre, predicted genre, confidence, correct (a DataFrame)."""
    import pandas as pd

    pred = probs.argmax(1)
    return pd.DataFrame({
        "path": [m.get("path", "") for m in meta], "group": [m.get("group", "") for m in meta],
        "hard_case": [m.get("hard_case", "") for m in meta],
        "genre": [GENRES[i] for i in y_true], "predicted": [GENRES[i] for i in pred],
        "confidence": probs.max(1).round(3), "correct": pred == np.asarray(y_true),
    })


def reliability(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> dict:
    """Reliability diagram of the top label: per confidence bin, mean confidence and accuracy, and the ECE.

    The curve is scikit-learn's ``calibration_curve`` on (was the top label right, its probability);
    the expected calibration error weights each bin's gap by its share of the clips.
    """
    from sklearn.calibration import calibration_curve

    conf, correct = probs.max(1), (probs.argmax(1) == np.asarray(y_true)).astype(int)
    which = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], conf)  # calibration_curve's binning
    counts = np.bincount(which, minlength=n_bins)
    used = np.flatnonzero(counts)
    if correct.min() == correct.max():  # calibration_curve needs both outcomes
        accuracy = [float(correct[which == b].mean()) for b in used]
        confidence = [float(conf[which == b].mean()) for b in used]
    else:
        acc_arr, conf_arr = calibration_curve(correct, conf, n_bins=n_bins, strategy="uniform")
        accuracy, confidence = acc_arr.tolist(), conf_arr.tolist()
    counts = counts[used].tolist()
    ece = sum(n * abs(a - c) for n, a, c in zip(counts, accuracy, confidence)) / max(1, len(conf))
    return {"confidence": confidence, "accuracy": accuracy, "count": counts, "ece": float(ece)}
