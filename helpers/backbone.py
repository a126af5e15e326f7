"""InceptionV3 by transfer learning: the weights policy, preprocessing, the retrained softmax head.

The paper retrained InceptionV3's last layer on its frames for 4000 steps (a checkpoint every
400) and fed the LSTM either that layer's softmax output or the 2048-d pool layer.

Weights policy (DESIGN.md): ImageNet weights come from a file the user names (argument or
``VGENRE_WEIGHTS``), Keras' cache (``~/.keras/models``) or Keras' download. Offline, ``smoke`` and
``default`` continue with a *randomly initialised* backbone and say so loudly; ``full`` stops with
an error that names the missing file, its URL and where to put it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.config import GENRES, Profile, get_profile

log = logging.getLogger(__name__)

WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/{WEIGHTS_FILE}"
POOL_DIM = 2048
RANDOM_SEED = 1234


class WeightsError(RuntimeError):
    """Pretrained weights are required (profile ``full``) but cannot be found or downloaded."""


@dataclass(frozen=True)
class WeightsStatus:
    """Where the backbone's weights come from: ``file``, ``keras-cache``, ``download`` or ``random``."""

    source: str
    path: str | None
    weights_id: str
    message: str

    @property
    def pretrained(self) -> bool:
        """True when the backbone carries ImageNet (or user-supplied) weights."""
        return self.source != "random"


def keras_cache_path() -> Path:
    """Where Keras keeps downloaded application weights."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / WEIGHTS_FILE


def _file_id(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    if os.environ.get("VGENRE_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_weights(profile: str | Profile = "default", weights: str | Path | None = None) -> WeightsStatus:
    """Decide where the ImageNet weights come from, following the policy above.

    Raises
    ------
    WeightsError
        When the profile requires pretrained weights and none can be found or downloaded, or
        when a file named by the user does not exist.
    """
    prof = get_profile(profile)
    named = weights or os.environ.get("VGENRE_WEIGHTS")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} (from {'argument' if weights else 'VGENRE_WEIGHTS'}) does not exist")
        return WeightsStatus("file", str(path), f"file-{_file_id(path)}", f"ImageNet weights from {path}")
    cached = keras_cache_path()
    if cached.is_file():
        return WeightsStatus("keras-cache", str(cached), f"file-{_file_id(cached)}", f"ImageNet weights from Keras' cache {cached}")
    if _online():
        try:
            import keras

            path = Path(keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models"))
            return WeightsStatus("download", str(path), f"file-{_file_id(path)}", f"ImageNet weights downloaded to {path}")
        except Exception as exc:  # network errors come in many types
            log.warning("download of %s failed: %s", WEIGHTS_URL, exc)
    if prof.require_pretrained:
        raise WeightsError(
            f"profile {prof.name!r} needs ImageNet weights for InceptionV3, and none were found.\n"
            f"  missing file: {WEIGHTS_FILE}\n  get it from:  {WEIGHTS_URL}\n"
            f"  put it at:    {cached}  (Keras' cache), or anywhere and set VGENRE_WEIGHTS=/path/to/it"
        )
    message = (f"NO PRETRAINED WEIGHTS: {WEIGHTS_FILE} is not in {cached.parent} and cannot be downloaded; "
               f"profile {prof.name!r} continues with a RANDOMLY INITIALISED InceptionV3 (seed {RANDOM_SEED}). "
               "Features then reflect colour and texture statistics, not ImageNet objects.")
    return WeightsStatus("random", None, f"random-{RANDOM_SEED}", message)


def preprocess(frames: np.ndarray) -> np.ndarray:
    """InceptionV3's own preprocessing (pixels to [-1, 1]); the only one used, in training and extraction."""
    from keras.applications.inception_v3 import preprocess_input

    return preprocess_input(np.asarray(frames, np.float32))


class Backbone:
    """InceptionV3 without its top, average-pooled to 2048 features per frame.

    Parameters
    ----------
    input_size : square input side in pixels (75 at least; 299 in the paper's setting)
    status : where the weights come from (:func:`resolve_weights`)
    precision : ``"float32"`` or ``"bfloat16"`` (inference only)
    """

    def __init__(self, input_size: int, status: WeightsStatus, precision: str = "float32"):
        import keras

        if input_size < 75:
            raise ValueError(f"InceptionV3 needs inputs of at least 75x75 pixels, got {input_size}")
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
        self.input_size, self.status, self.precision = input_size, status, precision
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
            self.model.load_weights(status.path)
        self._predict = None

    @property
    def key(self) -> dict:
        """Everything about the backbone that changes its features (for cache keys)."""
        return {"backbone": "InceptionV3", "weights": self.status.weights_id, "input_size": self.input_size,
                "precision": self.precision}

    def pool_features(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """2048-d pool features ``[n, 2048]`` (float32) of uint8 RGB *frames* of any size."""
        import cv2

        frames = np.asarray(frames)
        s = self.input_size
        if frames.shape[1:3] != (s, s):
            frames = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in frames])
        out = []
        for start in range(0, len(frames), batch_size):
            batch = preprocess(frames[start:start + batch_size])
            n = len(batch)
            if n < batch_size:  # one input shape, one compiled graph
                batch = np.concatenate([batch, np.zeros((batch_size - n,) + batch.shape[1:], np.float32)])
            out.append(np.asarray(self.model.predict_on_batch(batch), np.float32)[:n])
        return np.concatenate(out) if out else np.zeros((0, POOL_DIM), np.float32)


