"""The whole series executed in the smoke profile, and the metrics each notebook recorded."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.config import get_profile
from helpers.models import METHODS

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def summary(smoke_run):
    return json.loads((smoke_run / "summary.json").read_text())


@pytest.fixture(scope="module")
def metrics(summary):
    return {nb["notebook"][:2]: nb["metrics"] for nb in summary["notebooks"]}


def test_every_notebook_runs_top_to_bottom(summary, smoke_run):
    assert summary["profile"] == "smoke" and summary["parameters"]["profile"] == "smoke"
    assert len(summary["notebooks"]) == 9
    failed = [(nb["notebook"], nb["error"]) for nb in summary["notebooks"] if nb["status"] != "ok"]
    assert not failed
    for nb in summary["notebooks"]:
        assert (smoke_run / nb["notebook"]).exists() and nb["wall_s"] > 0


def test_outputs_carry_no_start_up_noise_and_one_weights_notice(summary, smoke_run):
    """What a student reads: no TensorFlow start-up lines, and the missing-weights notice once per
    notebook at most, naming no temporary file of a cell."""
    from helpers.backends import START_UP_NOISE

    for nb in summary["notebooks"]:
        cells = json.loads((smoke_run / nb["notebook"]).read_text())["cells"]
        text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"]
                       if o.get("output_type") == "stream")
        assert not START_UP_NOISE.search(text), (nb["notebook"], START_UP_NOISE.search(text).group())
        assert text.count("NO PRETRAINED WEIGHTS") <= 1, nb["notebook"]
        assert "ipykernel_" not in text, nb["notebook"]


def _outputs(path: Path):
    """(kind, text, mime types) of every output of an executed notebook: streams and displays."""
    for c in json.loads(path.read_text())["cells"]:
        for o in c.get("outputs", []) if c["cell_type"] == "code" else []:
            data = o.get("data", {})
            yield o["output_type"], "".join(o.get("text", "")) or "".join(data.get("text/plain", "")), set(data)


def test_outputs_read_cleanly_outside_jupyterlab(summary, smoke_run):
    """What an executed notebook shows in a text viewer, on GitHub or nbviewer: no TensorFlow runtime
    log lines (``E0000 ... oneDNN supports DT_BOOL``), no progress bar frozen at 0% of its total (the
    saved text is the bar's last state), a picture beside every widget instead of ``HBox(children=``,
    numbers printed once and readably, and named layers in every model summary."""
    import re

    runtime_log = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]", re.M)  # absl's format
    frozen_bar = re.compile(r"\b0%\|[^|]*\| 0/[1-9]")
    widget_text = re.compile(r"^\s*[HV]Box\(children=")
    long_float = re.compile(r"\d\.\d{9,}")  # a float printed with repr(), e.g. 2.0042709195422503e-05
    twice = re.compile(r"(?:ahead of|behind) .* by (-?\d\.\d+).*\(difference \1")
    auto_layer = re.compile(r"\b(?:normalization|dropout|dense|lstm|gru|concatenate|flatten|reshape|conv[13]d|"
                            r"max_pooling3d|global_average_pooling[13]d|rescaling|zero_padded)_\d+\b")
    for nb in summary["notebooks"]:
        name = nb["notebook"]
        for kind, text, mimes in _outputs(smoke_run / name):
            assert not runtime_log.search(text), (name, runtime_log.search(text).group())
            assert not frozen_bar.search(text), (name, text[:200])
            assert not (widget_text.match(text) and "image/png" not in mimes), (name, text[:120])
            if kind == "stream":
                assert not long_float.search(text), (name, long_float.search(text).group())
                assert not twice.search(text), (name, text[:300])
            if "Param #" in text:  # a model.summary()
                assert not auto_layer.search(text), (name, auto_layer.search(text).group())
    shown = {name: [t for k, t, m in _outputs(smoke_run / name) if "image/png" in m and k != "stream"]
             for name in ("02_frame_rate_experiments.ipynb", "03_mel_spectrograms.ipynb")}
    assert any("flipbooks of one clip" in t for t in shown["02_frame_rate_experiments.ipynb"])
    assert any(t.startswith("genre quiz") for t in shown["02_frame_rate_experiments.ipynb"])
    assert any(t.startswith("spectrogram explorer") for t in shown["03_mel_spectrograms.ipynb"])


def test_setup_reports_environment_and_backend(metrics, summary):
    from helpers.backends import describe

    backend = describe()
    assert metrics["00"]["weights_source"] == "random"  # tests are offline
    assert metrics["00"]["n_cpus"] >= 1 and metrics["00"]["n_gpus"] == len(backend["accelerators"])
    assert metrics["00"]["backend"] == summary["backend"] == backend["backend"]
    assert metrics["00"]["backend_version"] == backend["framework_version"] == summary["framework_version"]


def test_curation_finds_bad_files_and_splits_by_film(metrics):
    m = metrics["01"]
    assert m["bad_files_detected"] == 3  # empty, text, truncated; the silent clip is not bad
    assert m["films_split_across_sides"] == 0
    assert 0 <= m["leakage_grouped_split_acc"] <= 1 and 0 <= m["leakage_random_split_acc"] <= 1
    for key in ("leakage_random_split_acc", "leakage_linear_grouped_split_acc"):  # accuracies with intervals
        low, high = m[f"{key}_ci"]
        assert low <= m[key] <= high
    assert m["leakage_verdict_linear"] in ("ahead", "behind", "not distinguishable")


def test_leak_sentences_follow_the_recorded_verdicts(metrics, smoke_run):
    """Notebooks 01 and 06 say "ahead", "behind" or "not distinguishable" as their runs recorded,
    and 01 calls a gap the leak only when the random split is ahead."""
    def printed(name):
        cells = json.loads((smoke_run / name).read_text())["cells"]
        return "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])

    words = {"ahead": " is ahead of ", "behind": " is behind ", "not distinguishable": " not distinguishable "}
    leak, text01 = metrics["01"]["leakage_verdict"], printed("01_data_curation.ipynb")
    assert words[leak] in text01 and ("that gap is the leak" in text01) == (leak == "ahead")
    text06 = printed("06_error_analysis.ipynb")
    assert words[metrics["06"]["split_verdict_lstm_pool"]] in text06
    dark = {"ahead": "pushes predictions toward the two dark genres", "behind": "pulls predictions away from the two dark",
            "not distinguishable": "cannot tell from no shift"}
    assert dark[metrics["06"]["darkening_shift_verdict"]] in text06


def test_frame_rate_experiment(metrics):
    m = metrics["02"]
    assert m["flashes_caught_at_4fps"] >= m["flashes_caught_at_1fps"]
    assert m["flashes_caught_at_4fps"] == 1.0
    assert {"fps_acc_1", "fps_acc_2", "fps_acc_4"} <= set(m)
    for r in ("1", "2", "4"):  # every accuracy with its interval
        low, high = m[f"fps_acc_{r}_ci"]
        assert low <= m[f"fps_acc_{r}"] <= high
    assert m["knee_fps"] in (1.0, 2.0, 4.0)
    assert 0 <= m["single_frame_cheap_acc"] <= 1


def test_mfcc_steps_agree_with_librosa(metrics):
    assert metrics["03"]["mfcc_max_abs_diff"] < 1e-2


def test_transfer_learning_head_learns(metrics):
    m = metrics["04"]
    assert m["head_frame_test_acc"] > 1 / 6 + 0.1
    assert m["pretrained"] is False
    # offline: the random row runs (it is the series' own lstm_pool), the ImageNet rows are recorded as not run
    assert m["transfer_rows_run"] == ["random"]
    assert m["transfer_rows_not_run"] == ["imagenet_frozen", "imagenet_finetuned"]
    assert m["transfer_frame_acc_random"] == m["head_frame_test_acc"]
    # the lessons: frames clump by film beyond their genre; the [0, 1] slip costs the head its accuracy
    assert m["same_film_neighbours"] > 1.5 * m["same_film_neighbours_if_mixed"]
    assert m["slip_frame_acc"] < m["head_frame_test_acc"] - 0.1


def test_results_table_is_complete_and_smoke_pipeline_is_accurate(metrics):
    m = metrics["05"]
    for method in METHODS:
        assert 0 <= m[f"test_acc_{method}"] <= 1 and 0 <= m[f"test_f1_{method}"] <= 1
    assert m["lstm_equations_max_abs_diff"] < 1e-5
    assert max(m["test_acc_late_fusion"], m["test_acc_early_fusion"]) >= 0.6  # chance is 1/6


def test_lstm_notebook_measures_wide_against_deep_and_the_gates(metrics):
    m = metrics["05"]
    low, high = m["test_acc_deep_lstm_ci"]
    assert low <= m["test_acc_deep_lstm"] <= high and 4 <= m["deep_lstm_units"] <= get_profile("smoke").lstm_units
    assert m["verdict_wide_vs_deep"] in ("ahead", "behind", "not distinguishable")
    # the gates are measured over every flashed horror test clip, never one chosen clip
    assert "gate_flash_corr_input" not in m and m["gate_flashed_clips"] >= 0
    if m["gate_flashed_clips"] >= 3:  # enough clips for a median with an interval (the default profile)
        for gate in ("input", "forget"):
            low, high = m[f"gate_{gate}_corr_median_ci"]
            assert -1 <= low <= m[f"gate_{gate}_corr_median"] <= high <= 1
            assert 0 <= m[f"gate_{gate}_share_positive"] <= 1


def test_lstm_notebook_prints_the_verdicts_it_records(metrics, smoke_run):
    """Notebook 05 words each comparison from the run's intervals: every accuracy sits inside its
    interval, and each printed sentence carries the verdict the run recorded."""
    m = metrics["05"]
    for method in METHODS:
        low, high = m[f"test_acc_{method}_ci"]
        assert low <= m[f"test_acc_{method}"] <= high
    cells = json.loads((smoke_run / "05_lstm_training.ipynb").read_text())["cells"]
    printed = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code"
                      and re.search(r"^verdicts = \{", "".join(c["source"]), re.M) for o in c["outputs"])  # Table I's
    lines = [line for line in printed.splitlines() if line.startswith("- ")]
    keys = ("lstm_vs_single_frame", "lstm_vs_frame_average", "pool_vs_softmax", "fusion_vs_single_modality",
            "lstm_vs_colour_stats", "fusion_vs_colour_and_motion", "lstm_vs_colour_and_motion")
    assert len(lines) == len(keys)
    for key, line in zip(keys, lines):
        word = m[f"verdict_{key}"]
        assert word in ("ahead", "behind", "not distinguishable")
        assert (" ahead of " in line if word == "ahead" else f" {word} " in line), (key, word, line)
    everything = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert "within 0.02" not in everything and "usually close" not in everything
    # the order ablation: the control cannot move, and the conclusion follows the two test-time verdicts
    assert m["verdict_order_frame_average"] == "not distinguishable"
    relies = any(m[f"verdict_order_{k}"] == "ahead" for k in ("lstm_pool", "mlp"))
    assert ("lose accuracy when the order is taken away" in everything) == relies
    assert ("do not rely on it to answer" in everything) == (not relies)


def test_error_analysis_measures(metrics):
    m = metrics["06"]
    for key in ("brightness_1_acc_lstm_pool", "fps_4_acc_lstm_pool", "hard_acc_late_fusion", "ece_lstm_pool",
                "random_split_acc_lstm_pool", "grouped_split_acc_lstm_pool"):
        assert 0 <= m[key] <= 1


def test_classify_your_own_video(metrics):
    m = metrics["07"]
    assert m["n_windows"] >= 3 and m["silent_short_windows"] == 1
    assert m["predicted_genre"] in ("Action", "Animation", "Horror", "Romance", "Sports", "ScienceFiction")
    # the out-of-distribution score: a clip like the training ones is familiar, a grey silent one is not
    assert m["ood_familiar_demo"] is True and m["ood_score_demo"] <= 1
    assert m["ood_familiar_grey"] is False and m["ood_score_grey"] > 1
    assert m["ood_score_noise"] > m["ood_score_demo"]
    assert m["ood_familiar_share_test"] >= 0.8  # test clips come from unseen films of the same kind


def test_figures_are_saved_in_the_run(smoke_run):
    names = {p.stem for p in (smoke_run / "figures").glob("*.png")}
    assert {"00_profiles", "01_contact_sheets", "02_fps_tradeoff", "03_mfcc_steps", "04_tsne", "05_results",
            "06_confusion", "07_prediction"} <= names


def test_check_passes_on_the_run_that_made_the_reference_and_fails_on_drift(smoke_run, tmp_path, capsys):
    from helpers.cli import main

    reference = tmp_path / "smoke.json"
    assert main(["save-reference", str(smoke_run), str(reference)]) == 0
    assert main(["check", str(smoke_run), str(reference)]) == 0
    summary = json.loads((smoke_run / "summary.json").read_text())
    nb05 = next(n for n in summary["notebooks"] if n["notebook"].startswith("05"))
    low, high = nb05["metrics"]["test_acc_lstm_pool_ci"]
    nb05["metrics"]["test_acc_lstm_pool"] = high + 0.01 if high < 1 else low - 0.01  # outside its interval
    nb05["metrics"]["n_test_clips"] += 1
    nb05["metrics"]["test_acc_std_lstm_pool"] += 0.5  # a spread over seeds is shown, never a failure
    drifted = tmp_path / "drifted"
    drifted.mkdir()
    (drifted / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(["check", str(drifted), str(reference)]) == 1
    out = capsys.readouterr().out
    assert "test_acc_lstm_pool " in out and "n_test_clips" in out and "2 drifted" in out


def test_smoke_run_reproduces_the_committed_reference(smoke_run, summary):
    """Same seed, same versions, same backend, other CPU kernels (the session's series ran with oneDNN off,
    the reference with it on): the smoke series reproduces every lesson of references/smoke.json (accuracies
    inside its intervals, verdicts and setup equal; numbers only shown are not compared). Other backends
    may round otherwise (README, section Reproducibility), so the comparison needs the reference's backend
    and versions."""
    from helpers.reference import check_files, load_reference

    reference = Path(__file__).resolve().parent.parent / "references" / "smoke.json"
    ref = load_reference(reference)
    setup = {k: (ref[k], summary[k]) for k in ("backend", "keras", "framework_version")}
    if any(a != b for a, b in setup.values()):
        pytest.skip(f"the reference was made with other versions: {setup}")
    ok, table = check_files(smoke_run, reference)
    assert ok, table
