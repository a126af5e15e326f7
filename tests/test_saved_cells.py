"""One source for the method: the notebooks' ``# @save`` cells are exactly what helpers/course/ holds,
the helpers run that copy, and a changed copy is caught."""
import json
import shutil
import symtable
from pathlib import Path

import pytest

from helpers.cells import MARK, check_cell, course_dir, read_course, render_course, saved_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def test_course_file_is_the_notebooks_saved_cells():
    """`make saved` has been run since the last edit of a saved cell (else: run it)."""
    assert read_course() == render_course(NOTEBOOKS), \
        "helpers/course/ differs from the notebooks' # @save cells: run `make saved`"


def test_a_changed_notebook_cell_or_a_changed_copy_is_caught(tmp_path):
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, notebooks)
    cell = saved_cells(notebooks)[0]
    path = notebooks / cell.notebook
    nb = json.loads(path.read_text(encoding="utf-8"))
    src = "".join(nb["cells"][cell.index]["source"])
    nb["cells"][cell.index]["source"] = src + "\n\ndef student_edit():\n    return 1\n"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert render_course(notebooks) != read_course()
    # and the other way round: a copy edited by hand no longer equals the notebooks
    edited = dict(read_course())
    edited["lstm_training.py"] = edited["lstm_training.py"].replace("units, name=\"lstm\"", "units * 2, name=\"lstm\"")
    assert edited["lstm_training.py"] != read_course()["lstm_training.py"]
    assert edited != render_course(NOTEBOOKS)


def test_every_method_builder_and_step_is_a_saved_cell():
    """What the issue lists as the method is written in the notebooks, not only in the helpers."""
    from helpers.course import lstm_training as course

    for name in ("lstm_model", "frame_model", "mlp_model", "conv3d_model", "early_fusion_model",
                 "late_fusion_model", "classifier", "standardise", "compile_and_fit"):
        fn = getattr(course, name)
        assert fn.__module__ == "helpers.course.lstm_training", name


def test_the_registry_builds_with_the_course_builders():
    """helpers.models builds every method through helpers.course (not a second copy)."""
    from helpers.course import lstm_training as course
    from helpers.models import METHODS, builders

    ns = builders()
    for spec in METHODS.values():
        for name in spec.builders:
            assert getattr(ns, name) is getattr(course, name), (spec.name, name)


def test_saved_cells_only_import_and_define_and_name_nothing_undefined():
    """A saved cell runs at import time in helpers/course.py: no statements that need a run, and no
    name that only the notebook defines (``P``, ``ctx``, ``clips``)."""
    import builtins

    for name, text in read_course().items():
        table = symtable.symtable(text, name, "exec")
        defined = set(table.get_identifiers()) | set(dir(builtins))

        def walk(t):
            for sym in t.get_symbols():
                if sym.is_global() and sym.is_referenced():
                    assert sym.get_name() in defined, f"{name}: {t.get_name()} uses {sym.get_name()}, defined nowhere there"
            for child in t.get_children():
                walk(child)

        walk(table)
    for cell in saved_cells(NOTEBOOKS):
        check_cell(cell)


def test_the_audio_steps_do_not_import_keras():
    """One module per notebook: a module of saved cells imports only what its own cells import."""
    import ast

    for name, text in read_course().items():
        imported = {a.name.split(".")[0] for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Import)
                    for a in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.ImportFrom) and node.module}
        if name != "lstm_training.py" and "keras" in imported:
            assert "transfer" in name, f"{name} imports keras"


def test_a_cell_that_runs_something_is_refused(tmp_path):
    from helpers.cells import SavedCell

    with pytest.raises(ValueError, match="may only import and define"):
        check_cell(SavedCell("05_x.ipynb", 3, "import numpy as np\nprint(np.pi)"))
    assert MARK == "# @save"
    assert course_dir().name == "course"


def test_a_student_changed_builder_gets_another_cache_key():
    """A builder edited in the notebook trains anew: its source is part of the model's key."""
    from helpers.models import builder_key, builders

    ns = builders()
    ns_changed = builders({"classifier": lambda x, dense_units, dropout: x})
    assert builder_key("lstm_pool", ns) != builder_key("lstm_pool", ns_changed)
    assert builder_key("conv3d", ns) == builder_key("conv3d", builders({"lstm_model": lambda *a, **k: None}))


def test_a_builder_changed_in_the_notebook_is_what_trains(tmp_path):
    """Notebook 05 hands its own definitions to the pipeline: a changed ``lstm_model`` is the model trained,
    and its folder records another builder key than the course's."""
    import json

    import numpy as np

    from helpers.config import get_profile
    from helpers.course import lstm_training as course
    from helpers.models import builder_key, builders
    from helpers.train import load_model_dir, train_model

    prof = get_profile("smoke", lstm_units=4, dense_units=4, epochs=1, patience=1)
    rng = np.random.default_rng(0)
    x = {"video": rng.normal(size=(12, 5, 6)).astype("float32"), "mask": np.ones((12, 5), bool)}
    y = np.arange(12) % 6

    def lstm_model(seq_len, n_features, *, units, **kwargs):  # a student's edit: twice the units
        return course.lstm_model(seq_len, n_features, units=2 * units, **kwargs)

    changed = builders({"lstm_model": lstm_model})
    out = train_model("lstm_pool", (x, y), (x, y), tmp_path / "m", profile=prof, builders=changed,
                      extra_config={"builder": builder_key("lstm_pool", changed)})
    assert load_model_dir(out).model.get_layer("lstm").units == 8
    assert json.loads((out / "config.json").read_text())["builder"] != builder_key("lstm_pool")
