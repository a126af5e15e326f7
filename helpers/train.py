"""One training entry for every model of the series, and the model folder ``vgenre predict`` loads.

A model folder is self-contained: it can be copied or moved anywhere and still predicts. It holds::

    model.keras     the trained Keras model (with its own input standardisation)
    head.keras      the retrained softmax head, for methods that read softmax features
    labels.json     the genres, in output order
    config.json     method, feature kind, sequence length, fps, backbone and audio settings;
                    every path in it is relative to the folder
    metrics.json    test metrics, when ``vgenre train`` computed them
    ood.npz         the training clips described for the out-of-distribution score (:mod:`helpers.ood`),
                    added by :func:`helpers.pipeline.ensure_models`
    log.csv, best.weights.h5   Keras callbacks' records (and tensorboard/ where TensorFlow is installed)

What each method takes and how it trains comes from the registry :data:`helpers.models.METHODS`.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from helpers.backends import backend_name, seed_everything, training_scope
from helpers.config import GENRES, Profile, get_profile
from helpers.errors import VgenreError
from helpers.fileio import atomic_path, copy_file, make_folder, write_json
from helpers.models import get_method


def model_inputs(method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Only the inputs *method*'s model takes (from the registry)."""
    return {k: inputs[k] for k in get_method(method).inputs}


def training_callbacks(out_dir: Path, *, monitor: str | None = "val_loss") -> list:
    """Keras callbacks that keep a model folder's records: the best weights (when *monitor* is set),
    a CSV log always, TensorBoard logs where TensorFlow can write them. (Early stopping is part of the
    method: notebook 05's ``compile_and_fit``.)"""
    import keras

    from helpers.backends import tensorboard_available

    callbacks = []
    if monitor:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(out_dir / "best.weights.h5"), monitor=monitor,
                                                         save_best_only=True, save_weights_only=True))
    callbacks.append(keras.callbacks.CSVLogger(str(out_dir / "log.csv")))
    if tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False))
    return callbacks


def class_weights(y: np.ndarray) -> dict[int, float] | None:
    """Weights that make each genre count alike in the loss (scikit-learn's "balanced"); None when the
    genres are equally frequent."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    counts = np.bincount(y, minlength=len(GENRES))[present]
    if counts.min() == counts.max():
        return None
    return dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y).tolist()))


def build_model(method: str, prof: Profile, train_inputs: dict[str, np.ndarray], builders=None):
    """Build the untrained Keras model of *method* with the course's builders (or *builders*, a namespace
    from :func:`helpers.models.builders`), sized from the profile and the training inputs."""
    from helpers.models import builders as course_builders

    spec = get_method(method)
    if spec.build is None:
        raise ValueError(f"{method} is made from other trained models ({spec.same_model_as or ', '.join(spec.parts)}), "
                         "not built and trained itself")
    return spec.build(prof, train_inputs, builders or course_builders())


def frames_of(inputs: dict[str, np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every real (unpadded) frame of stacked sequence inputs, with its clip's label."""
    m = inputs["mask"]
    return inputs["video"][m], np.repeat(y, m.sum(1))


def train_model(method: str, train: tuple[dict, np.ndarray], val: tuple[dict, np.ndarray], out_dir: str | Path,
                *, profile: str | Profile = "default", seed: int = 0, head_file: str | Path | None = None,
                extra_config: dict | None = None, builders=None, callbacks: list | None = None) -> Path:
    """Train *method* with early stopping, checkpoints, TensorBoard and CSV logs; write its model folder.

    *train* and *val* are ``(inputs, y)`` pairs from :func:`helpers.features.sequence_inputs` (made with
    the retrained head for methods that read softmax features: pass its file as *head_file*, and a copy
    goes into the folder). Per-frame methods train on every real frame of the training clips.
    *builders* (from :func:`helpers.models.builders`) are the functions that build and fit it (the
    course's by default); *callbacks* are added to the folder's own (a live plot, say).
    Returns the model folder.
    """
    from helpers.models import builders as course_builders

    prof = get_profile(profile)
    spec = get_method(method)
    builders = builders or course_builders()
    if spec.feature == "softmax" and head_file is None:
        raise ValueError(f"{method} reads softmax features: pass the retrained head's file as head_file")
    out_dir = Path(out_dir)
    make_folder(out_dir)
    seed_everything(seed)
    (x_tr, y_tr), (x_va, y_va) = train, val
    if spec.per_frame:
        fit_x, fit_y = frames_of(x_tr, y_tr)
        val_data = frames_of(x_va, y_va)
    else:
        fit_x, fit_y = model_inputs(method, x_tr), y_tr
        val_data = (model_inputs(method, x_va), y_va)
    start = time.perf_counter()
    with training_scope():
        model = build_model(method, prof, x_tr, builders)
        history = _compile_and_fit(model, prof, (fit_x, fit_y), val_data, out_dir, batch_size=spec.batch_size,
                                   fit=builders.compile_and_fit, callbacks=callbacks)
    return save_trained(model, history, method, out_dir, profile=prof, seed=seed, seq_len=int(x_tr["mask"].shape[1]),
                        seconds=time.perf_counter() - start, head_file=head_file, extra_config=extra_config)


