"""InceptionV3 by transfer learning: the backbone, the retrained softmax head, fine-tuning.

The paper retrained InceptionV3's last layer on its frames for 4000 steps (a checkpoint every
400) and fed the LSTM either that layer's softmax output or the 2048-d pool layer. The method is
written in notebook 04 (``# @save`` cells, copied into
:mod:`helpers.course.inceptionv3_transfer_learning`): the frozen network and its bottleneck
(:func:`inception_v3_bottleneck`), its preprocessing (:func:`preprocess`, :func:`uint8_extractor`),
the head (:func:`build_softmax_head`) and its training by steps (:func:`fit_softmax_head`). This
module runs that code and adds what does not teach: where the weights come from
(:mod:`helpers.weights`), precision, the cache key, one backbone per process, the head's folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from helpers.config import HEAD_FIELDS, Profile, get_profile, settings_key
from helpers.errors import SettingError
from helpers.weights import RANDOM_SEED, WEIGHTS_FILE, WeightsError, WeightsStatus, resolve_weights

COURSE = ("POOL_DIM", "inception_v3_bottleneck", "preprocess", "uint8_extractor", "frame_examples",
          "bottleneck_stats", "build_softmax_head", "shuffled_batches", "fit_softmax_head")
"""The names this module hands on from notebook 04's saved cells (imported when first used, so that
importing this module does not start Keras)."""


def __getattr__(name: str):
    """``helpers.backbone.preprocess`` and the other names of :data:`COURSE`: the saved cells' objects."""
    if name in COURSE:
        from helpers.course import inceptionv3_transfer_learning as course

        return getattr(course, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_precision(precision: str) -> str:
    """``"auto"`` becomes ``"bfloat16"`` on an accelerator that computes in it natively, else ``"float32"``."""
    if precision == "auto":
        from helpers.backends import bfloat16_supported

        return "bfloat16" if bfloat16_supported() else "float32"
    if precision not in ("float32", "bfloat16"):
        raise SettingError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    return precision


def backbone_key(weights_id: str, input_size: int, precision: str = "float32") -> dict:
    """The settings of a backbone that change its features: the key of every cache that holds them."""
    return {"backbone": "InceptionV3", "weights": weights_id, "input_size": input_size, "precision": precision}


class Backbone:
    """InceptionV3 without its top, average-pooled to 2048 features per frame.

    Two views of one set of weights, both built by notebook 04's saved cells:

    * :attr:`model`: the frozen InceptionV3 up to its bottleneck (:func:`inception_v3_bottleneck`), on
      inputs scaled to [-1, 1] by :func:`preprocess` (what fine-tuning and the saliency maps use);
    * :attr:`extractor`: the same network behind a uint8 input whose first layer does the scaling,
      what :meth:`pool_features` runs: one compiled program per input size and batch size.

    Parameters
    ----------
    input_size : square input side in pixels (75 at least; 299 in the paper's setting)
    status : where the weights come from (:func:`resolve_weights`)
    precision : ``"float32"``, ``"bfloat16"`` (inference only) or ``"auto"`` (:func:`resolve_precision`)
    model : an InceptionV3 to wrap as it is (a fine-tuned copy); by default one is built
    """

    def __init__(self, input_size: int, status: WeightsStatus, precision: str = "float32", *, model=None):
        import keras

        from helpers.course.inceptionv3_transfer_learning import inception_v3_bottleneck, uint8_extractor

        if input_size < 75:
            raise SettingError(f"InceptionV3 needs inputs of at least 75x75 pixels, got {input_size}")
        precision = resolve_precision(precision)
        self.input_size, self.status, self.precision = input_size, status, precision
        if model is not None:
            self.model = model
            self.extractor = uint8_extractor(model, input_size)
            return
        previous = keras.config.dtype_policy()
        try:
            if precision == "bfloat16":
                keras.config.set_dtype_policy("mixed_bfloat16")
            keras.utils.set_random_seed(RANDOM_SEED)  # the random backbone is the same in every process
            self.model = inception_v3_bottleneck(input_size, str(status.path) if status.path else None)
        except (OSError, ValueError) as exc:
            if not status.path:
                raise
            raise WeightsError(f"{status.path}: not a readable InceptionV3 weights file "
                               f"({exc.__class__.__name__}); point --weights or VGENRE_WEIGHTS at "
                               f"{WEIGHTS_FILE}") from exc
        finally:
            keras.config.set_dtype_policy(previous)
        self.extractor = uint8_extractor(self.model, input_size)

    @property
    def key(self) -> dict:
        """Everything about the backbone that changes its features (for cache keys)."""
        return backbone_key(self.status.weights_id, self.input_size, self.precision)

    def pool_features(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """2048-d pool features ``[n, 2048]`` (float32) of uint8 RGB *frames* of any size.

        Frames travel to the device as uint8; a last partial batch is padded, so every call runs
        the one program compiled for ``batch_size``.
        """
        import cv2

        from helpers.course.inceptionv3_transfer_learning import POOL_DIM

        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"pool_features takes uint8 RGB frames (0-255), got {frames.dtype}")
        s = self.input_size
        if frames.shape[1:3] != (s, s):
            frames = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in frames])
        out = []
        for start in range(0, len(frames), batch_size):
            batch = frames[start:start + batch_size]
            n = len(batch)
            if n < batch_size:  # one input shape, one compiled program
                batch = np.concatenate([batch, np.zeros((batch_size - n,) + batch.shape[1:], np.uint8)])
            out.append(np.asarray(self.extractor.predict_on_batch(batch), np.float32)[:n])
        return np.concatenate(out) if out else np.zeros((0, POOL_DIM), np.float32)


