"""The paper's LSTM over frame features, the baselines of its Table I, audio-visual fusion.

Every builder is a short function that returns a compiled-ready ``keras.Model``. Sequence models
take a dict of inputs: ``video`` ``[T, D]`` (pool or softmax features), ``audio`` ``[T, n_mels]``,
``mask`` ``[T]`` (True on real steps, False on padding) and, for the 3D CNN, ``thumbs``
``[T, 32, 32, 3]``. Inputs are standardised inside the model (``Normalization`` with statistics
of the training split), so a saved model carries its own preprocessing.
"""
from __future__ import annotations

import numpy as np

from helpers.config import GENRES

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
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(N_CLASSES, activation="softmax", name=name)(x)


def _zero_padding(x, mask):
    """Multiply padded steps by zero (for layers that do not take a mask)."""
    return ZeroPadded()(x, mask)


def _register():
    import keras

    @keras.saving.register_keras_serializable(package="vgenre")
    class ZeroPadded(keras.layers.Layer):
        """Sets the features of padded steps (``mask`` False) to zero."""

        def call(self, x, mask_steps):
            return x * keras.ops.expand_dims(keras.ops.cast(mask_steps, x.dtype), -1)

        def compute_output_shape(self, x_shape, mask_steps_shape):
            return x_shape

    return ZeroPadded


ZeroPadded = _register()


def build_lstm_classifier(seq_len: int, n_features: int, *, units: int = 2048, dense_units: int = 512,
                          dropout: float = 0.5, mean=None, variance=None, input_name: str = "video"):
    """The paper's wide LSTM: ``[T, D]`` features -> LSTM(units) -> Dense -> softmax over six genres.

    Padded steps are skipped through the mask (Keras' LSTM carries the last real state forward).
    """
    keras, layers = _keras()
    feats, mask = _inputs(seq_len, n_features, input_name)
    x = layers.Normalization(mean=mean, variance=variance)(feats) if mean is not None else feats
    x = layers.LSTM(units, name="lstm")(x, mask=mask)
    return keras.Model({input_name: feats, "mask": mask}, _head(x, dense_units, dropout, "genre"),
                       name=f"lstm_{input_name}")


def build_frame_classifier(n_features: int, *, dense_units: int = 512, dropout: float = 0.5,
                           mean=None, variance=None):
    """Table I's single-frame ConvNet: a classifier of one frame's features (no time)."""
    keras, layers = _keras()
    feats = keras.Input((n_features,), name="frame")
    x = layers.Normalization(mean=mean, variance=variance)(feats) if mean is not None else feats
    return keras.Model(feats, _head(x, dense_units, dropout, "genre"), name="single_frame")


def build_mlp_classifier(seq_len: int, n_features: int, *, dense_units: int = 512, dropout: float = 0.5,
                         mean=None, variance=None):
    """An MLP over the whole flattened sequence (the peer repository's ``mlp``)."""
    keras, layers = _keras()
    feats, mask = _inputs(seq_len, n_features, "video")
    x = layers.Normalization(mean=mean, variance=variance)(feats) if mean is not None else feats
    x = layers.Flatten()(_zero_padding(x, mask))
    x = layers.Dense(dense_units, activation="relu")(x)
    return keras.Model({"video": feats, "mask": mask}, _head(x, dense_units, dropout, "genre"), name="mlp")


def build_conv3d_classifier(seq_len: int, thumb_size: int = 32, *, dense_units: int = 64, dropout: float = 0.3):
    """A small 3D CNN on 32x32 thumbnails of the sampled frames (Table I's 3D ConvNet, cheap)."""
    keras, layers = _keras()
    thumbs = keras.Input((seq_len, thumb_size, thumb_size, 3), name="thumbs")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(thumbs)
    for filters in (16, 32):
        x = layers.Conv3D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling3D((1, 2, 2))(x)
    x = layers.Conv3D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling3D()(x)
    return keras.Model({"thumbs": thumbs, "mask": mask}, _head(x, dense_units, dropout, "genre"), name="conv3d")


def build_early_fusion(seq_len: int, n_video: int, n_audio: int, *, units: int = 2048, dense_units: int = 512,
                       dropout: float = 0.5, video_stats=(None, None), audio_stats=(None, None)):
    """Early fusion: per-step video and audio features concatenated, then the LSTM."""
    keras, layers = _keras()
    video, mask = _inputs(seq_len, n_video, "video")
    audio = keras.Input((seq_len, n_audio), name="audio")
    v = layers.Normalization(mean=video_stats[0], variance=video_stats[1])(video) if video_stats[0] is not None else video
    a = layers.Normalization(mean=audio_stats[0], variance=audio_stats[1])(audio) if audio_stats[0] is not None else audio
    x = layers.Concatenate()([v, a])
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
