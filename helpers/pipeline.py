"""Each stage's output, built on demand: a notebook opened alone can start from any stage.

``ensure_dataset`` -> ``ensure_features`` -> ``ensure_head`` -> ``ensure_models`` each return what
an earlier run wrote, or build it through the stage's helpers when it is missing.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.config import GENRES, Profile, data_dir, get_profile
from helpers.curate import CurationError, clip_path, probe_and_split, read_manifest
from helpers.synth import MANIFEST_NAME, generate_dataset

if TYPE_CHECKING:
    from helpers.train import ClipSet

log = logging.getLogger(__name__)


def dataset_dir(profile: str | Profile) -> Path:
    """Where the synthetic set of a profile lives."""
    return data_dir() / "generated" / f"synth-{get_profile(profile).name}"


def ensure_dataset(profile: str | Profile = "default", *, progress: bool = True) -> Path:
    """The manifest the series works on: a curated one named by ``VGENRE_MANIFEST`` (real clips,
    see ``vgenre curate``), else the profile's synthetic set, probed and split, generated when missing.
    """
    named = os.environ.get("VGENRE_MANIFEST")
    if named:
        path = Path(named).expanduser()
        rows = read_manifest(path)  # raises CurationError when missing
        if not any(r.get("split") in ("train", "val", "test") for r in rows):
            raise CurationError(f"{path}: no train/val/test split; create it with `vgenre curate FOLDER`")
        return path
    prof = get_profile(profile)
    out = dataset_dir(prof)
    manifest = out / MANIFEST_NAME
    if manifest.exists():
        rows = read_manifest(manifest)
        if rows and "status" in rows[0] and all(clip_path(r).exists() for r in rows):
            return manifest
    generate_dataset(prof, out, progress=progress)
    return probe_and_split(manifest, random_state=prof.data_seed)


def load_clips(rows: list[dict], records: list[dict]) -> "ClipSet":
    """Join manifest rows with their feature files into a :class:`helpers.train.ClipSet`."""
    from helpers.features import load_feature_file
    from helpers.train import ClipSet

    by_path = {r["path"]: r for r in records if r.get("status") in ("cached", "written")}
    pool, audio, thumbs, has_audio, y, meta = [], [], [], [], [], []
    for row in rows:
        rec = by_path.get(str(clip_path(row)))
        if rec is None or row.get("genre") not in GENRES:
            continue
        f = load_feature_file(rec["file"])
        pool.append(f["pool"]); audio.append(f["audio"]); thumbs.append(f["thumbs"])
        has_audio.append(bool(f["has_audio"])); y.append(GENRES.index(row["genre"]))
        meta.append({k: v for k, v in row.items() if not k.startswith("_")} | {"file": rec["file"],
                    "abspath": rec["path"], "timestamps": f["timestamps"]})
    return ClipSet(pool, audio, thumbs, np.array(has_audio, bool), np.array(y, int), meta)


_CLIPS: dict[tuple, object] = {}


def ensure_features(profile: str | Profile = "default", *, progress: bool = True):
    """Every clip's features (extracted when missing) as a ClipSet with manifest metadata."""
    from helpers.backbone import load_backbone
    from helpers.features import extract_features

    prof = get_profile(profile)
    manifest = ensure_dataset(prof, progress=progress)
    backbone = load_backbone(prof)
    key = (str(manifest), manifest.stat().st_mtime, backbone.status.weights_id)
    if key not in _CLIPS:
        rows = read_manifest(manifest)
        records = extract_features(rows, backbone, prof, progress=progress)
        bad = [r for r in records if r.get("status", "").startswith("bad")]
        for r in bad:
            log.warning("feature extraction: %s", r["status"])
        _CLIPS[key] = load_clips(rows, records)
    return _CLIPS[key]


