"""Every model builds and trains a step; masking; saved model directories round-trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import models
from helpers.config import get_profile
from helpers.train import METHODS, TrainedModel, build_model, load_model_dir, train_late_fusion, train_model

T, D, A = 6, 10, 4


def tiny_inputs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((n, T), bool)
    mask[::3, 4:] = False  # some clips shorter than a sequence
    x = {"video": rng.normal(size=(n, T, D)).astype(np.float32), "audio": rng.normal(size=(n, T, A)).astype(np.float32),
         "mask": mask, "thumbs": rng.integers(0, 255, (n, T, 32, 32, 3)).astype(np.uint8)}
    for k in ("video", "audio"):
        x[k][~mask] = 0
    return x, np.arange(n) % 6


PROFILE = get_profile("smoke", lstm_units=8, dense_units=8, epochs=1, patience=1)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "late_fusion"])
def test_every_model_builds_and_trains_a_step(method, tmp_path):
    x, y = tiny_inputs()
    out = train_model(method, (x, y), (x, y), tmp_path / method, profile=PROFILE)
    trained = load_model_dir(out)
    probs = trained.predict(x)
    assert probs.shape == (12, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (out / "log.csv").exists() and json.loads((out / "config.json").read_text())["method"] == method


def test_late_fusion_averages_the_branches(tmp_path):
    x, y = tiny_inputs()
    video = train_model("lstm_pool", (x, y), (x, y), tmp_path / "v", profile=PROFILE)
    audio = train_model("audio_only", (x, y), (x, y), tmp_path / "a", profile=PROFILE)
    fused = load_model_dir(train_late_fusion(video, audio, tmp_path / "f"))
    expected = (load_model_dir(video).predict(x) + load_model_dir(audio).predict(x)) / 2
    assert np.allclose(fused.predict(x), expected, atol=1e-5)


def test_masking_changes_nothing_for_unpadded_input():
    import keras

    model = models.build_lstm_classifier(T, D, units=5, dense_units=4, dropout=0.0)
    x, _ = tiny_inputs()
    full = {"video": x["video"][1:3], "mask": np.ones((2, T), bool)}
    plain = keras.layers.LSTM(5)
    plain.build((None, T, D))
    plain.set_weights(model.get_layer("lstm").get_weights())
    lstm_out = keras.Model(model.inputs, model.get_layer("lstm").output)
    assert np.allclose(lstm_out.predict(full, verbose=0), np.asarray(plain(full["video"])), atol=1e-5)


def test_padded_steps_are_ignored():
    model = models.build_lstm_classifier(T, D, units=5, dense_units=4, dropout=0.0)
    x, _ = tiny_inputs()
    short = {"video": x["video"][:1].copy(), "mask": x["mask"][:1]}
    noisy = {"video": short["video"].copy(), "mask": short["mask"]}
    noisy["video"][0, 4:] = 123.0  # garbage where the mask says padding
    assert np.allclose(model.predict(short, verbose=0), model.predict(noisy, verbose=0), atol=1e-6)


def test_frame_methods_aggregate_over_real_frames(tmp_path):
    x, y = tiny_inputs()
    out = train_model("single_frame", (x, y), (x, y), tmp_path / "sf", profile=PROFILE)
    single = load_model_dir(out)
    average = TrainedModel(single.path, single.model, single.config | {"method": "frame_average"}, single.labels)
    per_frame = single.model.predict(x["video"][0][x["mask"][0]], verbose=0)
    assert np.allclose(average.predict(x)[0], per_frame.mean(0), atol=1e-5)
    assert np.allclose(single.predict(x)[0], per_frame[(len(per_frame) - 1) // 2], atol=1e-5)


def test_unknown_method_is_refused():
    x, _ = tiny_inputs()
    with pytest.raises(ValueError, match="unknown method"):
        build_model("transformer", PROFILE, x)


def test_class_weights_for_unbalanced_labels():
    from helpers.train import _class_weights

    assert _class_weights(np.repeat(np.arange(6), 3)) is None
    weights = _class_weights(np.array([0, 0, 0, 0, 1, 2, 3, 4, 5]))
    assert weights[0] < weights[1]
