"""Keras on any backend: models saved under one backend predict the same under another; gradients
and devices through one helper per backend."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.backends import backend_name, describe, input_gradient, training_scope

FIXTURES = Path(__file__).parent / "fixtures"
SAVED = sorted(FIXTURES.glob("models_*"))


def test_fixtures_from_every_backend_are_present():
    assert {p.name for p in SAVED} == {"models_tensorflow", "models_jax", "models_torch"}


@pytest.mark.parametrize("saved", SAVED, ids=lambda p: p.name.removeprefix("models_"))
def test_a_model_saved_under_one_backend_predicts_the_same_under_this_one(saved):
    """tests/fixtures/make_backend_models.py wrote these folders and outputs under each backend."""
    from helpers.train import load_model_dir

    check = np.load(saved / "check.npz")
    x = {"video": check["video"], "audio": check["audio"], "mask": check["mask"]}
    fusion = load_model_dir(saved / "late_fusion")
    assert fusion.config["backend"] == saved.name.removeprefix("models_")
    assert np.allclose(fusion.predict(x), check["late_fusion"], atol=1e-5)
    assert np.allclose(fusion.branch("video").predict(x), check["late_fusion_video_branch"], atol=1e-5)
    softmax = load_model_dir(saved / "lstm_softmax")
    assert softmax.head is not None
    assert np.allclose(softmax.predict(x | {"video": check["softmax_video"]}), check["lstm_softmax"], atol=1e-5)


def test_describe_names_the_backend_and_its_devices():
    info = describe()
    assert info["backend"] == backend_name() and info["devices"]
    assert info["framework_version"] != "unknown"
    with training_scope():  # one device here: a plain block
        pass


def test_input_gradient_matches_finite_differences():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32)
    grad, out = input_gradient(model, x)
    assert grad.shape == x.shape and out.shape == (2, 3)

    def top(v):
        return keras.ops.convert_to_numpy(model(v[None], training=False))[0].max()

    eps = 1e-3
    for i in range(2):
        numeric = [(top(x[i] + eps * e) - top(x[i] - eps * e)) / (2 * eps) for e in np.eye(5, dtype=np.float32)]
        assert np.allclose(grad[i], numeric, atol=2e-3)
