"""Each stage's output, built on demand: a notebook opened alone can start from any stage.

``ensure_dataset`` -> ``ensure_features`` -> ``ensure_head`` -> ``ensure_models`` each return what
an earlier run wrote, or build it through the stage's helpers when it is missing. Each takes the
run context (:func:`helpers.context.start_run`), which says which profile, which data and which
folders. Every cache is keyed by the settings that change what it holds: the synthetic set by the
profile's generation settings, features by the backbone and sampling settings, models by their
features and training settings.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from helpers.config import GENRES, HEAD_FIELDS, SYNTH_FIELDS, TRAIN_FIELDS, Profile, get_profile, settings_key
from helpers.context import RunContext
from helpers.features import ClipSet
from helpers.fileio import write_json
from helpers.manifest import MANIFEST_NAME, ManifestError, clip_path, read_manifest

log = logging.getLogger(__name__)


def dataset_dir(profile: str | Profile, data_dir: Path) -> Path:
    """Where the synthetic set of a profile lives: named by the profile and its generation settings."""
    from helpers.synth import ENCODER

    prof = get_profile(profile)
    key = settings_key({**prof.settings(SYNTH_FIELDS), "encoder": ENCODER}, 8)
    return Path(data_dir) / "generated" / f"synth-{prof.name}-{key}"


def ensure_dataset(ctx: RunContext, *, progress: bool = True) -> Path:
    """The manifest the run works on: the curated one of the context (real clips, see ``vgenre
    curate``), else the profile's synthetic set, probed and split, generated when missing."""
    from helpers.curate import probe_and_split
    from helpers.synth import generate_dataset

    if ctx.manifest:
        rows = read_manifest(ctx.manifest)
        check_genres(rows, ctx.manifest)
        if not any(r.get("split") in ("train", "val", "test") for r in rows):
            raise ManifestError(f"{ctx.manifest}: no train/val/test split; create it with `vgenre curate FOLDER`")
        return ctx.manifest
    prof = ctx.profile
    out = dataset_dir(prof, ctx.data_dir)
    manifest = out / MANIFEST_NAME
    if manifest.exists():
        rows = read_manifest(manifest)
        if rows and "status" in rows[0] and all(clip_path(r).exists() for r in rows):
            return manifest
    generate_dataset(prof, out, progress=progress)
    return probe_and_split(manifest, random_state=prof.data_seed, holdout=prof.holdout)


