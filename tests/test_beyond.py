"""Notebook 08: the attention and temporal-convolution models defined in its cells, and the training
entry for models outside the registry (``helpers.train.train_keras_model``)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from helpers.config import GENRES, get_profile
from helpers.train import load_model_dir, train_keras_model

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08_beyond_the_paper.ipynb"
T, D = 8, 12
PROFILE = get_profile("smoke", epochs=2, patience=1)
STATS = {"mean": np.zeros(D, np.float32), "variance": np.ones(D, np.float32)}


def _cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text())["cells"]


@pytest.fixture(scope="module")
def builders() -> dict:
    """The builder functions of the notebook's cells (lesson and solutions), executed from its JSON:
    only the imports and function definitions of each code cell, none of the cells' other statements."""
    import keras
    from keras import layers, ops

    namespace = {"keras": keras, "layers": layers, "ops": ops, "np": np, "GENRES": GENRES}
    for cell in _cells():
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        tree.body = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ImportFrom))]
        exec(compile(tree, str(NOTEBOOK), "exec"), namespace)
    return namespace


DESIGNS = {  # builder name -> the width keyword it takes
    "build_attention_classifier": "units", "build_tconv_classifier": "filters",
    "build_multihead_attention": "units", "build_dilated_tconv": "filters"}


def _build(builders, name, seq_len=T):
    return builders[name](seq_len, D, **STATS, **{DESIGNS[name]: 8}, dense_units=8, dropout=0.1)