_BACKBONES: dict[tuple, Backbone] = {}


def load_backbone(profile: str | Profile = "default", *, weights: str | Path | None = None,
                  input_size: int | None = None, precision: str = "float32", verbose: bool = True) -> Backbone:
    """The backbone of *profile*, built once per process and reused."""
    prof = get_profile(profile)
    status = resolve_weights(prof, weights)
    key = (input_size or prof.input_size, status.weights_id, precision)
    if key not in _BACKBONES:
        if not status.pretrained and verbose:
            warnings.warn(status.message, stacklevel=2)
        _BACKBONES[key] = Backbone(key[0], status, precision)
    return _BACKBONES[key]


def build_softmax_head(n_features: int = POOL_DIM, n_classes: int = len(GENRES), *, mean=None, variance=None):
    """The retrained last layer: normalised pool features to a softmax over the genres."""
    import keras
    from keras import layers

    inputs = keras.Input((n_features,), name="pool")
    x = layers.Normalization(mean=mean, variance=variance, name="standardise")(inputs) if mean is not None else inputs
    outputs = layers.Dense(n_classes, activation="softmax", name="genre_softmax")(x)
    return keras.Model(inputs, outputs, name="softmax_head")


def train_softmax_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       out_dir: str | Path, *, steps: int = 4000, checkpoint_every: int = 400,
                       batch_size: int = 100, learning_rate: float = 1e-3, seed: int = 0):
    """Retrain the head on cached per-frame bottlenecks for *steps* steps, as the paper did.

    Training runs as ``steps / checkpoint_every`` rounds of *checkpoint_every* steps; after each
    round Keras callbacks write a checkpoint (``ModelCheckpoint``), a CSV row (``CSVLogger``) and
    TensorBoard logs. Returns the trained head and its history (a dict of lists).
    """
    import keras
    import tensorflow as tf

    out_dir = Path(out_dir)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    mean, var = x_train.mean(0), x_train.var(0) + 1e-12
    head = build_softmax_head(x_train.shape[1], mean=mean, variance=var)
    head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=seed).repeat().batch(batch_size)
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoints" / "step_{epoch:05d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.CSVLogger(str(out_dir / "log.csv")),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False),
    ]
    rounds = max(1, steps // checkpoint_every)
    history = head.fit(data, steps_per_epoch=checkpoint_every, epochs=rounds, validation_data=(x_val, y_val), shuffle=False,
                       callbacks=callbacks, verbose=0)
    # checkpoint files are numbered by round; rename them by step, as the paper's script did
    for r in range(1, rounds + 1):
        src = out_dir / "checkpoints" / f"step_{r:05d}.weights.h5"
        if src.exists():
            src.replace(out_dir / "checkpoints" / f"ckpt_step{r * checkpoint_every:05d}.weights.h5")
    head.save(out_dir / "head.keras")
    return head, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def fine_tune_top_blocks(backbone: Backbone, head, frames: np.ndarray, labels: np.ndarray, *,
                         blocks_from: str = "mixed9", epochs: int = 1, batch_size: int = 32,
                         learning_rate: float = 1e-5):
    """Fine-tune InceptionV3 from layer *blocks_from* on together with the head (meant for GPUs).

    Everything before *blocks_from* stays frozen; BatchNorm layers stay in inference mode.
    Returns the training history (a dict of lists).
    """
    import keras

    names = [layer.name for layer in backbone.model.layers]
    if blocks_from not in names:
        raise ValueError(f"no layer {blocks_from!r} in InceptionV3; try one of mixed0 ... mixed10")
    first = names.index(blocks_from)
    for i, layer in enumerate(backbone.model.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
    inputs = keras.Input((backbone.input_size, backbone.input_size, 3))
    outputs = head(backbone.model(inputs, training=False))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(preprocess(frames), labels, epochs=epochs, batch_size=batch_size, verbose=0)
    for layer in backbone.model.layers:
        layer.trainable = False
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