def ensure_head(profile: str | Profile, clips, run_dir: Path, *, retrain: bool = False):
    """The retrained softmax head of the run (``models/softmax_head``), trained when missing."""
    import keras

    from helpers.backbone import load_backbone, train_softmax_head

    from helpers.features import feature_settings

    prof = get_profile(profile)
    out = Path(run_dir) / "models" / "softmax_head"
    settings = feature_settings(prof, load_backbone(prof, verbose=False).key)
    config = out / "config.json"
    if not retrain and (out / "head.keras").exists() and config.exists() \
            and json.loads(config.read_text()).get("features") == settings:
        return keras.models.load_model(out / "head.keras")
    train, val = clips.split("train"), clips.split("val")
    xs = [np.concatenate(c.pool) for c in (train, val)]
    ys = [np.repeat(c.y, [len(p) for p in c.pool]) for c in (train, val)]
    head, _ = train_softmax_head(xs[0], ys[0], xs[1], ys[1], out, steps=prof.head_steps,
                                 checkpoint_every=prof.head_checkpoint_every, batch_size=prof.head_batch)
    config.write_text(json.dumps({"features": settings, "steps": prof.head_steps}))
    return head


def _up_to_date(model_dir: Path, settings: dict) -> bool:
    """A trained model exists there and was trained on features made with *settings*."""
    config = model_dir / "config.json"
    return (model_dir / "model.keras").exists() and config.exists() \
        and json.loads(config.read_text()).get("features") == settings


def method_dir(run_dir: Path, method: str, seed: int) -> Path:
    """Where the model of *method* trained with *seed* is kept in a run."""
    return Path(run_dir) / "models" / f"{method}_seed{seed}"


def ensure_models(profile: str | Profile, clips, run_dir: Path, methods, seeds, *, head=None,
                  progress: bool = True) -> dict[tuple[str, int], Path]:
    """Train every (method, seed) whose model directory is missing; return all their directories."""
    from tqdm.auto import tqdm

    from helpers.backbone import load_backbone
    from helpers.features import feature_settings
    from helpers.train import sequence_inputs, train_late_fusion, train_model

    prof = get_profile(profile)
    settings = feature_settings(prof, load_backbone(prof, verbose=False).key)
    head_file = str(Path(run_dir).resolve() / "models" / "softmax_head" / "head.keras")
    splits = {}

    def data(split: str, feature: str):
        if (split, feature) not in splits:
            part = clips.split(split)
            splits[split, feature] = (sequence_inputs(part, prof.seq_len, feature=feature, head=head), part.y)
        return splits[split, feature]

    out = {}
    jobs = [(m, s) for s in seeds for m in methods]
    for method, seed in tqdm(jobs, desc="training", unit="model", disable=not progress):
        target = method_dir(run_dir, method, seed)
        if not _up_to_date(target, settings):
            if method == "frame_average":  # the same per-frame model as single_frame, averaged over time
                source = ensure_models(prof, clips, run_dir, ["single_frame"], [seed], progress=False)["single_frame", seed]
                shutil.copytree(source, target, dirs_exist_ok=True)
                config = json.loads((target / "config.json").read_text()) | {"method": "frame_average"}
                (target / "config.json").write_text(json.dumps(config, indent=2))
            elif method == "late_fusion":
                parts = [ensure_models(prof, clips, run_dir, [m], [seed], head=head, progress=False)[m, seed]
                         for m in ("lstm_pool", "audio_only")]
                train_late_fusion(parts[0], parts[1], target)
            else:
                feature = "softmax" if method == "lstm_softmax" else "pool"
                extra = {"features": settings} | ({"head": head_file} if feature == "softmax" else {})
                train_model(method, data("train", feature), data("val", feature), target, profile=prof,
                            seed=seed, feature=feature, extra_config=extra)
        out[method, seed] = target
    return out


def ensure_predictor(profile: str | Profile = "default", run_dir: Path | None = None, *,
                     method: str = "late_fusion", progress: bool = True) -> Path:
    """The model ``vgenre predict`` uses by default: *method* with the first seed of the profile."""
    from helpers.runner import current_run_dir

    prof = get_profile(profile)
    run_dir = Path(run_dir) if run_dir else current_run_dir(prof.name)
    clips = ensure_features(prof, progress=progress)
    dirs = ensure_models(prof, clips, run_dir, [method], prof.seeds[:1], progress=progress)
    return dirs[method, prof.seeds[0]]
