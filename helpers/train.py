"""One training entry for every model of the series, and the model directory ``vgenre predict`` loads.

A model directory holds::

    model.keras     the trained Keras model (with its own input standardisation)
    labels.json     the genres, in output order
    config.json     method, feature kind, sequence length, fps, backbone and audio settings
    metrics.json    validation (and, when given, test) metrics
    log.csv, tensorboard/, best.weights.h5   Keras callbacks' records
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.config import GENRES, Profile, get_profile
from helpers.frames import make_sequences

VIDEO_METHODS = ("single_frame", "frame_average", "mlp", "conv3d", "lstm_softmax", "lstm_pool")
METHODS = VIDEO_METHODS + ("audio_only", "early_fusion", "late_fusion")
FRAME_METHODS = ("single_frame", "frame_average")


@dataclass
class ClipSet:
    """Per-clip features and labels of a set of clips (one entry per clip)."""

    pool: list[np.ndarray]
    audio: list[np.ndarray]
    thumbs: list[np.ndarray]
    has_audio: np.ndarray
    y: np.ndarray
    meta: list[dict] = field(default_factory=list)

    def subset(self, index) -> "ClipSet":
        """The clips at *index* (a boolean mask or integer indices)."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, int)
        return ClipSet([self.pool[i] for i in idx], [self.audio[i] for i in idx], [self.thumbs[i] for i in idx],
                       self.has_audio[idx], self.y[idx], [self.meta[i] for i in idx])

    def split(self, name: str) -> "ClipSet":
        """The clips whose manifest split is *name* (train, val, test or hard)."""
        return self.subset(np.array([m.get("split") == name for m in self.meta], bool))

    def __len__(self) -> int:
        return len(self.y)


def sequence_inputs(clips: ClipSet, seq_len: int, *, feature: str = "pool", head=None) -> dict[str, np.ndarray]:
    """Stack clips into model inputs: ``video``, ``audio``, ``mask``, ``thumbs`` (padding policy of
    :func:`helpers.frames.make_sequences`). ``feature="softmax"`` turns pool features into the
    retrained *head*'s probabilities first."""
    from helpers.features import softmax_features

    video, audio, thumbs, masks = [], [], [], []
    for pool, aud, th in zip(clips.pool, clips.audio, clips.thumbs):
        v = softmax_features(head, pool) if feature == "softmax" else pool
        w, m = make_sequences(v, seq_len)
        video.append(w[0]); masks.append(m[0])
        audio.append(make_sequences(aud, seq_len)[0][0])
        thumbs.append(make_sequences(th, seq_len)[0][0])
    return {"video": np.stack(video).astype(np.float32), "audio": np.stack(audio).astype(np.float32),
            "mask": np.stack(masks), "thumbs": np.stack(thumbs)}


def model_inputs(method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Only the inputs *method*'s model takes."""
    names = {"conv3d": ("thumbs", "mask"), "audio_only": ("audio", "mask"),
             "early_fusion": ("video", "audio", "mask"), "late_fusion": ("video", "audio", "mask")}
    return {k: inputs[k] for k in names.get(method, ("video", "mask"))}


def _strategy():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _class_weights(y: np.ndarray) -> dict[int, float] | None:
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    counts = np.bincount(y, minlength=len(GENRES))[present]
    if counts.min() == counts.max():
        return None
    return dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y).tolist()))


