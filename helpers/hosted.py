"""Hosted runtimes (Colab, Kaggle): the first code cell of every notebook installs the course.

In a fresh hosted runtime the package ``helpers`` is not importable. The first code cell of each
notebook (:data:`INSTALL_CELL`) then installs it with pip from :data:`SOURCE`, the one place the
course's source is named, and says what it did; everywhere else (a checkout with ``make``, a
conda environment) the cell does nothing. pip installs only what the runtime lacks: the ranges
in ``pyproject.toml`` accept the TensorFlow, Keras and numpy a hosted runtime already has, so they
are not reinstalled (the backends are extras and are never pulled in by the cell).

To point the notebooks at a fork, either set ``VGENRE_SOURCE`` in the runtime before the first
cell (``%env VGENRE_SOURCE=git+https://github.com/you/your-fork``), or change :data:`SOURCE` here
and rewrite the cells of every notebook with ``python -m helpers.hosted``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SOURCE = "git+https://github.com/vgenre-course/vgenre-course.git"
"""Where a hosted runtime installs the course from (any pip requirement: a git URL, a wheel, a path)."""

INSTALL_CELL = f'''# Colab / Kaggle: install the course package when this runtime lacks it (does nothing elsewhere)
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("helpers") is None:
    source = os.environ.get("VGENRE_SOURCE", "{SOURCE}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    from importlib.metadata import version
    print(f"installed the course from {{source}}; kept this runtime's keras {{version('keras')}}, numpy {{version('numpy')}}")'''
"""The first code cell of every notebook (a test checks they all hold exactly this text)."""


def first_code_cell(notebook: dict) -> dict:
    """The first code cell of a notebook (as loaded from JSON)."""
    return next(c for c in notebook["cells"] if c["cell_type"] == "code")


def write_install_cells(folder: Path) -> list[Path]:
    """Put :data:`INSTALL_CELL` into the first code cell of every numbered notebook in *folder*
    (inserting one before the parameters cell where there is none); return the notebooks changed."""
    changed = []
    lines = INSTALL_CELL.splitlines(keepends=True)
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cell = first_code_cell(nb)
        if "parameters" in cell["metadata"].get("tags", []):
            cell = {"cell_type": "code", "execution_count": None, "id": "install-course", "metadata": {},
                    "outputs": [], "source": []}
            nb["cells"].insert(nb["cells"].index(first_code_cell(nb)), cell)
        if "".join(cell["source"]) != INSTALL_CELL:
            cell["source"] = lines
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


if __name__ == "__main__":
    from helpers.config import repo_root

    for p in write_install_cells(Path(sys.argv[1]) if len(sys.argv) > 1 else repo_root() / "notebooks"):
        print(f"rewrote the install cell of {p}")
