"""Notebook 04 teaches by building: the frozen InceptionV3, its preprocessing, the softmax head and its
training are the notebook's ``# @save`` cells, the helpers run that copy, and the head trained in view
is the run's head."""
from __future__ import annotations

import numpy as np

from helpers.course import inceptionv3_transfer_learning as course

SAVED = ("POOL_DIM", "inception_v3_bottleneck", "preprocess", "uint8_extractor", "frame_examples",
         "bottleneck_stats", "build_softmax_head", "shuffled_batches", "fit_softmax_head")


def test_the_helpers_hand_on_the_saved_cells_not_a_copy():
    import helpers.backbone as backbone

    for name in SAVED:
        assert getattr(backbone, name) is getattr(course, name), name
    for name in SAVED[1:]:
        assert getattr(course, name).__module__ == "helpers.course.inceptionv3_transfer_learning", name


def test_the_backbone_is_built_by_the_saved_cell(monkeypatch):
    """A change to the saved ``inception_v3_bottleneck`` is what the helpers build."""
    from helpers.backbone import Backbone
    from helpers.weights import random_status

    calls = []
    original = course.inception_v3_bottleneck

    def spy(input_size, weights=None):
        calls.append((input_size, weights))
        return original(input_size, weights)

    monkeypatch.setattr(course, "inception_v3_bottleneck", spy)
    backbone = Backbone(75, random_status("smoke"))
    assert calls == [(75, None)]
    assert backbone.model.output_shape == (None, course.POOL_DIM)
    assert backbone.model.trainable_weights == []  # frozen: nothing below the bottleneck learns


def test_a_frozen_network_gives_the_same_bottlenecks_every_time_so_caching_is_exact():
    from helpers.backbone import load_backbone

    backbone = load_backbone("smoke", verbose=False, precision="float32")
    frames = np.random.default_rng(1).integers(0, 256, (6, 75, 75, 3), dtype=np.uint8)
    once = backbone.pool_features(frames, batch_size=4)
    assert np.array_equal(once, backbone.pool_features(frames, batch_size=4))
    # the scaling inside the extractor is the saved preprocessing
    direct = np.asarray(backbone.model.predict(course.preprocess(frames), verbose=0))
    np.testing.assert_allclose(once, direct, rtol=1e-4, atol=1e-4)
    assert course.preprocess(np.array([0, 255])).tolist() == [-1.0, 1.0]


def _bottlenecks(n=240, d=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, n)
    x = (rng.normal(size=(n, d)) + y[:, None] * 0.5).astype(np.float32)
    return x, y


def test_the_head_trained_in_view_is_the_one_the_pipeline_keeps_and_loads(tmp_path):
    """Notebook 04's training cell (start_head, the saved builder and fit, keep_head) gives the head
    ``train_softmax_head`` gives for the same seed and data, and ``ensure_head`` then loads it instead
    of training another."""
    import keras

    from helpers.backbone import keep_head, start_head, train_softmax_head
    from helpers.backends import seed_everything, training_scope
    from helpers.context import start_run
    from helpers.pipeline import ensure_head

    ctx = start_run("t04", profile="smoke", run_dir=tmp_path / "run", verbose=False)
    P = ctx.profile
    x, y = _bottlenecks()
    settings = dict(steps=P.head_steps, checkpoint_every=P.head_checkpoint_every, batch_size=P.head_batch)
    stale = ctx.models_dir / "softmax_head" / "checkpoints" / "ckpt_step99999.weights.h5"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier head")

    folder = start_head(ctx)
    mean, variance = course.bottleneck_stats(x)
    seed_everything(0)
    with training_scope():
        head = course.build_softmax_head(x.shape[1], mean=mean, variance=variance)
        course.fit_softmax_head(head, (x, y), (x[:40], y[:40]), folder / "checkpoints", **settings)
    keep_head(ctx, head, **settings)

    reference, _ = train_softmax_head(x, y, x[:40], y[:40], tmp_path / "helper", **settings)
    for a, b in zip(head.get_weights(), reference.get_weights()):
        assert np.array_equal(a, b)
    steps = range(P.head_checkpoint_every, P.head_steps + 1, P.head_checkpoint_every)
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [f"ckpt_step{s:05d}.weights.h5" for s in steps]

    loaded = ensure_head(ctx, None)  # no clips: it must load the kept head, not train one
    assert isinstance(loaded, keras.Model)
    for a, b in zip(loaded.get_weights(), head.get_weights()):
        assert np.array_equal(a, b)


def test_shuffled_batches_count_steps_across_epochs_and_reshuffle_each_pass():
    x, y = np.arange(10)[:, None], np.arange(10)
    batches = course.shuffled_batches(x, y, batch_size=4, steps=3, seed=0)
    assert len(batches) == 3
    drawn = np.concatenate([batches[i][1] for i in range(5)])  # 20 labels: two whole passes
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:]) == list(range(10))
    assert not np.array_equal(drawn[:10], drawn[10:])


def test_every_frame_is_one_example_with_its_clips_genre():
    class Clips:
        pool = [np.ones((3, 4)), np.zeros((2, 4))]
        y = np.array([1, 4])

    x, y = course.frame_examples(Clips)
    assert x.shape == (5, 4) and y.tolist() == [1, 1, 1, 4, 4]
    mean, var = course.bottleneck_stats(x)
    assert np.allclose(mean, 0.6) and np.all(var > 0)
