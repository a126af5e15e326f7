"""`vgenre predict`: good files, short clips, clips without audio, bad files, the JSON schema."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import train_tiny_late_fusion, write_clip
from helpers.config import GENRES, get_profile
from helpers.synth import make_film, render_audio, render_frames, write_video

@pytest.fixture(scope="module")
def model_dir(smoke_run):
    return smoke_run / "models" / "late_fusion_seed0"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    prof = get_profile("smoke")
    film = make_film("Romance", 7)
    frames, flashes = render_frames(film, 0, prof)
    good = write_video(d / "good clip.mp4", frames, prof.source_fps, render_audio(film, 0, prof, flashes), prof.audio_rate)
    short = write_clip(d / "short.mp4", seconds=1.5, genre="Sports")
    silent = write_clip(d / "silent.mp4", seconds=3.0, audio_rate=None, genre="Animation")
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video")
    return {"good": good, "short": short, "silent": silent, "empty": d / "empty.mp4", "text": d / "text.mp4"}


def vgenre(*args):
    return subprocess.run([sys.executable, "-m", "helpers", *map(str, args)], capture_output=True, text=True)


@pytest.mark.notebooks
def test_predict_prints_genre_probabilities_and_timeline(model_dir, videos):
    out = vgenre("predict", videos["good"], "--model", model_dir)
    assert out.returncode == 0, out.stderr
    assert str(videos["good"]) in out.stdout and "timeline:" in out.stdout
    assert any(g in out.stdout.splitlines()[0] for g in GENRES)


@pytest.mark.notebooks
def test_json_schema_and_bad_files(model_dir, videos):
    files = [videos[k] for k in ("good", "empty", "short", "text", "silent")]
    out = vgenre("predict", *files, "--model", model_dir, "--json")
    assert out.returncode == 1  # some files were bad
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["path"] for r in lines] == [str(videos[k]) for k in ("good", "short", "silent")]
    for r in lines:
        assert r["genre"] in GENRES and set(r["probabilities"]) == set(GENRES)
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4
        assert r["genre"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["timeline"] and all({"start", "end", "genre"} <= set(w) for w in r["timeline"])
        assert all(w["start"] < w["end"] for w in r["timeline"])
    good, short, silent = lines
    assert good["has_audio"] and not silent["has_audio"]
    assert "video branch alone" in silent["note"]
    assert len(short["timeline"]) == 1 and short["timeline"][0]["end"] <= 1.6
    err = out.stderr
    assert f"{videos['empty']}: file is empty" in err and f"{videos['text']}: not a readable media file" in err
    assert "Traceback" not in err


@pytest.mark.notebooks
def test_predict_without_model_uses_latest_run(model_dir, videos):
    out = vgenre("predict", videos["short"], "--profile", "smoke")
    assert out.returncode == 0, out.stderr
    assert "using the model" in out.stderr and "late_fusion_seed0" in out.stderr


def test_missing_model_directory_is_a_clear_error(tmp_path, videos):
    out = vgenre("predict", videos["good"], "--model", tmp_path)
    assert out.returncode == 1 and f"{tmp_path}: not a model folder" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.notebooks
def test_a_copied_model_folder_predicts_on_its_own(model_dir, videos, tmp_path):
    import shutil

    copy = shutil.copytree(model_dir, tmp_path / "elsewhere" / "late_fusion")
    assert str(model_dir.parent) not in (copy / "config.json").read_text()
    out = vgenre("predict", videos["silent"], videos["good"], "--model", copy, "--json")
    assert out.returncode == 0, out.stderr
    silent, good = (json.loads(line) for line in out.stdout.splitlines())
    assert "video branch alone" in silent["note"] and good["has_audio"] and not good["note"]


def test_predictor_on_a_small_late_fusion_model(tmp_path, videos):
    """Prediction end to end without the notebook series: a tiny fusion model trained on random
    features of the smoke profile's shapes, a real clip, a clip without sound."""
    from helpers.predict import Predictor

    predictor = Predictor(train_tiny_late_fusion(tmp_path))
    good = predictor.predict_file(videos["good"])
    assert good.genre in GENRES and abs(sum(good.probabilities.values()) - 1) < 1e-4 and good.has_audio
    assert good.timeline and good.duration > 0
    silent = predictor.predict_file(videos["silent"])
    assert not silent.has_audio and "video branch alone" in silent.note
    longer = write_clip(tmp_path / "longer.mp4", seconds=12.0, genre="Horror")
    together = predictor.predict_file(longer)
    predictor.WINDOWS_PER_BATCH = 2  # windows a few at a time (as for a long file): the same answer
    in_batches = predictor.predict_file(longer)
    assert len(together.timeline) > 2 and in_batches.timeline == together.timeline
    assert all(abs(in_batches.probabilities[g] - together.probabilities[g]) < 1e-5 for g in GENRES)


def test_streamed_clip_features_equal_the_cached_path(videos):
    """`predict` streams a clip through the backbone a few frames at a time; its features are those
    `vgenre features` computes from the whole decoded clip, whatever the chunk size."""
    import numpy as np

    from helpers.backbone import load_backbone
    from helpers.features import clip_features, decode_clip

    prof = get_profile("smoke")
    backbone = load_backbone(prof, verbose=False)
    whole = decode_clip(videos["good"], prof, backbone.input_size, audio_optional=True)
    for chunk in (3, 256):
        f = clip_features(videos["good"], backbone, prof, chunk_frames=chunk)
        assert f["has_audio"] and np.array_equal(f["timestamps"], whole.timestamps)
        assert np.allclose(f["pool"], backbone.pool_features(whole.frames, prof.batch_size), atol=1e-4)
        assert np.array_equal(f["thumbs"], whole.thumbs)
        assert np.abs(f["audio"] - whole.audio).max() < 1e-2