def check_genres(rows: list[dict], manifest: Path) -> None:
    """Refuse a manifest whose usable rows name a genre outside ``GENRES`` (training would drop them).

    Raises
    ------
    ManifestError
        Naming the manifest, the offending rows (CSV line numbers, the header being line 1) with
        their genres, and the allowed genres.
    """
    bad = [(i + 2, r.get("genre", "")) for i, r in enumerate(rows)
           if r.get("genre", "") not in GENRES and r.get("status", "ok") in ("", "ok")]
    if bad:
        shown = ", ".join(f"line {line} ({genre or 'empty'})" for line, genre in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ManifestError(f"{manifest}: genre not among {', '.join(GENRES)} in {shown}{more}; fix the genre "
                            "column or remove those rows")


def feature_settings_of(ctx: RunContext) -> dict:
    """The settings key of the run's feature files (backbone, weights, sampling, audio)."""
    from helpers.backbone import load_backbone
    from helpers.features import feature_settings

    return feature_settings(ctx.profile, load_backbone(ctx.profile, verbose=False).key)


_CLIPS: dict[tuple, ClipSet] = {}


def ensure_features(ctx: RunContext, *, progress: bool = True) -> ClipSet:
    """Every clip's features (extracted when missing) as a ClipSet with manifest metadata.

    Kept in memory per process, keyed by the manifest and the feature settings, so a second call
    with the same settings is free and one with other settings (another fps, other weights) is not
    served the first one's features.
    """
    from helpers.backbone import load_backbone
    from helpers.features import cache_dir, extract_features, feature_settings, load_clips

    manifest = ensure_dataset(ctx, progress=progress)
    backbone = load_backbone(ctx.profile)
    settings = feature_settings(ctx.profile, backbone.key)
    key = (str(manifest), manifest.stat().st_mtime_ns, str(ctx.data_dir), settings_key(settings))
    if key not in _CLIPS:
        rows = read_manifest(manifest)
        records = extract_features(rows, backbone, ctx.profile, root=cache_dir(ctx.data_dir), progress=progress)
        for r in records:
            if r.get("status", "").startswith("bad"):
                log.warning("feature extraction: %s", r["status"])
        _CLIPS[key] = load_clips(rows, records)
    return _CLIPS[key]


def _config_matches(config_file: Path, wanted: dict) -> bool:
    """The folder's config.json exists and agrees with *wanted* on every key of it."""
    if not config_file.exists():
        return False
    config = json.loads(config_file.read_text())
    return all(config.get(k) == v for k, v in wanted.items())


def head_dir(ctx: RunContext) -> Path:
    """Where the run's retrained softmax head is kept."""
    return ctx.models_dir / "softmax_head"


def ensure_head(ctx: RunContext, clips: ClipSet, *, retrain: bool = False):
    """The retrained softmax head of the run (``models/softmax_head``), trained when missing or when
    it was trained on other features or with other head settings."""
    import keras

    from helpers.backbone import train_softmax_head

    prof = ctx.profile
    out = head_dir(ctx)
    wanted = {"features": feature_settings_of(ctx), "head": prof.settings(HEAD_FIELDS)}
    if not retrain and (out / "head.keras").exists() and _config_matches(out / "config.json", wanted):
        return keras.models.load_model(out / "head.keras", compile=False)
    train, val = clips.split("train"), clips.split("val")
    xs = [np.concatenate(c.pool) for c in (train, val)]
    ys = [np.repeat(c.y, [len(p) for p in c.pool]) for c in (train, val)]
    head, _ = train_softmax_head(xs[0], ys[0], xs[1], ys[1], out, steps=prof.head_steps,
                                 checkpoint_every=prof.head_checkpoint_every, batch_size=prof.head_batch)
    write_json(out / "config.json", wanted)
    return head


def method_dir(ctx: RunContext, method: str, seed: int) -> Path:
    """Where the model of *method* trained with *seed* is kept in a run."""
    return ctx.models_dir / f"{method}_seed{seed}"


def ensure_models(ctx: RunContext, clips: ClipSet, methods, seeds, *, head=None, builders: dict | None = None,
                  progress: bool = True) -> dict[tuple[str, int], Path]:
    """Train every (method, seed) whose model folder is missing or out of date; return all their folders.

    A folder is up to date when it was trained on features with the run's settings, with the run's
    training settings and with builders of the same source (:func:`helpers.models.builder_key`).
    *builders* (name -> function, see :data:`helpers.models.BUILDERS`) replace the course's: notebook
    05 passes its own definitions, so a builder a student changed there is what trains. How each
    method is made comes from the registry: trained itself, sharing another method's model, or
    combining other methods' models.
    """
    from helpers.features import sequence_inputs
    from helpers.models import builder_key, builders as make_builders, get_method
    from helpers.ood import OOD_FILE
    from helpers.progress import progress_bar
    from helpers.train import reuse_model, train_late_fusion, train_model

    ns = make_builders(builders)
    settings = {"features": feature_settings_of(ctx), "training": ctx.profile.settings(TRAIN_FIELDS)}
    inputs: dict[tuple[str, str], tuple] = {}

    def data(split: str, feature: str):
        if (split, feature) not in inputs:
            part = clips.split(split)
            inputs[split, feature] = (sequence_inputs(part, ctx.profile.seq_len,
                                                      head=head if feature == "softmax" else None), part.y)
        return inputs[split, feature]

    out: dict[tuple[str, int], Path] = {}
    jobs = [(m, s) for s in seeds for m in methods]
    bar, trained = progress_bar(jobs, desc="models", unit="model", disable=not progress), 0
    for done, (method, seed) in enumerate(bar, start=1):
        spec, target = get_method(method), method_dir(ctx, method, seed)
        wanted = settings | {"builder": builder_key(method, ns)}
        if not ((target / "model.keras").exists() and _config_matches(target / "config.json", wanted)):
            trained += 1
            bar.set_description_str(f"models ({trained} trained)")
            (target / OOD_FILE).unlink(missing_ok=True)  # described the model trained before
            if spec.same_model_as:
                source = ensure_models(ctx, clips, [spec.same_model_as], [seed], builders=builders, progress=False)
                reuse_model(source[spec.same_model_as, seed], method, target)
            elif spec.parts:
                parts = ensure_models(ctx, clips, spec.parts, [seed], head=head, builders=builders, progress=False)
                train_late_fusion(*(parts[p, seed] for p in spec.parts), target, builders=ns, extra_config=wanted)
            else:
                head_file = None
                if spec.feature == "softmax":
                    if head is None:
                        raise ValueError(f"{method} reads softmax features: pass head=ensure_head(ctx, clips)")
                    head_file = head_dir(ctx) / "head.keras"
                train_model(method, data("train", spec.feature), data("val", spec.feature), target,
                            profile=ctx.profile, seed=seed, head_file=head_file, extra_config=wanted, builders=ns)
        ensure_ood(ctx, clips, target)
        out[method, seed] = target
        if done == len(jobs):  # the bar's last line says what happened
            bar.set_description_str(_trained_and_loaded(trained, len(jobs) - trained), refresh=False)
    return out


def keep_trained(ctx: RunContext, clips: ClipSet, method: str, seed: int, model, history, *, seconds: float,
                 builders: dict | None = None) -> Path:
    """Keep a model a notebook cell built and trained (in *seconds*) as the run's *method* with *seed*
    (its folder :func:`method_dir`, where its fit wrote its records): later :func:`ensure_models` calls
    with the same *builders* use it instead of training it again."""
    from helpers.models import builder_key, builders as make_builders
    from helpers.ood import OOD_FILE
    from helpers.train import save_trained

    target = method_dir(ctx, method, seed)
    (target / OOD_FILE).unlink(missing_ok=True)
    wanted = {"features": feature_settings_of(ctx), "training": ctx.profile.settings(TRAIN_FIELDS),
              "builder": builder_key(method, make_builders(builders))}
    save_trained(model, history, method, target, profile=ctx.profile, seed=seed, seq_len=ctx.profile.seq_len,
                 seconds=seconds, extra_config=wanted)
    ensure_ood(ctx, clips, target)
    return target


def _trained_and_loaded(trained: int, loaded: int) -> str:
    """``3 models trained, 6 already in the run``; ``9 models already in the run``; ``1 model trained``
    (already in the run: trained by an earlier notebook or cell, with the same features, settings and
    builders)."""
    first, n = ("trained", trained) if trained else ("already in the run", loaded)
    text = f"{n} model{'s' * (n != 1)} {first}"
    return f"{text}, {loaded} already in the run" if trained and loaded else text


def training_data_of(ctx: RunContext, n_train: int) -> str:
    """What a run's models are trained on, in words: the synthetic set of the profile or the curated manifest."""
    if ctx.manifest:
        return f"the curated manifest {ctx.manifest} ({n_train} training clips)"
    return (f"the synthetic clips of profile {ctx.profile.name} ({dataset_dir(ctx.profile, ctx.data_dir).name}, "
            f"{n_train} training clips; not real film)")


def ensure_ood(ctx: RunContext, clips: ClipSet, model_dir: Path) -> Path:
    """The model folder's ``ood.npz`` (:mod:`helpers.ood`): its training clips described for the
    out-of-distribution score, made from the run's training split when missing or of an earlier
    layout (a folder saved before the score existed gets one too)."""
    from helpers.ood import OOD_FILE, load_reference, reference_from_clips

    file = model_dir / OOD_FILE
    if load_reference(model_dir) is None:
        config = json.loads((model_dir / "config.json").read_text())
        train = clips.split("train")
        reference_from_clips(train, config["method"], int(config["seq_len"]),
                             data=training_data_of(ctx, len(train))).save(model_dir)
    return file


def ensure_predictor(ctx: RunContext, *, method: str = "late_fusion", progress: bool = True) -> Path:
    """The model ``vgenre predict`` uses by default: *method* with the first seed of the profile."""
    clips = ensure_features(ctx, progress=progress)
    seed = ctx.profile.seeds[0]
    return ensure_models(ctx, clips, [method], [seed], progress=progress)[method, seed]
