"""Weights policy, the backbone, the feature cache: keys, resumption, sharding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.backbone import Backbone, load_backbone, preprocess, train_softmax_head
from helpers.config import get_profile
from helpers.manifest import read_manifest
from helpers.weights import WEIGHTS_FILE, WEIGHTS_URL, WeightsError, WeightsStatus, resolve_weights
from helpers.features import (extract_features, feature_key, feature_settings, in_shard, load_feature_file,
                              parse_shard)


@pytest.fixture(autouse=True)
def empty_keras_home(monkeypatch, tmp_path):
    """No cached ImageNet weights, whatever the machine has."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("VGENRE_WEIGHTS", raising=False)


def test_offline_smoke_falls_back_to_random_loudly():
    status = resolve_weights("smoke")
    assert status.source == "random" and not status.pretrained
    assert "RANDOMLY INITIALISED" in status.message


def test_offline_full_stops_with_file_url_and_place():
    with pytest.raises(WeightsError) as err:
        resolve_weights("full")
    message = str(err.value)
    assert WEIGHTS_FILE in message and WEIGHTS_URL in message and "VGENRE_WEIGHTS" in message
    assert "keras_home" in message  # where to put it: Keras' cache under KERAS_HOME


def test_named_weights_file_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("VGENRE_WEIGHTS", str(tmp_path / "missing.h5"))
    with pytest.raises(WeightsError, match="missing.h5"):
        resolve_weights("smoke")


def test_weights_loaded_from_a_file_the_test_writes(monkeypatch, tmp_path):
    import keras

    keras.utils.set_random_seed(99)  # different from the backbone's own seed
    donor = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg", input_shape=(75, 75, 3))
    path = tmp_path / "donor.weights.h5"
    donor.save_weights(path)
    monkeypatch.setenv("VGENRE_WEIGHTS", str(path))
    status = resolve_weights("smoke")
    assert status.source == "file" and status.weights_id.startswith("file-")
    backbone = Backbone(75, status)
    frames = np.random.default_rng(0).integers(0, 255, (3, 75, 75, 3), dtype=np.uint8)
    expected = np.asarray(donor.predict(preprocess(frames), verbose=0))
    assert np.allclose(backbone.pool_features(frames, batch_size=4), expected, atol=1e-5)
    random_backbone = Backbone(75, WeightsStatus("random", None, "random-1234", ""))
    assert not np.allclose(random_backbone.pool_features(frames, batch_size=4), expected, atol=1e-5)


def test_pool_features_shape_dtype_and_resizing():
    backbone = load_backbone("smoke", verbose=False)
    feats = backbone.pool_features(np.zeros((5, 40, 60, 3), np.uint8), batch_size=4)
    assert feats.shape == (5, 2048) and feats.dtype == np.float32


def test_softmax_head_checkpoints_every_m_steps(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 16)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    head, history = train_softmax_head(x, y, x[:20], y[:20], tmp_path, steps=30, checkpoint_every=10, batch_size=16)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [f"ckpt_step{s:05d}.weights.h5" for s in (10, 20, 30)]
    from helpers.backends import tensorboard_available

    assert (tmp_path / "log.csv").exists() and (tmp_path / "tensorboard").exists() == tensorboard_available()
    assert len(history["loss"]) == 3 and head.output_shape == (None, 6)
    # a second, shorter training in the same folder leaves only its own checkpoints
    train_softmax_head(x, y, x[:20], y[:20], tmp_path, steps=20, checkpoint_every=20, batch_size=16)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_step00020.weights.h5"]


def test_cache_key_changes_with_every_setting():
    prof = get_profile("smoke")
    base = feature_settings(prof, {"backbone": "InceptionV3", "weights": "random-1234", "input_size": 75,
                                   "precision": "float32"})
    keys = {feature_key("abc", base), feature_key("abd", base)}
    for change in ({"input_size": 99}, {"weights": "file-1"}, {"fps": 2.0}, {"precision": "bfloat16"}, {"n_mels": 8}):
        keys.add(feature_key("abc", base | change))
    assert len(keys) == 7


def test_shards_cover_every_key_once():
    keys = [f"{i:024x}" for i in range(0, 10**6, 7919)]
    for n in (1, 2, 3, 5):
        owners = [[i for i in range(n) if in_shard(k, (i, n))] for k in keys]
        assert all(len(o) == 1 for o in owners)
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("four")
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("4/4")


@pytest.fixture()
def small_manifest(smoke_manifest):
    rows = [r for r in read_manifest(smoke_manifest) if r["split"] != "hard"]
    return rows[::10][:5]


