"""The first code cell of every notebook installs the course in a hosted runtime, and only there."""
from __future__ import annotations

import json
import subprocess

import pytest

from helpers.config import repo_root
from helpers.hosted import INSTALL_CELL, SOURCE, first_code_cell, write_install_cells

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_install_cell(notebook):
    assert "".join(first_code_cell(json.loads(notebook.read_text()))["source"]) == INSTALL_CELL


def test_the_cell_does_nothing_where_the_course_is_installed(monkeypatch, capsys):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran in an installed environment"))
    exec(INSTALL_CELL, {})
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("fork", [None, "git+https://example.org/someone/fork.git"])
def test_a_fresh_runtime_installs_from_the_named_source(monkeypatch, capsys, fork):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "helpers" else real(name, *a))
    if fork:
        monkeypatch.setenv("VGENRE_SOURCE", fork)
    else:
        monkeypatch.delenv("VGENRE_SOURCE", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **k: calls.append(args))
    exec(INSTALL_CELL, {})
    assert len(calls) == 1 and calls[0][-1] == (fork or SOURCE) and calls[0][1:4] == ["-m", "pip", "install"]
    assert not any("tensorflow" in a or "keras" in a for a in calls[0])  # the runtime's own are kept
    out = capsys.readouterr().out
    assert f"installed the course from {fork or SOURCE}" in out and "keras" in out


def test_rewriting_the_cells_is_idempotent(tmp_path):
    import shutil

    for nb in NOTEBOOKS[:2]:
        shutil.copy(nb, tmp_path / nb.name)
    assert write_install_cells(tmp_path) == []
    book = json.loads((tmp_path / NOTEBOOKS[0].name).read_text())
    book["cells"] = [c for c in book["cells"] if c.get("id") != "install-course"]
    (tmp_path / NOTEBOOKS[0].name).write_text(json.dumps(book))
    assert write_install_cells(tmp_path) == [tmp_path / NOTEBOOKS[0].name]
    assert "".join(first_code_cell(json.loads((tmp_path / NOTEBOOKS[0].name).read_text()))["source"]) == INSTALL_CELL