_BACKBONES: dict[str, Backbone] = {}


def load_backbone(profile: str | Profile = "default", *, weights: str | Path | None = None,
                  input_size: int | None = None, precision: str = "auto", verbose: bool = True) -> Backbone:
    """The backbone of *profile*, built once per process for each settings key (:attr:`Backbone.key`).

    *precision* ``"auto"`` computes in bfloat16 on an accelerator that supports it natively and
    in float32 elsewhere (:func:`resolve_precision`); the precision is part of the feature cache key.
    """
    prof = get_profile(profile)
    status = resolve_weights(prof, weights)
    size = input_size or prof.input_size
    precision = resolve_precision(precision)
    key = settings_key(backbone_key(status.weights_id, size, precision))
    if key not in _BACKBONES:
        _BACKBONES[key] = Backbone(size, status, precision)
    if not status.pretrained and verbose:
        announce_weights(status)
    return _BACKBONES[key]


_ANNOUNCED: set[str] = set()


def announce_weights(status) -> None:
    """Say once per process, on standard error, that the backbone runs without pretrained weights.

    Once: a notebook loads the backbone in several places, and the message is the same each time.
    A log record, not a Python warning, so it names no temporary file of a notebook cell.
    """
    if status.message not in _ANNOUNCED:
        _ANNOUNCED.add(status.message)
        logging.getLogger(__name__).warning(status.message)


def start_head(ctx) -> Path:
    """The run's head folder (:func:`helpers.pipeline.head_dir`), ready for a new head: its checkpoints of
    an earlier training removed, and its config.json too, so that until :func:`keep_head` has written
    the new head no later notebook takes the folder for a finished one."""
    from helpers.pipeline import head_dir

    out = head_dir(ctx)
    (out / "config.json").unlink(missing_ok=True)
    _empty_checkpoints(out)
    return out


def keep_head(ctx, head, *, steps: int, checkpoint_every: int, batch_size: int) -> Path:
    """Keep a head a notebook cell trained with :func:`fit_softmax_head` (checkpoints in
    ``start_head(ctx) / "checkpoints"``) as the run's head: the checkpoints named by step, ``head.keras``
    and the ``config.json`` that :func:`helpers.pipeline.ensure_head` writes, with the settings it was
    trained with, so later notebooks load it instead of training another."""
    from helpers.fileio import write_json
    from helpers.pipeline import feature_settings_of, head_dir

    out = head_dir(ctx)
    _save_head(head, out, checkpoint_every)
    trained = dict(zip(HEAD_FIELDS, (steps, checkpoint_every, batch_size)))
    write_json(out / "config.json", {"features": feature_settings_of(ctx), "head": trained})
    return out


def _empty_checkpoints(out_dir: Path) -> Path:
    """``out_dir/checkpoints``, made, without the checkpoints of an earlier training."""
    folder = out_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.weights.h5"):
        old.unlink()
    return folder


