"""InceptionV3 by transfer learning: the backbone, preprocessing, the retrained softmax head, fine-tuning.

The paper retrained InceptionV3's last layer on its frames for 4000 steps (a checkpoint every
400) and fed the LSTM either that layer's softmax output or the 2048-d pool layer. Where the
weights come from is decided in :mod:`helpers.weights`.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from helpers.config import GENRES, Profile, get_profile, settings_key
from helpers.weights import RANDOM_SEED, WEIGHTS_FILE, WeightsError, WeightsStatus, resolve_weights

POOL_DIM = 2048


def preprocess(frames: np.ndarray) -> np.ndarray:
    """InceptionV3's own preprocessing (pixels to [-1, 1]) in numpy, for training on frames.

    Feature extraction does not call it: there the same scaling is the first layer of the network
    (:attr:`Backbone.extractor`), so uint8 frames go to the device, four times smaller than floats.
    """
    from keras.applications.inception_v3 import preprocess_input

    return preprocess_input(np.asarray(frames, np.float32))


def uint8_extractor(net, input_size: int):
    """*net* (InceptionV3 on [-1, 1] inputs) behind a first layer that scales uint8 pixels to [-1, 1].

    The scaling is ``x / 127.5 - 1``, what :func:`preprocess` does; it runs on the device, in the
    network's compute dtype (uint8 values are exact in bfloat16).
    """
    import keras

    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="frames_uint8")
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1",
                                    dtype=net.dtype_policy)(inputs)
    return keras.Model(inputs, net(scaled), name="inception_v3_uint8")


def resolve_precision(precision: str) -> str:
    """``"auto"`` becomes ``"bfloat16"`` on an accelerator that computes in it natively, else ``"float32"``."""
    if precision == "auto":
        from helpers.backends import bfloat16_supported

        return "bfloat16" if bfloat16_supported() else "float32"
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    return precision


def backbone_key(weights_id: str, input_size: int, precision: str = "float32") -> dict:
    """The settings of a backbone that change its features: the key of every cache that holds them."""
    return {"backbone": "InceptionV3", "weights": weights_id, "input_size": input_size, "precision": precision}


class Backbone:
    """InceptionV3 without its top, average-pooled to 2048 features per frame.

    Two views of one set of weights:

    * :attr:`model`: InceptionV3 as Keras defines it, on inputs scaled to [-1, 1] by
      :func:`preprocess` (what fine-tuning and the saliency maps use);
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

        if input_size < 75:
            raise ValueError(f"InceptionV3 needs inputs of at least 75x75 pixels, got {input_size}")
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
            keras.utils.set_random_seed(RANDOM_SEED)
            self.model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                                        input_shape=(input_size, input_size, 3))
        finally:
            keras.config.set_dtype_policy(previous)
        if status.path:
            try:
                self.model.load_weights(status.path)
            except (OSError, ValueError) as exc:
                raise WeightsError(f"{status.path}: not a readable InceptionV3 weights file "
                                   f"({exc.__class__.__name__}); point --weights or VGENRE_WEIGHTS at "
                                   f"{WEIGHTS_FILE}") from exc
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


def build_softmax_head(n_features: int = POOL_DIM, n_classes: int = len(GENRES), *, mean=None, variance=None):
    """The retrained last layer: normalised pool features to a softmax over the genres."""
    import keras
    from keras import layers

    inputs = keras.Input((n_features,), name="pool")
    x = layers.Normalization(mean=mean, variance=variance, name="standardise")(inputs) if mean is not None else inputs
    outputs = layers.Dense(n_classes, activation="softmax", name="genre_softmax")(x)
    return keras.Model(inputs, outputs, name="softmax_head")


def shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, seed: int = 0):
    """Endless shuffled batches of ``(x, y)`` for step-based training, as a ``keras.utils.PyDataset``.

    One Keras epoch is *steps* batches; each epoch continues where the last stopped and the data
    are reshuffled after every pass, so ``epochs`` rounds give ``epochs * steps`` steps. Numpy
    batches, no ``tf.data``: the same on every backend.
    """
    import keras

    class ShuffledBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = np.zeros(0, int)

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int):
            while len(self.order) < batch_size:
                self.order = np.concatenate([self.order, self.rng.permutation(len(x))])
            idx, self.order = self.order[:batch_size], self.order[batch_size:]
            return x[idx], y[idx]

    return ShuffledBatches()


def train_softmax_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       out_dir: str | Path, *, steps: int = 4000, checkpoint_every: int = 400,
                       batch_size: int = 100, learning_rate: float = 1e-3, seed: int = 0):
    """Retrain the head on cached per-frame bottlenecks for *steps* steps, as the paper did.

    Training runs as ``steps / checkpoint_every`` rounds of *checkpoint_every* steps over shuffled
    numpy batches (:func:`shuffled_batches`); after each round Keras callbacks write a checkpoint
    (``ModelCheckpoint``), a CSV row (``CSVLogger``) and, where TensorFlow is installed, TensorBoard
    logs. Returns the trained head and its history (a dict of lists).
    """
    import keras

    from helpers.backends import seed_everything, training_scope
    from helpers.train import training_callbacks

    out_dir = Path(out_dir)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    mean, var = x_train.mean(0), x_train.var(0) + 1e-12
    rounds = max(1, steps // checkpoint_every)
    data = shuffled_batches(x_train, y_train, batch_size, checkpoint_every, seed)
    callbacks = [keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoints" / "step_{epoch:05d}.weights.h5"),
                                                 save_weights_only=True)] + training_callbacks(out_dir, monitor=None)
    with training_scope():
        head = build_softmax_head(x_train.shape[1], mean=mean, variance=var)
        head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                     metrics=["accuracy"])
        history = head.fit(data, epochs=rounds, validation_data=(x_val, y_val), callbacks=callbacks, verbose=0)
    # checkpoint files are numbered by round; rename them by step, as the paper's script did
    for r in range(1, rounds + 1):
        src = out_dir / "checkpoints" / f"step_{r:05d}.weights.h5"
        if src.exists():
            src.replace(out_dir / "checkpoints" / f"ckpt_step{r * checkpoint_every:05d}.weights.h5")
    head.save(out_dir / "head.keras")
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

    names = [layer.name for layer in backbone.model.layers]
    if blocks_from not in names:
        raise ValueError(f"no layer {blocks_from!r} in InceptionV3; try one of mixed0 ... mixed10")
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
