"""The paper's LSTM over frame features, the baselines of its Table I, audio-visual fusion.

Every builder is a short function that returns a compiled-ready ``keras.Model``. :data:`METHODS`
is the one registry of the series' methods: for each, how it is built, which inputs it takes, which
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
from typing import Callable

import numpy as np

from helpers.config import GENRES, Profile

N_CLASSES = len(GENRES)


def _keras():
    import keras
    from keras import layers

    return keras, layers


def _inputs(seq_len: int, n_features: int, name: str):
    keras, _ = _keras()
    return keras.Input((seq_len, n_features), name=name), keras.Input((seq_len,), dtype="bool", name="mask")


def _head(x, dense_units: int, dropout: float, name: str):
    _, layers = _keras()
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(dense_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, name="hidden_dropout")(x)
    return layers.Dense(N_CLASSES, activation="softmax", name=name)(x)


def _zero_padding(x, mask):
    """Multiply padded steps by zero (for layers that do not take a mask)."""
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


def build_lstm_classifier(seq_len: int, n_features: int, *, units: int = 2048, dense_units: int = 512,
                          dropout: float = 0.5, mean=None, variance=None, input_name: str = "video"):
    """The paper's wide LSTM: ``[T, D]`` features -> LSTM(units) -> Dense -> softmax over six genres.

    Padded steps are skipped through the mask (Keras' LSTM carries the last real state forward).
    """
    keras, layers = _keras()
    feats, mask = _inputs(seq_len, n_features, input_name)
    x = layers.Normalization(mean=mean, variance=variance, name="standardise")(feats) if mean is not None else feats
    x = layers.LSTM(units, name="lstm")(x, mask=mask)
    return keras.Model({input_name: feats, "mask": mask}, _head(x, dense_units, dropout, "genre"),
                       name=f"lstm_{input_name}")


def build_frame_classifier(n_features: int, *, dense_units: int = 512, dropout: float = 0.5,
                           mean=None, variance=None):
    """Table I's single-frame ConvNet: a classifier of one frame's features (no time)."""
    keras, layers = _keras()
    feats = keras.Input((n_features,), name="frame")
    x = layers.Normalization(mean=mean, variance=variance, name="standardise")(feats) if mean is not None else feats
    return keras.Model(feats, _head(x, dense_units, dropout, "genre"), name="single_frame")


def build_mlp_classifier(seq_len: int, n_features: int, *, dense_units: int = 512, dropout: float = 0.5,
                         mean=None, variance=None):
    """An MLP over the whole flattened sequence (the peer repository's ``mlp``)."""
    keras, layers = _keras()
    feats, mask = _inputs(seq_len, n_features, "video")
    x = layers.Normalization(mean=mean, variance=variance, name="standardise")(feats) if mean is not None else feats
    x = layers.Flatten(name="flatten_steps")(_zero_padding(x, mask))
    x = layers.Dense(dense_units, activation="relu", name="over_steps")(x)
    return keras.Model({"video": feats, "mask": mask}, _head(x, dense_units, dropout, "genre"), name="mlp")


def build_conv3d_classifier(seq_len: int, thumb_size: int = 32, *, dense_units: int = 64, dropout: float = 0.3):
    """A small 3D CNN on 32x32 thumbnails of the sampled frames (Table I's 3D ConvNet, cheap)."""
    keras, layers = _keras()
    thumbs = keras.Input((seq_len, thumb_size, thumb_size, 3), name="thumbs")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    x = _zero_padding(layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(thumbs), mask)  # padded: 0, not -1
    for k, filters in enumerate((16, 32), start=1):
        x = layers.Conv3D(filters, 3, padding="same", activation="relu", name=f"conv{k}")(x)
        x = layers.MaxPooling3D((1, 2, 2), name=f"pool{k}")(x)
    x = layers.Conv3D(32, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.GlobalAveragePooling3D(name="clip_mean")(x)
    return keras.Model({"thumbs": thumbs, "mask": mask}, _head(x, dense_units, dropout, "genre"), name="conv3d")


def build_early_fusion(seq_len: int, n_video: int, n_audio: int, *, units: int = 2048, dense_units: int = 512,
                       dropout: float = 0.5, video_stats=(None, None), audio_stats=(None, None)):
    """Early fusion: per-step video and audio features concatenated, then the LSTM."""
    keras, layers = _keras()
    video, mask = _inputs(seq_len, n_video, "video")
    audio = keras.Input((seq_len, n_audio), name="audio")
    v = (layers.Normalization(mean=video_stats[0], variance=video_stats[1], name="standardise_video")(video)
         if video_stats[0] is not None else video)
    a = (layers.Normalization(mean=audio_stats[0], variance=audio_stats[1], name="standardise_audio")(audio)
         if audio_stats[0] is not None else audio)
    x = layers.Concatenate(name="video_and_audio")([v, a])
    x = layers.LSTM(units, name="lstm")(x, mask=mask)
    return keras.Model({"video": video, "audio": audio, "mask": mask}, _head(x, dense_units, dropout, "genre"),
                       name="early_fusion")


def build_late_fusion(video_model, audio_model):
    """Late fusion: the two trained branches' genre probabilities averaged (no new weights)."""
    keras, layers = _keras()
    seq_len, n_video = video_model.input["video"].shape[1:]
    n_audio = audio_model.input["audio"].shape[2]
    video = keras.Input((seq_len, n_video), name="video")
    audio = keras.Input((seq_len, n_audio), name="audio")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    pv = video_model({"video": video, "mask": mask})
    pa = audio_model({"audio": audio, "mask": mask})
    return keras.Model({"video": video, "audio": audio, "mask": mask}, layers.Average(name="genre")([pv, pa]),
                       name="late_fusion")


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
    build : ``build(profile, train_inputs) -> keras.Model``; None for methods made from others
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
    build: Callable[[Profile, dict], object] | None = None
    same_model_as: str = ""
    parts: tuple[str, ...] = ()
    table_row: str = ""


def _stats(x: dict, name: str) -> dict:
    mean, variance = standardisation_stats(x[name], x["mask"])
    return {"mean": mean, "variance": variance}


def _build_frame(prof: Profile, x: dict):
    return build_frame_classifier(x["video"].shape[-1], dense_units=prof.dense_units, dropout=prof.dropout,
                                  **_stats(x, "video"))


def _build_mlp(prof: Profile, x: dict):
    T, D = x["video"].shape[1:]
    return build_mlp_classifier(T, D, dense_units=prof.dense_units, dropout=prof.dropout, **_stats(x, "video"))


def _build_conv3d(prof: Profile, x: dict):
    return build_conv3d_classifier(x["thumbs"].shape[1], x["thumbs"].shape[2], dropout=prof.dropout)


def _build_lstm(name: str):
    def build(prof: Profile, x: dict):
        T, D = x[name].shape[1:]
        return build_lstm_classifier(T, D, units=prof.lstm_units, dense_units=prof.dense_units, dropout=prof.dropout,
                                     input_name=name, **_stats(x, name))
    return build


def _build_early_fusion(prof: Profile, x: dict):
    T, D = x["video"].shape[1:]
    video, audio = _stats(x, "video"), _stats(x, "audio")
    return build_early_fusion(T, D, x["audio"].shape[-1], units=prof.lstm_units, dense_units=prof.dense_units,
                              dropout=prof.dropout, video_stats=(video["mean"], video["variance"]),
                              audio_stats=(audio["mean"], audio["variance"]))


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("single_frame", ("video",), per_frame=True, frame_pooling="middle", batch_size=256, build=_build_frame,
           table_row="ConvNet (one frame)"),
    Method("frame_average", ("video",), per_frame=True, frame_pooling="mean", batch_size=256,
           same_model_as="single_frame", table_row="frame predictions averaged over the clip"),
    Method("mlp", ("video", "mask"), build=_build_mlp, table_row="time-distributed MLP over the sequence"),
    Method("conv3d", ("thumbs", "mask"), build=_build_conv3d, table_row="3D ConvNet (small, on thumbnails)"),
    Method("lstm_softmax", ("video", "mask"), feature="softmax", build=_build_lstm("video"),
           table_row="CNN-RNN on the retrained head's softmax"),
    Method("lstm_pool", ("video", "mask"), build=_build_lstm("video"), table_row="CNN-RNN on pool features"),
    Method("audio_only", ("audio", "mask"), build=_build_lstm("audio"), table_row="beyond Table I: sound alone"),
    Method("early_fusion", ("video", "audio", "mask"), build=_build_early_fusion,
           table_row="beyond Table I: video and sound into one LSTM"),
    Method("late_fusion", ("video", "audio", "mask"), parts=("lstm_pool", "audio_only"),
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
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