def _save_head(head, out_dir: Path, checkpoint_every: int) -> None:
    """Name the checkpoints of :func:`fit_softmax_head` by step (``round_00002`` of 400 steps each ->
    ``ckpt_step00800``), as the paper's script did, and save the head as ``head.keras``."""
    from helpers.fileio import atomic_path

    for src in sorted((out_dir / "checkpoints").glob("round_*.weights.h5")):
        r = int(src.name.split("_")[1].split(".")[0])
        src.replace(out_dir / "checkpoints" / f"ckpt_step{r * checkpoint_every:05d}.weights.h5")
    with atomic_path(out_dir / "head.keras") as tmp:
        head.save(tmp)


def train_softmax_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       out_dir: str | Path, *, steps: int = 4000, checkpoint_every: int = 400,
                       batch_size: int = 100, learning_rate: float = 1e-3, seed: int = 0):
    """Retrain the head on cached per-frame bottlenecks for *steps* steps, as the paper did, with
    notebook 04's :func:`build_softmax_head` and :func:`fit_softmax_head`.

    Checkpoints every *checkpoint_every* steps (``checkpoints/ckpt_stepNNNNN.weights.h5``), a CSV log
    and, where TensorFlow is installed, TensorBoard logs go to *out_dir*, and the head to
    ``head.keras``. Returns the trained head and its history (a dict of lists).
    """
    from helpers.backends import seed_everything, training_scope
    from helpers.course.inceptionv3_transfer_learning import (bottleneck_stats, build_softmax_head,
                                                             fit_softmax_head)
    from helpers.train import training_callbacks

    out_dir = Path(out_dir)
    checkpoints = _empty_checkpoints(out_dir)
    mean, variance = bottleneck_stats(x_train)
    seed_everything(seed)
    with training_scope():
        head = build_softmax_head(x_train.shape[1], mean=mean, variance=variance)
        history = fit_softmax_head(head, (x_train, y_train), (x_val, y_val), checkpoints, steps=steps,
                                   checkpoint_every=checkpoint_every, batch_size=batch_size,
                                   learning_rate=learning_rate, seed=seed,
                                   callbacks=training_callbacks(out_dir, monitor=None))
    _save_head(head, out_dir, checkpoint_every)
    return head, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def fine_tune_top_blocks(backbone: Backbone, head, frames: np.ndarray, labels: np.ndarray, *,
                         blocks_from: str = "mixed9", epochs: int = 1, batch_size: int = 32,
                         learning_rate: float = 1e-5, seed: int = 0) -> tuple[Backbone, dict]:
    """Fine-tune a copy of *backbone* from layer *blocks_from* on, together with a copy of *head*.

    Everything before *blocks_from* stays frozen; BatchNorm layers stay in inference mode. The
    backbone passed in is not changed: the result is a new :class:`Backbone` whose weights id names
    its parent and the fine-tuning settings, so its features never share a cache entry with the
    parent's. Returns the new backbone and the training history (a dict of lists).
    """
    import keras

    from helpers.backends import seed_everything, training_scope
    from helpers.course.inceptionv3_transfer_learning import preprocess

    names = [layer.name for layer in backbone.model.layers]
    if blocks_from not in names:
        raise SettingError(f"no layer {blocks_from!r} in InceptionV3; try one of mixed0 ... mixed10")
    copy = keras.models.clone_model(backbone.model)
    copy.set_weights(backbone.model.get_weights())
    head = keras.models.clone_model(head)
    first = names.index(blocks_from)
    for i, layer in enumerate(copy.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
    seed_everything(seed)
    with training_scope():
        inputs = keras.Input((backbone.input_size, backbone.input_size, 3))
        model = keras.Model(inputs, head(copy(inputs, training=False)))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(preprocess(frames), labels, epochs=epochs, batch_size=batch_size, verbose=0)
    for layer in copy.layers:
        layer.trainable = False
    recipe = {"parent": backbone.status.weights_id, "blocks_from": blocks_from, "epochs": epochs,
              "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
              "data": settings_key({"frames": _digest(frames), "labels": _digest(labels)})}
    weights_id = f"{backbone.status.weights_id}+ft-{settings_key(recipe, 10)}"
    status = WeightsStatus("fine-tuned", None, weights_id,
                           f"{backbone.status.weights_id} fine-tuned from {blocks_from} ({json.dumps(recipe)})")
    tuned = Backbone(backbone.input_size, status, backbone.precision, model=copy)
    return tuned, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