def _inputs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((n, T), bool)
    mask[::3, T // 2:] = False  # some clips end halfway
    video = rng.normal(size=(n, T, D)).astype(np.float32)
    video[~mask] = 0
    return {"video": video, "mask": mask, "audio": rng.normal(size=(n, T, 3)).astype(np.float32)}, np.arange(n) % 6


def _probs(model, x):
    from keras import ops

    return ops.convert_to_numpy(model({"video": x["video"], "mask": x["mask"]}, training=False))


@pytest.mark.parametrize("name", DESIGNS)
def test_padded_steps_do_not_change_the_output(builders, name):
    model = _build(builders, name)
    x, _ = _inputs()
    noisy = x | {"video": np.where(x["mask"][..., None], x["video"], 100.0).astype(np.float32)}
    probs = _probs(model, x)
    assert probs.shape == (12, len(GENRES)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(_probs(model, noisy), probs, atol=1e-6)


def test_attention_weights_sum_to_one_over_real_steps_and_are_zero_on_padding(builders):
    import keras

    model = _build(builders, "build_attention_classifier")
    weights_of = keras.Model(model.inputs, model.get_layer("attention").output)
    x, _ = _inputs()
    w = _probs(weights_of, x)
    assert w.shape == (12, T)
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-5)
    assert np.all(w[~x["mask"]] == 0) and np.all(w[x["mask"]] > 0)


def test_attention_ignores_order_and_the_convolution_does_not(builders):
    """What the notebook's check prints: shuffling the real steps leaves attention's answer unchanged."""
    x, _ = _inputs()
    shuffled = x | {"video": x["video"][:, np.random.default_rng(1).permutation(T)], "mask": np.ones_like(x["mask"])}
    full = x | {"mask": np.ones_like(x["mask"])}
    attention, tconv = _build(builders, "build_attention_classifier"), _build(builders, "build_tconv_classifier")
    np.testing.assert_allclose(_probs(attention, shuffled), _probs(attention, full), atol=1e-6)
    assert np.abs(_probs(tconv, shuffled) - _probs(tconv, full)).max() > 1e-5


@pytest.mark.parametrize("name", ["build_attention_classifier", "build_tconv_classifier"])
def test_train_keras_model_trains_saves_and_reloads(builders, name, tmp_path):
    x, y = _inputs()  # with an input ("audio") the models do not take: it is left out
    out = train_keras_model(lambda: _build(builders, name), (x, y), (x, y), tmp_path / name, profile=PROFILE, seed=0)
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == name.split("_")[1] and config["seq_len"] == T and config["seed"] == 0
    assert 1 <= config["epochs_run"] <= PROFILE.epochs and config["train_seconds"] > 0 and (out / "log.csv").exists()
    trained = load_model_dir(out).model
    probs = _probs(trained, x)
    assert probs.shape == (12, len(GENRES)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # the folder says it holds a model of the notebook's own design, and predict gives it its named inputs
    assert config["custom"] is True
    np.testing.assert_allclose(load_model_dir(out).predict(x), probs, atol=1e-5)


def test_train_keras_model_is_seeded(builders, tmp_path):
    x, y = _inputs()
    runs = [_probs(load_model_dir(train_keras_model(lambda: _build(builders, "build_attention_classifier"), (x, y),
                                                    (x, y), tmp_path / f"run{k}", profile=PROFILE, seed=3)).model, x)
            for k in range(2)]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-6)


def test_notebook_has_one_parameters_cell_and_hidden_solutions():
    nb = json.loads(NOTEBOOK.read_text())
    cells = nb["cells"]
    nb05 = json.loads((NOTEBOOK.parent / "05_lstm_training.ipynb").read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["source"] == next(
        c for c in nb05 if "parameters" in c["metadata"].get("tags", []))["source"]
    assert cells[1]["source"] == nb05[1]["source"], "the Colab install cell as in notebook 05"
    assert "".join(cells[0]["source"]).startswith("# 08 · Beyond the paper: attention and temporal convolution")
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells if c["cell_type"] == "code")
    start = next(k for k, c in enumerate(cells) if "### Solutions" in "".join(c["source"]))
    solutions, summary = cells[start + 1:-1], cells[-1]
    assert solutions and all(c["metadata"] == {"jupyter": {"source_hidden": True, "outputs_hidden": True},
                                               "tags": ["solution"]} for c in solutions)
    assert not any("record_metric" in "".join(c["source"]) for c in solutions)
    assert "".join(summary["source"]).startswith("## Summary") and not summary["metadata"]
    assert nb["metadata"]["kernelspec"]["name"] == "vgenre"


def test_the_search_gives_every_design_the_same_budget_and_chooses_on_validation(builders, tmp_path):
    """Section 4's search cell, run with training replaced by a stub that writes a made-up validation
    curve: three settings per design (the LSTM included, its widest the one notebook 05 trains), and
    each design's choice is the setting with the lowest validation loss, never a test number."""
    import types

    import pandas as pd

    cell = next("".join(c["source"]) for c in _cells() if "grid = {" in "".join(c["source"]))
    losses = {"lstm_pool_units8": 0.9, "lstm_pool_units4": 0.5, "attention_units8": 0.4, "tconv_kernel_size9": 0.3}
    trained = []

    def fake_train(build, train, val, out_dir, *, profile, seed):
        model = build()  # the builder really builds
        assert model.count_params() > 0 and seed == 0
        out_dir.mkdir(parents=True)
        pd.DataFrame({"epoch": [0, 1], "val_loss": [1.0, losses.get(out_dir.name, 0.7)]}).to_csv(out_dir / "log.csv")
        trained.append(out_dir.name)
        return out_dir

    lstm_05 = tmp_path / "lstm_pool_seed0"
    lstm_05.mkdir()
    pd.DataFrame({"epoch": [0], "val_loss": [0.8]}).to_csv(lstm_05 / "log.csv")
    recorded = {}
    P = types.SimpleNamespace(lstm_units=16, dense_units=8, dropout=0.1, seeds=(0, 1))
    namespace = dict(builders, P=P, T=T, D=D, mean=STATS["mean"], variance=STATS["variance"],
                     sizes=dict(**STATS, dense_units=8, dropout=0.1), x_train={}, x_val={},
                     train=types.SimpleNamespace(y=None), val=types.SimpleNamespace(y=None),
                     lstm_dirs={("lstm_pool", 0): lstm_05},
                     ctx=types.SimpleNamespace(models_dir=tmp_path, record_metric=lambda k, v, **kw: recorded.update({k: v})))
    import helpers.train

    original = helpers.train.train_keras_model
    helpers.train.train_keras_model = fake_train
    try:
        exec(compile(cell, "08 search cell", "exec"), namespace)
    finally:
        helpers.train.train_keras_model = original
    grid = namespace["grid"]
    assert {name: len(settings) for name, settings in grid.items()} == {"lstm_pool": 3, "attention": 3, "tconv": 3}
    assert list(grid["lstm_pool"])[-1] == f"units={P.lstm_units}"  # notebook 05's width, read, not retrained
    assert len(trained) == 8 and "lstm_pool_units16" not in trained
    assert namespace["chosen"] == {"lstm_pool": "units=4", "attention": "units=8", "tconv": "kernel_size=9"}
    assert recorded == {"chosen_lstm_pool": "units=4", "chosen_attention": "units=8", "chosen_tconv": "kernel_size=9"}
