"""Classify new videos: :class:`Predictor` turns any video file into a genre, six probabilities, a
timeline of sliding windows and an out-of-distribution score (what ``vgenre predict`` prints).

The statistics it shares with the notebooks are in :mod:`helpers.evaluate`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.config import GENRES, get_profile, runs_dir
from helpers.models import get_method


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
