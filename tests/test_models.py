"""Every model builds and trains a step; masking; saved model directories round-trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import models
from helpers.course import lstm_training as course
from helpers.config import get_profile
from helpers.models import METHODS, get_method
from helpers.train import TrainedModel, build_model, load_model_dir, reuse_model, train_late_fusion, train_model

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


@pytest.fixture(scope="module")
def head_file(tmp_path_factory):
    """A softmax head over D-dimensional features, saved as a file."""
    path = tmp_path_factory.mktemp("head") / "head.keras"
    from helpers.backbone import build_softmax_head

    build_softmax_head(D).save(path)
    return path


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if spec.build is not None])
def test_every_trained_method_builds_and_trains_a_step(method, tmp_path, head_file):
    x, y = tiny_inputs()
    head = None
    if get_method(method).feature == "softmax":
        import keras

        from helpers.features import softmax_features

        head = keras.models.load_model(head_file)
        x = x | {"video": softmax_features(head, x["video"].reshape(-1, D)).reshape(len(y), T, -1)}
    out = train_model(method, (x, y), (x, y), tmp_path / method, profile=PROFILE,
                      head_file=head_file if head is not None else None)
    trained = load_model_dir(out)
    probs = trained.predict(x)
    assert probs.shape == (12, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
    from helpers.backends import backend_name

    config = json.loads((out / "config.json").read_text())
    assert (out / "log.csv").exists() and config["method"] == method and config["backend"] == backend_name()


def test_late_fusion_averages_the_branches(tmp_path):
    x, y = tiny_inputs()
    video = train_model("lstm_pool", (x, y), (x, y), tmp_path / "v", profile=PROFILE)
    audio = train_model("audio_only", (x, y), (x, y), tmp_path / "a", profile=PROFILE)
    fused = load_model_dir(train_late_fusion(video, audio, tmp_path / "f"))
    expected = (load_model_dir(video).predict(x) + load_model_dir(audio).predict(x)) / 2
    assert np.allclose(fused.predict(x), expected, atol=1e-5)


def test_masking_changes_nothing_for_unpadded_input():
    import keras

    model = course.lstm_model(T, D, units=5, dense_units=4, dropout=0.0)
    x, _ = tiny_inputs()
    full = {"video": x["video"][1:3], "mask": np.ones((2, T), bool)}
    plain = keras.layers.LSTM(5)
    plain.build((None, T, D))
    plain.set_weights(model.get_layer("lstm").get_weights())
    lstm_out = keras.Model(model.inputs, model.get_layer("lstm").output)
    assert np.allclose(lstm_out.predict(full, verbose=0), keras.ops.convert_to_numpy(plain(full["video"])), atol=1e-5)


def test_padded_steps_are_ignored():
    model = course.lstm_model(T, D, units=5, dense_units=4, dropout=0.0)
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
    with pytest.raises(ValueError, match="lstm_pool, audio_only"):
        build_model("late_fusion", PROFILE, x)


def test_registry_describes_every_method():
    assert list(METHODS)[:6] == ["single_frame", "frame_average", "mlp", "conv3d", "lstm_softmax", "lstm_pool"]
    for name, spec in METHODS.items():
        assert (spec.build is not None) + bool(spec.same_model_as) + bool(spec.parts) == 1, name
        assert set(spec.inputs) <= {"video", "audio", "mask", "thumbs"} and spec.batch_size > 0
        assert spec.per_frame == bool(spec.frame_pooling)
        assert all(p in METHODS for p in spec.parts)
    assert get_method("lstm_softmax").feature == "softmax" and get_method("frame_average").same_model_as == "single_frame"


def test_model_folders_can_move(tmp_path, head_file):
    """Copy the models elsewhere, remove the originals: they still load and predict the same."""
    import shutil

    import keras

    from helpers.features import softmax_features

    x, y = tiny_inputs()
    head = keras.models.load_model(head_file)
    xs = x | {"video": softmax_features(head, x["video"].reshape(-1, D)).reshape(len(y), T, -1)}
    run = tmp_path / "run"
    train_model("lstm_softmax", (xs, y), (xs, y), run / "lstm_softmax", profile=PROFILE, head_file=head_file)
    video = train_model("lstm_pool", (x, y), (x, y), run / "lstm_pool", profile=PROFILE)
    audio = train_model("audio_only", (x, y), (x, y), run / "audio_only", profile=PROFILE)
    fused = train_late_fusion(video, audio, run / "late_fusion")
    average = reuse_model(train_model("single_frame", (x, y), (x, y), run / "single_frame", profile=PROFILE),
                          "frame_average", run / "frame_average")
    before = {p.name: load_model_dir(p).predict(x) for p in (fused, average)}
    before_video = load_model_dir(video).predict(x)
    shutil.copytree(run, tmp_path / "moved")
    shutil.rmtree(run)
    moved = {name: load_model_dir(tmp_path / "moved" / name) for name in ("lstm_softmax", "late_fusion", "frame_average")}
    assert moved["lstm_softmax"].head is not None
    assert np.allclose(moved["lstm_softmax"].head.predict(x["video"][0], verbose=0),
                       head.predict(x["video"][0], verbose=0), atol=1e-6)
    for name in ("late_fusion", "frame_average"):
        assert np.allclose(moved[name].predict(x), before[name], atol=1e-5)
    assert np.allclose(moved["late_fusion"].branch("video").predict(x), before_video, atol=1e-5)
    for path in (tmp_path / "moved").rglob("config.json"):
        assert str(run) not in path.read_text() and str(tmp_path) not in path.read_text()


def test_class_weights_for_unbalanced_labels():
    from helpers.train import class_weights

    assert class_weights(np.repeat(np.arange(6), 3)) is None
    weights = class_weights(np.array([0, 0, 0, 0, 1, 2, 3, 4, 5]))
    assert weights[0] < weights[1]


@pytest.mark.parametrize("method", ["lstm_pool", "early_fusion"])
def test_same_seed_same_model(method, tmp_path):
    """Determinism: training twice with one seed on one machine gives the same weights and predictions;
    another seed gives others (so the test can fail)."""
    x, y = tiny_inputs()
    prof = get_profile("smoke", lstm_units=8, dense_units=8, epochs=3, patience=3)
    runs = [load_model_dir(train_model(method, (x, y), (x, y), tmp_path / f"{method}_{k}", profile=prof, seed=s))
            for k, s in enumerate([1, 1, 2])]
    first, again, other = (r.predict(x) for r in runs)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_drawing_follows_the_model_graph():
    """helpers.plots.draw_model draws one box per layer and an arrow per connection (notebook 05)."""
    import matplotlib
    matplotlib.use("Agg")
    from helpers.course.lstm_training import early_fusion_model
    from helpers.plots import draw_model, model_graph

    model = early_fusion_model(8, 20, 5, units=4, dense_units=8, dropout=0.5,
                               stats=((np.zeros(20), np.ones(20)), (np.zeros(5), np.ones(5))))
    graph = model_graph(model)
    assert set(graph) == {layer.name for layer in model.layers}
    concat = "video_and_audio"
    assert graph[concat] == ["standardise_video", "standardise_audio"]
    assert set(graph["lstm"]) == {concat, "mask"}
    fig = draw_model(model)
    ax = fig.axes[0]
    boxes = [t for t in ax.texts if t.get_text()]
    arrows = [t for t in ax.texts if not t.get_text()]  # annotate("") draws an arrow only
    assert len(boxes) == len(graph) and len(arrows) == sum(len(parents) for parents in graph.values())
