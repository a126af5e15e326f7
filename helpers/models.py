"""The paper's LSTM over frame features, the baselines of its Table I, audio-visual fusion.

The builders themselves (``lstm_model``, ``early_fusion_model``, ..., and ``compile_and_fit``) are
written in notebook 05 and copied into :mod:`helpers.course.lstm_training` (one source, :mod:`helpers.cells`).
:data:`METHODS` is the one registry of the series' methods: for each, how it is built, which inputs it takes, which
feature it reads, whether it trains per frame or per clip, its batch size and what it combines.
Training, prediction, the pipeline and notebook 05 all read it. Sequence models
take a dict of inputs: ``video`` ``[T, D]`` (pool or softmax features), ``audio`` ``[T, n_mels]``,
``mask`` ``[T]`` (True on real steps, False on padding) and, for the 3D CNN, ``thumbs``
``[T, 32, 32, 3]``. Inputs are standardised inside the model (``Normalization`` with statistics
of the training split), so a saved model carries its own preprocessing.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np

from helpers.config import GENRES, Profile
from helpers.errors import SettingError

N_CLASSES = len(GENRES)


def zero_padded(x, mask):
    """*x* with the features of padded steps (``mask`` False) set to zero, for layers that take no mask."""
    return custom_layers()["ZeroPadded"](name="zero_padding")(x, mask)


@functools.cache
def custom_layers() -> dict:
    """The package's own Keras layers, registered for loading saved models (Keras is imported here,
    on first use, so that importing this module leaves the choice of backend open)."""
    import keras

    @keras.saving.register_keras_serializable(package="vgenre")
    class ZeroPadded(keras.layers.Layer):
        """Sets the features of padded steps (``mask`` False) to zero."""

        def call(self, x, mask_steps):
            mask = keras.ops.cast(mask_steps, x.dtype)
            for _ in range(len(x.shape) - 2):  # [batch, steps] against [batch, steps, ...]
                mask = keras.ops.expand_dims(mask, -1)
            return x * mask

        def compute_output_shape(self, x_shape, mask_steps_shape):
            return x_shape

    return {"ZeroPadded": ZeroPadded}


BUILDERS: tuple[str, ...] = ("classifier", "standardise", "lstm_model", "frame_model", "mlp_model", "conv3d_model",
                             "early_fusion_model", "late_fusion_model", "compile_and_fit")
"""The functions that make and train the series' models. They are written in notebook 05's ``# @save``
cells and copied into :mod:`helpers.course.lstm_training` (:mod:`helpers.cells`); a notebook may pass its own."""


def builders(overrides: dict | None = None) -> SimpleNamespace:
    """The builders the series trains with: :mod:`helpers.course.lstm_training`'s, or a notebook's own in their place
    (*overrides*: name -> function, e.g. the definitions of notebook 05 after a student changed one)."""
    from helpers.course import lstm_training as course

    unknown = set(overrides or ()) - set(BUILDERS)
    if unknown:
        raise SettingError(f"unknown builder(s) {', '.join(sorted(unknown))}; the builders are {', '.join(BUILDERS)}")
    return SimpleNamespace(**({name: getattr(course, name) for name in BUILDERS} | dict(overrides or {})))


def builder_key(method: str, ns: SimpleNamespace | None = None) -> str:
    """A short hash of the source of the builders *method* is made with (its parts' too): the model
    folder records it, and a folder made with other code is trained again."""
    from helpers.cells import source_key

    ns = ns or builders()
    spec = get_method(method)
    if spec.same_model_as:
        return builder_key(spec.same_model_as, ns)
    parts = "".join(builder_key(p, ns) for p in spec.parts)
    return source_key([getattr(ns, name) for name in spec.builders]) + (f"-{source_key([parts])}" if parts else "")


def standardisation_stats(x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance over real steps (for the models' Normalization layers)."""
    flat = x.reshape(-1, x.shape[-1]) if mask is None else x[mask]
    return flat.mean(0), flat.var(0) + 1e-8


@dataclass(frozen=True)
class Method:
    """One method of the series, as the registry :data:`METHODS` describes it.

    Attributes
    ----------
    name : the method's name (``lstm_pool``, ...)
    inputs : the model inputs it takes, a subset of ``video``, ``audio``, ``mask``, ``thumbs``
        (per-frame methods take one frame's ``video`` features)
    feature : the video feature it reads: ``pool`` (2048-d) or ``softmax`` (the retrained head's
        six probabilities per frame)
    per_frame : trains on single frames; a clip's answer comes from its frames (see *frame_pooling*)
    frame_pooling : for per-frame methods, ``middle`` (one frame) or ``mean`` (average over frames)
    batch_size : training batch size
    build : ``build(profile, train_inputs, builders) -> keras.Model`` (*builders*: :func:`builders`); None for
        methods made from others
    builders : the names of the :data:`BUILDERS` it is made and trained with (its cache key reads their source)
    same_model_as : a per-frame method that reuses another's trained model (``frame_average``)
    parts : the trained methods a combination averages (``late_fusion``)
    table_row : the row of the paper's Table I it stands for, or what it adds
    """

    name: str
    inputs: tuple[str, ...]
    feature: str = "pool"
    per_frame: bool = False
    frame_pooling: str = ""
    batch_size: int = 32
    build: Callable[[Profile, dict, SimpleNamespace], object] | None = None
    builders: tuple[str, ...] = ()
    same_model_as: str = ""
    parts: tuple[str, ...] = ()
    table_row: str = ""


def _stats(x: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    return standardisation_stats(x[name], x["mask"])


def _build_frame(prof: Profile, x: dict, b: SimpleNamespace):
    return b.frame_model(x["video"].shape[-1], dense_units=prof.dense_units, dropout=prof.dropout,
                         stats=_stats(x, "video"))


def _build_mlp(prof: Profile, x: dict, b: SimpleNamespace):
    T, D = x["video"].shape[1:]
    return b.mlp_model(T, D, dense_units=prof.dense_units, dropout=prof.dropout, stats=_stats(x, "video"))


def _build_conv3d(prof: Profile, x: dict, b: SimpleNamespace):
    return b.conv3d_model(x["thumbs"].shape[1], x["thumbs"].shape[2], dropout=prof.dropout)


def _build_lstm(name: str):
    def build(prof: Profile, x: dict, b: SimpleNamespace):
        T, D = x[name].shape[1:]
        return b.lstm_model(T, D, units=prof.lstm_units, dense_units=prof.dense_units, dropout=prof.dropout,
                            name=name, stats=_stats(x, name))
    return build


def _build_early_fusion(prof: Profile, x: dict, b: SimpleNamespace):
    T, D = x["video"].shape[1:]
    return b.early_fusion_model(T, D, x["audio"].shape[-1], units=prof.lstm_units, dense_units=prof.dense_units,
                                dropout=prof.dropout, stats=(_stats(x, "video"), _stats(x, "audio")))


_FIT = ("classifier", "standardise", "compile_and_fit")
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("single_frame", ("video",), per_frame=True, frame_pooling="middle", batch_size=256, build=_build_frame,
           builders=("frame_model", *_FIT), table_row="ConvNet (one frame)"),
    Method("frame_average", ("video",), per_frame=True, frame_pooling="mean", batch_size=256,
           same_model_as="single_frame", table_row="frame predictions averaged over the clip"),
    Method("mlp", ("video", "mask"), build=_build_mlp, builders=("mlp_model", *_FIT),
           table_row="time-distributed MLP over the sequence"),
    Method("conv3d", ("thumbs", "mask"), build=_build_conv3d, builders=("conv3d_model", "classifier", "compile_and_fit"),
           table_row="3D ConvNet (small, on thumbnails)"),
    Method("lstm_softmax", ("video", "mask"), feature="softmax", build=_build_lstm("video"),
           builders=("lstm_model", *_FIT), table_row="CNN-RNN on the retrained head's softmax"),
    Method("lstm_pool", ("video", "mask"), build=_build_lstm("video"), builders=("lstm_model", *_FIT),
           table_row="CNN-RNN on pool features"),
    Method("audio_only", ("audio", "mask"), build=_build_lstm("audio"), builders=("lstm_model", *_FIT),
           table_row="beyond Table I: sound alone"),
    Method("early_fusion", ("video", "audio", "mask"), build=_build_early_fusion,
           builders=("early_fusion_model", *_FIT), table_row="beyond Table I: video and sound into one LSTM"),
    Method("late_fusion", ("video", "audio", "mask"), parts=("lstm_pool", "audio_only"), builders=("late_fusion_model",),
           table_row="beyond Table I: the two LSTMs' probabilities averaged"),
)}
"""The registry of methods, in the order of the paper's Table I, then the audio-visual ones."""

VIDEO_METHODS: tuple[str, ...] = tuple(m for m, spec in METHODS.items() if "audio" not in spec.inputs and not spec.parts)
"""The methods that see only frames."""


def get_method(name: str) -> Method:
    """The registry entry of *name*; raises ValueError naming the methods there are."""
    try:
        return METHODS[name]
    except KeyError:
        raise SettingError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
