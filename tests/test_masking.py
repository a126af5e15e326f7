"""Padded steps change nothing: every registry model, and notebook 05's two-layer LSTM, skip them.

A clip shorter than a sequence is padded, and its ``mask`` is False on the padded steps. Whatever
the padded steps hold, a model's output must stay the same. Keras' next release (keras-nightly 3.16)
no longer lets RNN, Bidirectional and TimeDistributed layers pass a mask on to the next layer by
themselves; the series hands ``mask=`` to every recurrent layer explicitly, which must keep working,
also after a model is saved and loaded. `make test` runs this on the lock's Keras, `make test-latest`
on keras-nightly, `make test-jax` and `make test-torch` on the other backends.
"""
from __future__ import annotations

import numpy as np
import pytest

from helpers.config import get_profile
from helpers.course.lstm_training import late_fusion_model
from helpers.models import METHODS
from helpers.train import build_model

T, D, A = 8, 12, 5
PROFILE = get_profile("smoke", lstm_units=8, dense_units=8)
SEQUENCE_METHODS = [name for name, spec in METHODS.items() if "mask" in spec.inputs and spec.build is not None]


def _inputs(seed=0) -> dict[str, np.ndarray]:
    """Four clips: padded after 5 steps, after 1 step, not padded, padded after 7 (real steps come first)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((4, T), bool)
    mask[0, 5:] = mask[1, 1:] = mask[3, 7:] = False
    x = {"video": rng.normal(size=(4, T, D)), "audio": rng.normal(size=(4, T, A)),
         "thumbs": rng.uniform(0, 255, (4, T, 32, 32, 3))}
    x = {k: v.astype(np.float32) for k, v in x.items()}
    for v in x.values():
        v[~mask] = 0
    return x | {"mask": mask}


def _repadded(x: dict, seed: int) -> dict:
    """The same clips with other values (large ones) on their padded steps."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in x.items()}
    pad = ~x["mask"]
    for k in ("video", "audio"):
        out[k][pad] = rng.normal(7.0, 50.0, out[k][pad].shape)
    out["thumbs"][pad] = rng.uniform(0, 255, out["thumbs"][pad].shape)
    return out


def _predict(model, x: dict) -> np.ndarray:
    import keras

    names = [t.name.split(":")[0] for t in keras.tree.flatten(model.inputs)]
    return keras.ops.convert_to_numpy(model({n: x[n] for n in names}, training=False))


def _assert_masks_padding(model, real_input: str):
    x = _inputs()
    out = _predict(model, x)
    assert out.shape == (4, 6) and np.all(np.isfinite(out))
    for seed in (1, 2):
        np.testing.assert_allclose(_predict(model, _repadded(x, seed)), out, rtol=0, atol=1e-5,
                                   err_msg=f"{model.name}: the padded steps' values changed the output")
    moved = {k: v.copy() for k, v in x.items()}  # not vacuous: a real step does count
    moved[real_input][:, 0] += 100.0 if real_input == "thumbs" else 3.0
    assert np.abs(_predict(model, moved) - out).max() > 1e-6, f"{model.name} ignores its real steps"


def _round_trip(model, tmp_path):
    import keras

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return keras.saving.load_model(path, compile=False)


@pytest.mark.parametrize("method", SEQUENCE_METHODS)
def test_registry_models_ignore_padded_steps(method, tmp_path):
    model = build_model(method, PROFILE, _inputs())
    real_input = next(i for i in METHODS[method].inputs if i != "mask")
    _assert_masks_padding(model, real_input)
    _assert_masks_padding(_round_trip(model, tmp_path), real_input)


def test_late_fusion_ignores_padded_steps(tmp_path):
    x = _inputs()
    model = late_fusion_model(build_model("lstm_pool", PROFILE, x), build_model("audio_only", PROFILE, x))
    for real_input in ("video", "audio"):
        _assert_masks_padding(model, real_input)
    _assert_masks_padding(_round_trip(model, tmp_path), "video")


def _two_layer_lstm(seq_len=T, units=6):
    """Notebook 05's deep model (``lstm_model(..., depth=2)``): a lower LSTM hands its whole sequence to
    an upper one, and each is given the mask explicitly."""
    import keras
    from keras import layers

    feats = keras.Input((seq_len, D), name="video")
    mask = keras.Input((seq_len,), dtype="bool", name="mask")
    x = layers.Normalization(mean=np.zeros(D), variance=np.ones(D))(feats)
    x = layers.LSTM(units, return_sequences=True, name="lstm_lower")(x, mask=mask)  # (unnamed in the notebook)
    x = layers.LSTM(units, name="lstm")(x, mask=mask)
    x = layers.Dense(8, activation="relu")(layers.Dropout(0.2)(x))
    return keras.Model({"video": feats, "mask": mask}, layers.Dense(6, activation="softmax", name="genre")(x),
                       name="deep_lstm")


def test_two_layer_lstm_ignores_padded_steps(tmp_path):
    model = _two_layer_lstm()
    _assert_masks_padding(model, "video")
    _assert_masks_padding(_round_trip(model, tmp_path), "video")


def test_a_padded_clip_reads_as_its_real_steps_alone():
    """The clip padded after 5 steps gives what its 5 real steps give to the same model made for 5
    steps: the upper LSTM's last state is the one of the last real step, not of the padding."""
    model, short = _two_layer_lstm(), _two_layer_lstm(seq_len=5)
    short.set_weights(model.get_weights())
    x = _inputs()
    cut = {"video": x["video"][:1, :5], "mask": x["mask"][:1, :5]}
    np.testing.assert_allclose(_predict(model, x)[:1], _predict(short, cut), rtol=0, atol=1e-5)
