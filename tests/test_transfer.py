"""Notebook 04's comparisons: which backbone rows a run can compute, the preprocessing slip, film clumps."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.backbone import Backbone
from helpers.transfer import ROWS, WashedBackbone, film_neighbours, plan_rows, wash
from helpers.weights import WEIGHTS_FILE, WeightsStatus, random_status


def test_offline_runs_only_the_random_row_and_says_how_to_get_the_others():
    plans = plan_rows(random_status("smoke"))
    assert [p.name for p in plans] == list(ROWS)
    assert [p.runnable for p in plans] == [True, False, False]
    for p in plans[1:]:
        assert WEIGHTS_FILE in p.why_not and "VGENRE_WEIGHTS" in p.why_not


def test_with_pretrained_weights_every_row_runs():
    status = WeightsStatus("file", "/some/where.h5", "file-abc", "ImageNet weights from a file")
    assert all(p.runnable and not p.why_not for p in plan_rows(status))


def test_the_slip_is_what_a_0_1_scaling_looks_like_to_the_network():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, -1)
    washed = wash(x)
    seen = washed.astype(np.float32) / 127.5 - 1  # the extractor's first layer
    assert np.abs(seen - x / 255.0).max() <= 0.5 / 127.5 + 1e-6  # [0, 1] where [-1, 1] was expected
    assert washed.min() == 128 and washed.max() == 255  # half the contrast, all in the upper half
    with pytest.raises(ValueError, match="uint8"):
        wash(x.astype(np.float32))


def test_washed_backbone_feeds_washed_frames_and_caches_apart():
    backbone = Backbone(75, random_status("smoke"))
    washed = WashedBackbone(backbone)
    frames = np.random.default_rng(0).integers(0, 255, (3, 75, 75, 3), dtype=np.uint8)
    assert washed.key != backbone.key and washed.input_size == 75
    assert np.allclose(washed.pool_features(frames, batch_size=4), backbone.pool_features(wash(frames), batch_size=4))
    assert not np.allclose(washed.pool_features(frames, batch_size=4), backbone.pool_features(frames, batch_size=4))


def test_film_neighbours_find_sister_clips_not_the_frames_of_the_same_clip():
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(24), 10)          # 24 clips of 10 frames
    films = clips // 2                            # 12 films of 2 clips
    genres = films // 4                           # 3 genres of 4 films
    genre_centre = rng.normal(size=(3, 8)) * 10
    film_offset = rng.normal(size=(12, 8)) * 3
    clip_offset = rng.normal(size=(24, 8)) * 3
    noise = rng.normal(size=(240, 8)) * 0.3
    by_film = genre_centre[genres] + film_offset[films] + noise    # sister clips alike
    by_clip = genre_centre[genres] + clip_offset[clips] + noise    # each clip its own look, films interchangeable
    a = film_neighbours(by_film, films, genres, clips, k=5)
    b = film_neighbours(by_clip, films, genres, clips, k=5)
    assert a["same_film"] > 0.9 and a["same_film"] > 3 * a["same_film_if_mixed"]
    # tight clips of one look each: without leaving the clip out, every neighbour would be "same film"
    assert b["same_film"] < 2 * b["same_film_if_mixed"]
    assert b["same_film_if_mixed"] == pytest.approx(10 / 70, abs=0.03)
    assert a["same_film"] + a["same_genre_other_film"] > 0.95  # genres still separate


def test_with_weights_the_notebook_runs_every_row_and_records_verdicts(monkeypatch, tmp_path, smoke_manifest):
    """Notebook 04 with a weights file (a stand-in for ImageNet's, offline): the frozen and fine-tuned
    rows run beside the random one, each with an interval, and the paired verdicts are recorded."""
    import keras

    from helpers.runner import run_series

    keras.utils.set_random_seed(7)
    donor = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg", input_shape=(75, 75, 3))
    path = tmp_path / "stand_in.weights.h5"
    donor.save_weights(path)
    monkeypatch.setenv("VGENRE_WEIGHTS", str(path))  # the kernel inherits it
    out, results = run_series("smoke", only=["04"], out=tmp_path / "run")
    assert results[0].status == "ok", results[0].error
    m = results[0].metrics
    assert m["pretrained"] is True and m["weights_source"] == "file"
    assert m["transfer_rows_run"] == list(ROWS) and m["transfer_rows_not_run"] == []
    for name in ROWS:
        low, high = m[f"transfer_clip_acc_{name}_ci"]
        assert low <= m[f"transfer_clip_acc_{name}"] <= high
    assert m["verdict_transfer_imagenet_frozen_vs_random"] in ("ahead", "behind", "not distinguishable")
    assert m["verdict_transfer_imagenet_finetuned_vs_imagenet_frozen"] in ("ahead", "behind", "not distinguishable")
    assert (out / "models" / "transfer" / "imagenet_finetuned" / "lstm_pool" / "model.keras").exists()
    assert (out / "figures" / "04_tsne_by_weights.png").exists()
