"""Evaluation and prediction: metrics, confusion matrices, reliability, timelines, new videos.

Metrics come from scikit-learn; :class:`Predictor` turns any video file into a genre, six
probabilities and a timeline of sliding 40-frame windows (what ``vgenre predict`` prints).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.config import GENRES, get_profile, runs_dir
from helpers.models import get_method


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


def timeline(probs: np.ndarray, starts: np.ndarray, seq_len: int, fps: float, duration: float) -> list[dict]:
    """Windows of a clip as ``{start, end, genre, confidence}`` dicts (times in seconds)."""
    out = []
    for p, s in zip(probs, starts):
        start = s / fps
        out.append({"start": round(float(start), 3), "end": round(float(min(duration, start + seq_len / fps)), 3),
                    "genre": GENRES[int(p.argmax())], "confidence": round(float(p.max()), 4)})
    return out


def default_model_dir(profile: str = "default") -> Path:
    """The model ``vgenre predict`` uses without ``--model``: the late-fusion model of the profile's
    first seed, ``runs/<profile>/models/late_fusion_seed<seed>``.

    Raises
    ------
    ModelFolderError
        When that folder holds no model; the message says how to make it.
    """
    from helpers.train import ModelFolderError

    prof = get_profile(profile)
    folder = runs_dir() / prof.name / "models" / f"late_fusion_seed{prof.seeds[0]}"
    if not (folder / "model.keras").is_file():
        raise ModelFolderError(f"{folder}: no trained model of profile {prof.name!r}; make it with "
                               f"`vgenre run --profile {prof.name}` or `vgenre train --profile {prof.name}`, "
                               "or pass --model DIR")
    return folder


@dataclass
class Prediction:
    """What ``vgenre predict`` reports for one file.

    ``trained_on`` and ``backbone_weights`` say what the model learnt from (``trained_on`` is empty
    for a folder without ``ood.npz``, which records it); ``ood_score`` is the
    out-of-distribution score (:mod:`helpers.ood`: above 1, the clip is farther from the training
    clips than 99% of them are from each other, and ``familiar`` is False), per kind of input in
    ``ood_parts``; both are None when the model folder has no ``ood.npz``. ``ood_note`` says it
    in words. ``decoded_share`` is how much of the file's video decoded (its audio, for a file
    without video); ``warning`` says when it was not all of it.
    """

    path: str
    genre: str
    probabilities: dict[str, float]
    has_audio: bool
    timeline: list[dict]
    duration: float
    note: str = ""
    trained_on: str = ""
    backbone_weights: str = ""
    ood_score: float | None = None
    ood_parts: dict[str, float] = field(default_factory=dict)
    familiar: bool | None = None
    ood_note: str = ""
    decoded_share: float = 1.0
    warning: str = ""

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return dict(self.__dict__)


class Predictor:
    """Classify video files with a trained model directory.

    Decodes and samples each file once (streaming: memory does not grow with its length beyond
    the per-frame features), extracts pool and audio features with the backbone the
    model was trained on, classifies sliding windows of ``seq_len`` frames (half-overlapping) and
    averages them into the clip's probabilities, each window weighted by its real (unpadded) frames.
    Clips shorter than one window are padded.
    A clip without audio, or whose audio cannot be decoded, goes to the video branch alone (fusion
    models), and the note says so; a file with sound and no pictures goes to the audio branch
    alone, with a note. A damaged file is labelled on whatever part of it decodes, the share in a
    warning (training data keep the 90% rule of :mod:`helpers.media`); an address (``http://``)
    is refused in one line: download it first. ``duration`` is the seconds the file declares. Each prediction
    carries the out-of-distribution score of the clip (:mod:`helpers.ood`) when the model folder
    has an ``ood.npz``, and says what the model was trained on.
    """

    WINDOWS_PER_BATCH = 64

    def __init__(self, model_dir: str | Path, *, weights: str | Path | None = None):
        from helpers.backbone import Backbone
        from helpers.ood import load_reference
        from helpers.train import load_model_dir
        from helpers.weights import WeightsError, describe_weights, random_status, resolve_weights

        self.model_dir = Path(model_dir)
        self.trained = load_model_dir(self.model_dir)
        cfg = self.trained.config
        self.profile = get_profile(cfg.get("profile", "default"))
        feats = cfg.get("features", {})
        self.seq_len = int(cfg["seq_len"])
        self.fps = float(cfg.get("fps", self.profile.sample_fps))
        weights_id = feats.get("weights", random_status().weights_id)
        size = int(feats.get("input_size", self.profile.input_size))
        if weights_id == random_status().weights_id and not (weights or os.environ.get("VGENRE_WEIGHTS")):
            status = random_status(self.profile.name)
        else:  # a file named by *weights* or VGENRE_WEIGHTS, as in every command, must be the trained-on one
            status = resolve_weights(self.profile, weights)
            if status.weights_id != weights_id:
                raise WeightsError(f"{self.model_dir}: trained on backbone weights {weights_id}, but the weights "
                                   f"found now are {status.weights_id} ({status.path or 'random'}); set "
                                   "--weights or VGENRE_WEIGHTS to the file used in training, or unset it")
        self.backbone = Backbone(size, status, feats.get("precision", "float32"))
        self.video_only = self.trained.branch("video") if "video" in cfg.get("parts", {}) else None
        self.ood = load_reference(self.model_dir)
        self.backbone_weights = describe_weights(weights_id)
        self.trained_on = self.ood.about.get("data", "") if self.ood is not None else ""

    def predict_file(self, path: str | Path) -> Prediction:
        """Classify one file; raises :class:`helpers.media.MediaError` for a bad one."""
        from helpers.features import clip_features
        from helpers.media import MIN_DECODED_SHARE, accept_partial, open_media

        with open_media(path, need="any") as container:  # a URL, a folder, a missing file: one line here
            audio_only = not container.streams.video
        if audio_only:
            return self._predict_audio_only(path)
        takes = set(get_method(self.trained.method).inputs)
        if self.video_only is not None:
            takes |= set(get_method(self.video_only.method).inputs)
        pictures = self.ood is not None and "picture" in self.ood.spaces  # the score's picture statistics
        with accept_partial():
            f = clip_features(path, self.backbone, self.profile, thumbs="thumbs" in takes or pictures)
        warning = ""
        if f["share"] < MIN_DECODED_SHARE:
            declared = f["duration"] or f["decoded_seconds"]
            warning = (f"only {f['share']:.0%} of the video decodes ({f['decoded_seconds']:.1f} s of {declared:.1f} s): "
                       "the label is that of the part that decodes")
        return self._classify(path, f, warning=warning)

    def _predict_audio_only(self, path: str | Path) -> Prediction:
        """A file with sound and no pictures: the audio branch (or an audio model) answers."""
        from helpers.audio import decode_audio, frame_audio_features
        from helpers.backbone import POOL_DIM
        from helpers.media import MIN_DECODED_SHARE, MediaError, accept_partial

        if "audio" in (self.trained.config.get("parts") or {}):
            model = self.trained.branch("audio")
        elif set(get_method(self.trained.method).inputs) <= {"audio", "mask"}:
            model = self.trained
        else:
            raise MediaError(path, f"audio-only file (no video stream), and the model {self.trained.method} "
                                   "needs pictures; use a model with an audio branch (late_fusion)")
        with accept_partial():
            sound = decode_audio(path, sr=self.profile.sr)
        seconds = sound.duration or sound.decoded_seconds
        times = np.arange(0.0, max(sound.decoded_seconds, 1.0 / self.fps), 1.0 / self.fps)
        audio, has_audio = frame_audio_features(sound.samples, self.profile.sr, times, self.fps,
                                                n_fft=self.profile.n_fft, hop_length=self.profile.hop_length,
                                                n_mels=self.profile.n_mels)
        f = {"pool": np.zeros((len(times), POOL_DIM), np.float32), "audio": audio, "timestamps": times,
             "has_audio": has_audio, "thumbs": None, "audio_error": "", "duration": seconds, "share": sound.share}
        warning = (f"only {sound.share:.0%} of the audio decodes: the label is that of the part that decodes"
                   if sound.share < MIN_DECODED_SHARE else "")
        return self._classify(path, f, model=model, warning=warning,
                              note="audio-only file (no video stream): classified by the audio branch alone")

    def _classify(self, path: str | Path, f: dict, *, model=None, note: str = "", warning: str = "") -> Prediction:
        """The prediction for one file's features *f* (:func:`helpers.features.clip_features`), by
        *model* (default: the whole model, or its video branch when the file has no usable audio)."""
        from helpers.features import clip_inputs, softmax_features
        from helpers.frames import sliding_starts
        from helpers.ood import picture_statistics, window_means

        stride = max(1, self.seq_len // 2)
        audio_branch = model is not None
        video = (softmax_features(self.trained.head, f["pool"]) if self.trained.head is not None and not audio_branch
                 else f["pool"])
        starts = sliding_starts(len(video), self.seq_len, stride)
        if model is None:
            model = self.trained
        if not audio_branch and not f["has_audio"]:
            why = f"audio cannot be decoded ({f['audio_error']})" if f["audio_error"] else "no audio track"
            if self.video_only is not None:
                model, note = self.video_only, f"{why}: classified by the video branch alone"
            elif "audio" in get_method(self.trained.method).inputs:
                note = f"{why}: the model saw silence in place of audio"
        # the spaces of the score: those of the model that answers (the video branch alone: its space)
        spaces = [] if self.ood is None else [s for s in self.ood.spaces
                                              if (model is not self.video_only or s != "audio")
                                              and (not audio_branch or s == "audio")]
        per_frame = {"video": f["pool"], "audio": f["audio"]}
        if "picture" in spaces:
            per_frame["picture"] = picture_statistics(f["thumbs"])
        probs, steps, vectors = [], [], {s: [] for s in spaces}
        for k in range(0, len(starts), self.WINDOWS_PER_BATCH):  # a few windows at a time: bounded memory
            batch = starts[k:k + self.WINDOWS_PER_BATCH]
            inputs = clip_inputs(video, f["audio"], f["thumbs"], self.seq_len, policy="sliding", starts=batch)
            probs.append(model.predict(inputs))
            steps.append(inputs["mask"].sum(1))
            for s in spaces:
                vectors[s].append(window_means(per_frame[s], self.seq_len, starts=batch))
        probs, steps = np.concatenate(probs), np.concatenate(steps)
        clip = (probs * (steps / steps.sum())[:, None]).sum(0)
        clip = clip / clip.sum()
        times = f["timestamps"]
        duration = f["duration"] or (float(times[-1] + 1.0 / self.fps) if len(times) else 0.0)
        return Prediction(str(path), GENRES[int(clip.argmax())],
                          {g: round(float(p), 6) for g, p in zip(GENRES, clip)}, bool(f["has_audio"]),
                          timeline(probs, np.asarray(starts), self.seq_len, self.fps, duration), round(duration, 3), note,
                          self.trained_on, self.backbone_weights,
                          **self._familiarity({s: np.concatenate(v) for s, v in vectors.items()}, steps),
                          decoded_share=round(float(f.get("share", 1.0)), 4), warning=warning)

    def _familiarity(self, vectors: dict[str, np.ndarray], steps: np.ndarray) -> dict:
        """The out-of-distribution fields of a prediction (:mod:`helpers.ood`)."""
        from helpers.ood import OOD_FILE, familiarity

        if self.ood is None:
            return {"ood_note": f"out-of-distribution score: cannot be computed, the model folder has no {OOD_FILE} "
                                "(saved before the score existed; `vgenre train` with the model's profile adds it)"}
        fam = familiarity(self.ood, vectors, steps)
        return {"ood_score": round(fam.score, 4), "ood_parts": fam.parts, "familiar": fam.familiar,
                "ood_note": fam.sentence()}


def format_prediction(p: Prediction) -> str:
    """Human-readable lines for one prediction: genre, probabilities, timeline, the
    out-of-distribution score and what the model was trained on."""
    lines = [f"{p.path}: {p.genre} ({p.probabilities[p.genre]:.0%})" + (f"  [{p.note}]" if p.note else "")
             + (f"  [warning: {p.warning}]" if p.warning else "")]
    lines.append("  " + "  ".join(f"{g} {v:.2f}" for g, v in p.probabilities.items()))
    lines.append("  timeline: " + ", ".join(f"{w['start']:.1f}-{w['end']:.1f}s {w['genre']}" for w in p.timeline)
                 + (" (half-overlapping windows; the answer is their average, weighted by real frames)"
                    if len(p.timeline) > 1 else ""))
    lines.append(f"  {p.ood_note}")
    lines.append(f"  model trained on {p.trained_on or 'data not recorded in the model folder'}; "
                 f"backbone: {p.backbone_weights}")
    return "\n".join(lines)


def prediction_json(p: Prediction) -> str:
    """One JSON line for one prediction."""
    return json.dumps(p.as_dict())