def test_features_shapes_and_resume_after_interruption(small_manifest, tmp_path, monkeypatch):
    import helpers.features as features

    prof = get_profile("smoke")
    backbone = load_backbone(prof, verbose=False)
    clean = extract_features(small_manifest, backbone, prof, root=tmp_path / "clean", progress=False)
    calls = {"n": 0}
    real_save = features.save_atomic

    def crash_on_third(path, **arrays):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        real_save(path, **arrays)

    monkeypatch.setattr(features, "save_atomic", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract_features(small_manifest, backbone, prof, root=tmp_path / "resumed", progress=False)
    assert len(list((tmp_path / "resumed").rglob("*.npz"))) == 2
    assert not list((tmp_path / "resumed").rglob("*partial*"))
    monkeypatch.setattr(features, "save_atomic", real_save)
    again = extract_features(small_manifest, backbone, prof, root=tmp_path / "resumed", progress=False)
    assert [r["status"] for r in again].count("cached") == 2 and [r["status"] for r in again].count("written") == 3
    for a, b in zip(clean, again):
        fa, fb = load_feature_file(a["file"]), load_feature_file(b["file"])
        assert Path(a["file"]).name == Path(b["file"]).name
        assert np.allclose(fa["pool"], fb["pool"], atol=1e-5) and np.array_equal(fa["audio"], fb["audio"])
    f = load_feature_file(clean[0]["file"])
    n = int(prof.clip_seconds * prof.sample_fps)
    assert f["pool"].shape == (n, 2048) and f["pool"].dtype == np.float32
    assert f["audio"].shape == (n, prof.n_mels) and f["thumbs"].shape == (n, 32, 32, 3) and bool(f["has_audio"])


def test_sharded_extraction_splits_the_work(small_manifest, tmp_path):
    prof = get_profile("smoke")
    backbone = load_backbone(prof, verbose=False)
    done = []
    for i in range(3):
        done += [r["path"] for r in extract_features(small_manifest, backbone, prof, root=tmp_path, shard=(i, 3),
                                                     progress=False)]
    assert sorted(done) == sorted({str(Path(r["_root"]) / r["path"]) for r in small_manifest})


def test_bad_clip_is_recorded_and_the_batch_goes_on(small_manifest, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    rows = small_manifest[:1] + [{"path": str(bad), "genre": "Action", "status": "ok"}]
    out = extract_features(rows, load_backbone("smoke", verbose=False), "smoke", root=tmp_path / "c", progress=False)
    assert out[0]["status"] == "written" and out[1]["status"].startswith("bad: ") and "broken.mp4" in out[1]["status"]


def test_fine_tuning_moves_only_the_top_blocks_of_a_copy():
    from helpers.backbone import build_softmax_head, fine_tune_top_blocks

    backbone = Backbone(75, WeightsStatus("random", None, "random-1234", ""))  # not the shared cached one
    head = build_softmax_head()
    before = {l.name: [w.copy() for w in l.get_weights()] for l in backbone.model.layers if l.get_weights()}
    frames = np.random.default_rng(0).integers(0, 255, (4, 75, 75, 3), dtype=np.uint8)
    tuned, history = fine_tune_top_blocks(backbone, head, frames, np.array([0, 1, 2, 3]), blocks_from="mixed9",
                                          batch_size=4, learning_rate=0.1)
    assert len(history["loss"]) == 1

    def changed(model):
        return {name for name, ws in before.items()
                if any(not np.allclose(a, b) for a, b in zip(ws, model.get_layer(name).get_weights()))}

    names = [l.name for l in backbone.model.layers]
    top = set(names[names.index("mixed9"):])  # the last Inception block
    assert changed(tuned.model) and changed(tuned.model) <= top
    assert not changed(backbone.model)  # the backbone passed in (and any cache of its features) is untouched
    assert tuned.status.weights_id.startswith("random-1234+ft-") and tuned.key != backbone.key
    assert not any(l.trainable for l in tuned.model.layers)
    with pytest.raises(ValueError, match="mixed0"):
        fine_tune_top_blocks(backbone, head, frames, np.zeros(4, int), blocks_from="nope")


def test_a_weights_file_is_hashed_once_and_no_network_probe_is_made(monkeypatch, tmp_path):
    import helpers.weights as weights

    path = tmp_path / "w.h5"
    path.write_bytes(b"x" * 1000)
    monkeypatch.setenv("VGENRE_WEIGHTS", str(path))
    monkeypatch.setattr(weights, "_online", lambda *a, **k: pytest.fail("probed the network with a file at hand"))
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: (reads.append(str(f)), real_open(f, *a, **k))[1])
    ids = {resolve_weights("full").weights_id for _ in range(3)}
    assert len(ids) == 1 and reads.count(str(path.resolve())) == 1
    path.write_bytes(b"y" * 1001)  # a new version of the file is hashed again
    assert resolve_weights("full").weights_id not in ids


def test_an_fps_override_reaches_extraction(smoke_ctx, smoke_manifest):
    from helpers.context import start_run
    from helpers.pipeline import dataset_dir, ensure_features

    four = ensure_features(smoke_ctx, progress=False)
    two_ctx = start_run("tests", profile=get_profile("smoke", sample_fps=2.0), run_dir=smoke_ctx.run_dir, verbose=False)
    two = ensure_features(two_ctx, progress=False)
    assert len(two) == len(four)
    n4, n2 = (int(np.median([len(p) for p in c.pool])) for c in (four, two))
    assert n4 == int(smoke_ctx.profile.clip_seconds * 4.0) and n2 == int(smoke_ctx.profile.clip_seconds * 2.0)
    assert np.allclose(np.diff(two.meta[0]["timestamps"]), 0.5)
    assert ensure_features(smoke_ctx, progress=False) is four  # the in-process cache is keyed by the settings
    # the synthetic set depends on generation settings only: same folder for another fps, not for more clips
    data = smoke_ctx.data_dir
    assert dataset_dir(two_ctx.profile, data) == dataset_dir(smoke_ctx.profile, data) == smoke_manifest.parent
    assert dataset_dir(get_profile("smoke", clips_per_film=3), data) != smoke_manifest.parent