def save_trained(model, history, method: str, out_dir: str | Path, *, profile: str | Profile, seed: int, seq_len: int,
                 seconds: float | None = None, head_file: str | Path | None = None,
                 extra_config: dict | None = None) -> Path:
    """Write the model folder of *method* trained in a notebook cell (or by :func:`train_model`): the
    model, its labels and the config :func:`load_model_dir` and ``vgenre predict`` read."""
    prof, out_dir = get_profile(profile), Path(out_dir)
    if head_file is not None:
        copy_file(head_file, out_dir / "head.keras")
    config = {"method": method, "feature": get_method(method).feature, "profile": prof.name, "seq_len": seq_len,
              "fps": prof.sample_fps, "seed": seed, "backend": backend_name(), "epochs_run": len(history.history["loss"]),
              **({"train_seconds": round(seconds, 2)} if seconds is not None else {}),
              **({"head": "head.keras"} if head_file is not None else {}), **(extra_config or {})}
    return save_model_dir(model, out_dir, config)


def train_keras_model(build: Callable[[], object], train: tuple[dict, np.ndarray], val: tuple[dict, np.ndarray],
                      out_dir: str | Path, *, profile: str | Profile = "default", seed: int = 0, batch_size: int | None = None,
                      extra_config: dict | None = None, callbacks: list | None = None) -> Path:
    """Train a model that is not in the registry the way :func:`train_model` trains one; write its folder.

    *build* is a function without arguments that returns the untrained ``keras.Model`` (a notebook's own
    design, say); it is called after seeding and inside the training scope, so *seed* fixes its initial
    weights and several devices share its variables. The optimiser, loss, class weights, epochs, early
    stopping and logs are those of :func:`train_model`, from *profile*; the batch size, unless given, is
    ``lstm_pool``'s. *train* and *val* are ``(inputs,
    y)`` pairs as :func:`helpers.features.sequence_inputs` makes them; a model with named inputs is given
    only those. The folder's config names the model (``method``: the model's name).

    Usage (notebook 08)::

        train_keras_model(lambda: build_attention(40, 2048), (x_tr, y_tr), (x_va, y_va), "models/attention_seed0",
                          profile="smoke", seed=0)
    """
    prof = get_profile(profile)
    batch_size = batch_size or get_method("lstm_pool").batch_size
    out_dir = Path(out_dir)
    make_folder(out_dir)
    seed_everything(seed)
    (x_tr, y_tr), (x_va, y_va) = train, val
    start = time.perf_counter()
    with training_scope():
        model = build()
        names = list(model.input) if isinstance(model.input, dict) else None
        pick = (lambda x: {k: x[k] for k in names}) if names else (lambda x: x)
        history = _compile_and_fit(model, prof, (pick(x_tr), y_tr), (pick(x_va), y_va), out_dir,
                                   batch_size=batch_size, callbacks=callbacks)
    config = {"method": model.name, "custom": True, "profile": prof.name,
              **({"seq_len": int(x_tr["mask"].shape[1])} if isinstance(x_tr, dict) and "mask" in x_tr else {}),
              "fps": prof.sample_fps, "seed": seed,
              "backend": backend_name(), "epochs_run": len(history.history["loss"]),
              "train_seconds": round(time.perf_counter() - start, 2), **(extra_config or {})}
    return save_model_dir(model, out_dir, config)


def _compile_and_fit(model, prof: Profile, train: tuple, val_data: tuple, out_dir: Path, *, batch_size: int,
                     fit=None, callbacks: list | None = None):
    """Notebook 05's ``compile_and_fit`` (or *fit*) with the profile's settings, balanced class weights
    and the folder's records as callbacks."""
    from helpers.course.lstm_training import compile_and_fit

    return (fit or compile_and_fit)(model, train, val_data, learning_rate=prof.learning_rate, epochs=prof.epochs,
                                    batch_size=batch_size, patience=prof.patience, class_weight=class_weights(train[1]),
                                    callbacks=training_callbacks(out_dir) + list(callbacks or ()))


def reuse_model(source_dir: str | Path, method: str, out_dir: str | Path) -> Path:
    """A folder for *method* holding the trained model of the method it shares a model with
    (``frame_average`` averages ``single_frame``'s per-frame predictions)."""
    spec = get_method(method)
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    source = json.loads((source_dir / "config.json").read_text())
    if source.get("method") != spec.same_model_as:
        raise ValueError(f"{method} reuses the model of {spec.same_model_as}, but {source_dir} holds {source.get('method')}")
    shutil.copytree(source_dir, out_dir, dirs_exist_ok=True)
    write_json(out_dir / "config.json", source | {"method": method})
    return out_dir


