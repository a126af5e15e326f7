"""Hosted runtimes (Colab, Kaggle): the first code cell of every notebook installs the course.

In a fresh hosted runtime the package ``helpers`` is not importable. The first code cell of each
notebook (:data:`INSTALL_CELL`) then installs it with pip and says what it did; everywhere else (a
checkout with ``make``, a conda environment) the cell does nothing. It installs, the first that exists:

1. the course's wheel, ``vgenre-*.whl`` (``make wheel`` writes it to ``dist/``), uploaded beside the
   notebook or into the runtime's working folder (Colab's ``/content``, Kaggle's ``/kaggle/working``
   or a Kaggle dataset under ``/kaggle/input``);
2. ``VGENRE_SOURCE``, any pip requirement (``%env VGENRE_SOURCE=git+https://github.com/you/your-fork``);
3. :data:`SOURCE`, the course's published address, when one is set here.

With none of them the cell stops with one line saying what to upload or set. pip installs only what
the runtime lacks: the ranges in ``pyproject.toml`` accept the TensorFlow, Keras and numpy a hosted
runtime already has, so they are not reinstalled (the backends are extras and are never pulled in).
After changing :data:`SOURCE`, rewrite the cells of every notebook with ``python -m helpers.hosted``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SOURCE: str | None = None
"""The course's published address (any pip requirement: a git URL, a wheel's URL), or None while it
has none: then a hosted runtime needs the wheel or ``VGENRE_SOURCE``."""

MISSING = ("Upload the course's wheel (vgenre-*.whl, made by `make wheel`) beside this notebook, "
           "or set VGENRE_SOURCE to a pip requirement, then run this cell again")
"""What the cell says when it finds nothing to install."""


def install_cell(source: str | None = SOURCE) -> str:
    """The text of the install cell, falling back on *source* (the course's address) last."""
    return f'''# Colab / Kaggle: install the course package when this runtime lacks it (does nothing elsewhere)
import glob, importlib.util, os, subprocess, sys
if importlib.util.find_spec("helpers") is None:
    # the course's wheel beside this notebook or in the working folder, else VGENRE_SOURCE, else its address
    folders = (".", "/content", "/kaggle/working", "/kaggle/input/*")
    wheels = [w for folder in folders for w in sorted(glob.glob(folder + "/vgenre-*.whl"), reverse=True)]
    source = wheels[0] if wheels else os.environ.get("VGENRE_SOURCE", {json.dumps(source or "")})
    if not source:
        raise RuntimeError({json.dumps(MISSING)})
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    from importlib.metadata import distributions
    kept = sorted({{f"{{d.name}} {{d.version}}" for d in distributions() if d.name in ("keras", "keras-nightly", "numpy")}})
    print(f"installed the course from {{source}}; kept this runtime's {{', '.join(kept)}}")'''


INSTALL_CELL = install_cell()
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
