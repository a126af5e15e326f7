"""The papermill runner (parameters in, failures name notebook and cell), the commands, bench output."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest


def _notebook(path, sources, tag_first=True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "vgenre", "display_name": "Python (vgenre)", "language": "python"}
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if tag_first:
        cells[0].metadata["tags"] = ["parameters"]
    nb.cells = cells
    nbformat.write(nb, path)


PARAMETERS = 'profile = "default"\nmanifest = ""\nrun_dir = ""\ndata_dir = ""\nfigures_dir = ""'
SETUP = ("import os\nfrom helpers import start_run\n"
         "ctx = start_run('00_fine', profile=profile, manifest=manifest, run_dir=run_dir, data_dir=data_dir,"
         " figures_dir=figures_dir)\n")


@pytest.fixture()
def tiny_series(tmp_path):
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "00_fine.ipynb", [PARAMETERS, SETUP + "ctx.record_metric('profile_seen', ctx.profile.name)\n"
                                        "ctx.record_metric('manifest_seen', str(ctx.manifest))\n"
                                        "ctx.record_metric('data_dir_seen', str(ctx.data_dir))\n"
                                        "ctx.record_metric('env', sorted(k for k in os.environ if k.startswith('VGENRE')))"])
    _notebook(books / "01_broken.ipynb", [PARAMETERS, "x = 1", "raise RuntimeError('boom in cell three')"])
    _notebook(books / "02_never.ipynb", [PARAMETERS])
    return tmp_path


def test_runner_passes_parameters_and_stops_at_the_failing_notebook(tiny_series):
    from helpers.backends import quiet_start
    from helpers.config import data_dir
    from helpers.runner import run_series

    quiet_start()  # TensorFlow's own import sets KMP_* variables; the runner itself must set none
    env_before = dict(os.environ)
    out, results = run_series("smoke", out=tiny_series / "run", manifest=tiny_series / "real" / "manifest.csv",
                              notebooks=tiny_series / "notebooks")
    assert dict(os.environ) == env_before  # the runner passes settings as parameters, not environment variables
    assert [r.status for r in results] == ["ok", "failed"]
    assert results[0].metrics == {"profile_seen": "smoke", "data_dir_seen": str(data_dir()),
                                  "manifest_seen": str((tiny_series / "real" / "manifest.csv").resolve()),
                                  "env": sorted(k for k in env_before if k.startswith("VGENRE"))}
    assert "boom in cell three" in results[1].error and "In [" in results[1].error
    summary = json.loads((out / "summary.json").read_text())
    assert [n["notebook"] for n in summary["notebooks"]] == ["00_fine.ipynb", "01_broken.ipynb"]
    assert summary["parameters"]["run_dir"] == str(out.resolve())
    run_series("smoke", only=["00"], out=tiny_series / "run", notebooks=tiny_series / "notebooks")
    summary = json.loads((out / "summary.json").read_text())  # a partial rerun keeps the other entries
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [("00_fine.ipynb", "ok"),
                                                                            ("01_broken.ipynb", "failed")]
    assert summary["parameters"]["manifest"] == ""


def test_run_command_exit_status_names_notebook_and_cell(tiny_series):
    proc = subprocess.run([sys.executable, "-m", "helpers", "run", "--profile", "smoke", "--only", "01",
                           "--notebooks", str(tiny_series / "notebooks"), "--out", str(tiny_series / "run2")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "FAILED: 01_broken.ipynb" in proc.stderr and "boom in cell three" in proc.stderr


def test_bench_prints_ratios_last(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "helpers", "bench", "--only", "audio", "frames"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    last = dict(kv.split("=") for kv in proc.stdout.strip().splitlines()[-1].split())
    assert {"logmel_realtime_x", "sample_720p_realtime_x", "multi_request_cost_x", "peak_rss_mb"} <= set(last)
    assert float(last["logmel_realtime_x"]) > 0


def vgenre(*args):
    return subprocess.run([sys.executable, "-m", "helpers", *map(str, args)], capture_output=True, text=True)


def test_synth_command_writes_clips_and_a_split_manifest(tmp_path):
    import pandas as pd

    proc = vgenre("synth", "--profile", "smoke", "--out", tmp_path / "s", "--seed", "5", "--difficulty", "0.5")
    assert proc.returncode == 0, proc.stderr
    manifest = pd.read_csv(tmp_path / "s" / "manifest.csv", keep_default_na=False)
    assert set(manifest.split) == {"train", "val", "test", "hard"} and (manifest.status == "ok").all()
    assert all((tmp_path / "s" / p).exists() for p in manifest.path)
    plain = manifest[manifest.split != "hard"]  # half of the clips hide their look, half their score
    assert 0.2 < (plain.look_of != "").mean() < 0.8 and 0.2 < (plain.no_score == 1).mean() < 0.8
    bad = vgenre("synth", "--profile", "smoke", "--out", tmp_path / "t", "--difficulty", "1.5")
    assert bad.returncode == 1 and "difficulty must be in [0, 1)" in bad.stderr and "Traceback" not in bad.stderr


def test_features_and_train_commands(smoke_manifest, tmp_path):
    first = vgenre("features", "--profile", "smoke", "--shard", "0/2")
    second = vgenre("features", "--profile", "smoke", "--shard", "1/2")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    counts = [dict(kv.split("=") for kv in p.stdout.split()) for p in (first, second)]
    total = sum(int(c["written"]) + int(c["cached"]) for c in counts)
    assert total == len([line for line in smoke_manifest.read_text().splitlines()[1:] if line])
    assert "RANDOMLY INITIALISED" in first.stderr
    trained = vgenre("train", "--profile", "smoke", "--method", "lstm_pool", "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    assert "test_accuracy=" in trained.stdout
    model_dir = tmp_path / "run" / "models" / "lstm_pool_seed0"
    assert json.loads((model_dir / "metrics.json").read_text())["n_test"] > 0
    assert {"model.keras", "labels.json", "config.json", "log.csv"} <= {p.name for p in model_dir.iterdir()}


def test_curate_command_probes_and_splits_a_folder_tree(tmp_path):
    import pandas as pd

    from conftest import write_clip
    from helpers.config import GENRES

    root = tmp_path / "my clips"
    for genre in GENRES:
        for film in range(3):
            write_clip(root / genre / f"film{film}" / "clip.mp4", seconds=0.5, genre=genre)
    (root / "Horror" / "broken.mp4").write_bytes(b"")
    proc = vgenre("curate", root)
    assert proc.returncode == 0, proc.stderr
    assert "19 clips, 1 bad" in proc.stdout
    manifest = pd.read_csv(root / "manifest.csv", keep_default_na=False)
    assert manifest.set_index("path").loc["Horror/broken.mp4", "split"] == "excluded"
    good = manifest[manifest.status == "ok"]
    assert set(good.split) == {"train", "val", "test"} and good.groupby("group").split.nunique().max() == 1


def test_a_curated_manifest_replaces_the_synthetic_set(tmp_path, smoke_manifest):
    from helpers.context import start_run
    from helpers.manifest import ManifestError
    from helpers.pipeline import ensure_dataset

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,genre,group,status,split\nAction/a.mp4,Action,g1,ok,train\n")
    assert ensure_dataset(start_run(profile="smoke", manifest=manifest, verbose=False)) == manifest.resolve()
    assert ensure_dataset(start_run(profile="smoke", verbose=False)) == smoke_manifest  # empty: the synthetic set
    manifest.write_text("path,genre,group,status,split\nAction/a.mp4,Action,g1,ok,\n")
    with pytest.raises(ManifestError, match="vgenre curate"):
        ensure_dataset(start_run(profile="smoke", manifest=manifest, verbose=False))
    with pytest.raises(ManifestError, match="nope.csv"):
        ensure_dataset(start_run(profile="smoke", manifest=tmp_path / "nope.csv", verbose=False))


@pytest.mark.skipif(os.name != "posix", reason="local sockets (IPC) are a POSIX transport")
def test_the_run_talks_to_its_kernels_over_local_sockets_without_a_warning(tmp_path, capfd):
    """`make run` printed "Kernel is running over TCP without encryption" once per notebook; the runner's
    kernels use IPC, which stays on the machine and prints nothing."""
    import nbformat
    import papermill as pm

    from helpers.runner import KERNEL_NAME, _local_kernel

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name=KERNEL_NAME,
                        progress_bar=False, **_local_kernel())
    assert nbformat.read(tmp_path / "out.ipynb", 4).cells[0].outputs[0]["text"] == "42\n"
    assert "without encryption" not in capfd.readouterr().err