def build_model(method: str, prof: Profile, train_inputs: dict[str, np.ndarray]):
    """Build the untrained Keras model of *method* sized from the profile and the training inputs."""
    from helpers import models
    from helpers.models import standardisation_stats

    mask = train_inputs["mask"]
    T = mask.shape[1]
    kw = dict(dense_units=prof.dense_units, dropout=prof.dropout)
    if method in FRAME_METHODS:
        mean, var = standardisation_stats(train_inputs["video"], mask)
        return models.build_frame_classifier(train_inputs["video"].shape[-1], mean=mean, variance=var, **kw)
    if method == "mlp":
        mean, var = standardisation_stats(train_inputs["video"], mask)
        return models.build_mlp_classifier(T, train_inputs["video"].shape[-1], mean=mean, variance=var, **kw)
    if method == "conv3d":
        return models.build_conv3d_classifier(T, train_inputs["thumbs"].shape[2], dropout=prof.dropout)
    if method in ("lstm_pool", "lstm_softmax", "audio_only"):
        name = "audio" if method == "audio_only" else "video"
        mean, var = standardisation_stats(train_inputs[name], mask)
        return models.build_lstm_classifier(T, train_inputs[name].shape[-1], units=prof.lstm_units, mean=mean,
                                            variance=var, input_name=name, **kw)
    if method == "early_fusion":
        return models.build_early_fusion(T, train_inputs["video"].shape[-1], train_inputs["audio"].shape[-1],
                                         units=prof.lstm_units, video_stats=standardisation_stats(train_inputs["video"], mask),
                                         audio_stats=standardisation_stats(train_inputs["audio"], mask), **kw)
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _frames_of(inputs: dict[str, np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = inputs["mask"]
    return inputs["video"][m], np.repeat(y, m.sum(1))


def train_model(method: str, train: tuple[dict, np.ndarray], val: tuple[dict, np.ndarray], out_dir: str | Path,
                *, profile: str | Profile = "default", seed: int = 0, feature: str = "pool",
                extra_config: dict | None = None, verbose: int = 0) -> Path:
    """Train *method* with early stopping, checkpoints, TensorBoard and CSV logs; write its model dir.

    *train* and *val* are ``(inputs, y)`` pairs from :func:`sequence_inputs`. Frame methods train on
    every real frame of the training clips. Returns the model directory.
    """
    import keras

    prof = get_profile(profile)
    if method == "late_fusion":
        raise ValueError("late_fusion combines two trained models: use train_late_fusion")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    (x_tr, y_tr), (x_va, y_va) = train, val
    if method in FRAME_METHODS:
        fit_x, fit_y = _frames_of(x_tr, y_tr)
        val_data = _frames_of(x_va, y_va)
        batch = 256
    else:
        fit_x, fit_y = model_inputs(method, x_tr), y_tr
        val_data = (model_inputs(method, x_va), y_va)
        batch = 32
    with _strategy().scope():
        model = build_model(method, prof, x_tr)
        model.compile(optimizer=keras.optimizers.Adam(prof.learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=prof.patience, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(out_dir / "best.weights.h5"), monitor="val_loss", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.CSVLogger(str(out_dir / "log.csv")),
        keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False),
    ]
    start = time.perf_counter()
    history = model.fit(fit_x, fit_y, validation_data=val_data, epochs=prof.epochs, batch_size=batch,
                        class_weight=_class_weights(fit_y), callbacks=callbacks, verbose=verbose)
    config = {"method": method, "feature": feature, "profile": prof.name, "seq_len": int(x_tr["mask"].shape[1]),
              "fps": prof.sample_fps, "seed": seed, "epochs_run": len(history.history["loss"]),
              "train_seconds": round(time.perf_counter() - start, 2), **(extra_config or {})}
    return save_model_dir(model, out_dir, config)


def train_late_fusion(video_dir: str | Path, audio_dir: str | Path, out_dir: str | Path) -> Path:
    """Build the late-fusion model from a trained video LSTM and a trained audio model; save it."""
    from helpers.models import build_late_fusion

    video, audio = load_model_dir(video_dir), load_model_dir(audio_dir)
    model = build_late_fusion(video.model, audio.model)
    config = {**video.config, "method": "late_fusion", "components": [str(Path(video_dir).resolve()),
                                                                      str(Path(audio_dir).resolve())]}
    return save_model_dir(model, Path(out_dir), config)


def save_model_dir(model, out_dir: Path, config: dict) -> Path:
    """Write model, labels and config into *out_dir* (the Keras file via a temporary name)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".model.partial.keras"
    model.save(tmp)
    tmp.replace(out_dir / "model.keras")
    (out_dir / "labels.json").write_text(json.dumps(list(GENRES)))
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return out_dir


@dataclass
class TrainedModel:
    """A loaded model directory that turns sequence inputs into clip probabilities."""

    path: Path
    model: object
    config: dict
    labels: list[str]

    @property
    def method(self) -> str:
        """The method name (one of ``METHODS``)."""
        return self.config["method"]

    def _call(self, x, batch_size: int):
        """The model on *x* in chunks, called directly: no new tf.function per input size."""
        n = len(x) if not isinstance(x, dict) else len(next(iter(x.values())))
        chunks = []
        for start in range(0, n, batch_size):
            part = x[start:start + batch_size] if not isinstance(x, dict) else \
                {k: v[start:start + batch_size] for k, v in x.items()}
            chunks.append(np.asarray(self.model(part, training=False)))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Genre probabilities ``[N, 6]`` for stacked sequence inputs."""
        if self.method in FRAME_METHODS:
            mask = inputs["mask"]
            frames = inputs["video"].reshape(-1, inputs["video"].shape[-1])
            per_frame = self._call(frames, 4096).reshape(mask.shape + (-1,))
            if self.method == "single_frame":
                middle = (mask.sum(1) - 1) // 2
                return per_frame[np.arange(len(mask)), middle]
            return (per_frame * mask[..., None]).sum(1) / np.maximum(1, mask.sum(1))[:, None]
        return self._call(model_inputs(self.method, inputs), 256)


def load_model_dir(path: str | Path) -> TrainedModel:
    """Load a model directory written by :func:`train_model` or :func:`train_late_fusion`."""
    import keras

    import helpers.models  # noqa: F401  registers the custom layer

    path = Path(path)
    if not (path / "model.keras").exists():
        raise FileNotFoundError(f"{path}: not a model directory (no model.keras); train one with `vgenre train`")
    config = json.loads((path / "config.json").read_text())
    labels = json.loads((path / "labels.json").read_text())
    return TrainedModel(path, keras.models.load_model(path / "model.keras"), config, labels)