def train_late_fusion(video_dir: str | Path, audio_dir: str | Path, out_dir: str | Path, *, builders=None,
                      extra_config: dict | None = None) -> Path:
    """Build the late-fusion model from a trained video LSTM and a trained audio model; save it.

    The two branches live inside the saved model (no paths to other folders); the config names the
    video branch's layer, so a clip without audio can be classified by video alone.
    """
    from helpers.models import builders as course_builders

    video, audio = load_model_dir(video_dir), load_model_dir(audio_dir)
    model = (builders or course_builders()).late_fusion_model(video.model, audio.model)
    parts = {"video": {"method": video.method, "layer": video.model.name},
             "audio": {"method": audio.method, "layer": audio.model.name}}
    config = {**video.config, "method": "late_fusion", "parts": parts, **(extra_config or {})}
    return save_model_dir(model, Path(out_dir), config)


def save_model_dir(model, out_dir: Path, config: dict) -> Path:
    """Write model, labels and config into *out_dir*, each file atomically (:mod:`helpers.fileio`).

    Raises
    ------
    helpers.errors.WriteError
        When a file cannot be written (no space, read-only folder); nothing partial is left.
    """
    with atomic_path(out_dir / "model.keras") as tmp:
        model.save(tmp)
    write_json(out_dir / "labels.json", list(GENRES), indent=None)
    write_json(out_dir / "config.json", config, default=str)
    return out_dir


class ModelFolderError(VgenreError, ValueError):
    """A model folder that cannot be loaded; the message names the folder or file and what to do."""


@dataclass
class TrainedModel:
    """A loaded model folder that turns sequence inputs into clip probabilities.

    ``head`` is the retrained softmax head for methods that read softmax features (else None).
    """

    path: Path
    model: object
    config: dict
    labels: list[str]
    head: object = None

    @property
    def method(self) -> str:
        """The method name (a key of :data:`helpers.models.METHODS`)."""
        return self.config["method"]

    def _call(self, x, batch_size: int):
        """The model on *x* in chunks, called directly (no new compiled function per input size),
        as numpy whatever the backend."""
        import keras

        n = len(x) if not isinstance(x, dict) else len(next(iter(x.values())))
        chunks = []
        for start in range(0, n, batch_size):
            part = x[start:start + batch_size] if not isinstance(x, dict) else \
                {k: v[start:start + batch_size] for k, v in x.items()}
            chunks.append(keras.ops.convert_to_numpy(self.model(part, training=False)))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Genre probabilities ``[N, 6]`` for stacked sequence inputs."""
        if self.config.get("custom"):  # a model of a notebook's own design (train_keras_model): its named inputs
            names = list(self.model.input) if isinstance(self.model.input, dict) else None
            return self._call({k: inputs[k] for k in names} if names else inputs["video"], 256)
        spec = get_method(self.method)
        if spec.per_frame:
            mask = inputs["mask"]
            frames = inputs["video"].reshape(-1, inputs["video"].shape[-1])
            per_frame = self._call(frames, 4096).reshape(mask.shape + (-1,))
            if spec.frame_pooling == "middle":
                middle = (mask.sum(1) - 1) // 2
                return per_frame[np.arange(len(mask)), middle]
            return (per_frame * mask[..., None]).sum(1) / np.maximum(1, mask.sum(1))[:, None]
        return self._call(model_inputs(self.method, inputs), 256)

    def branch(self, name: str) -> "TrainedModel":
        """One branch of a combination (``video`` or ``audio`` of ``late_fusion``) as a model of its own."""
        parts = self.config.get("parts") or {}
        if name not in parts:
            raise ValueError(f"{self.path}: {self.method} has no {name!r} branch")
        sub = self.model.get_layer(parts[name]["layer"])
        return TrainedModel(self.path, sub, self.config | {"method": parts[name]["method"]}, self.labels)


def load_model_dir(path: str | Path) -> TrainedModel:
    """Load a model folder written by :func:`train_model` or :func:`train_late_fusion`.

    Raises
    ------
    ModelFolderError
        When the folder has no ``model.keras``, or a file of it cannot be read.
    """
    from helpers.models import custom_layers

    custom_layers()  # registered before loading
    path = Path(path)
    if not (path / "model.keras").exists():
        raise ModelFolderError(f"{path}: not a model folder (no model.keras); train one with `vgenre train`")
    try:
        config = json.loads((path / "config.json").read_text())
        labels = json.loads((path / "labels.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: config.json or labels.json missing or unreadable ({exc.__class__.__name__}); "
                               "train the model again with `vgenre train`") from exc
    head = _load_keras(path / config["head"]) if config.get("head") else None
    return TrainedModel(path, _load_keras(path / "model.keras"), config, labels, head)


def _load_keras(file: Path):
    """``keras.models.load_model`` whose failure on a damaged file names the file (Keras says
    "file not found" about a zip it cannot read)."""
    import keras

    try:
        return keras.models.load_model(file, compile=False)
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{file}: not a readable Keras model ({exc.__class__.__name__}); train the model "
                               "again with `vgenre train` or copy the folder anew") from exc

