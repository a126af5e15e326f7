"""Every notebook ends with exercises that ask to implement or measure, solutions hidden until opened."""
from __future__ import annotations

import json
import re

import pytest

from helpers.runner import list_notebooks

BOOKS = list_notebooks()


def hidden(cell) -> bool:
    meta = cell.get("metadata", {})
    return meta.get("jupyter", {}).get("source_hidden") is True and meta.get("jupyter", {}).get("outputs_hidden") is True


@pytest.mark.parametrize("book", BOOKS, ids=[b.stem[:2] for b in BOOKS])
def test_exercises_then_hidden_solutions_then_summary(book):
    cells = json.loads(book.read_text())["cells"]
    text = ["".join(c["source"]) for c in cells]
    start = next(i for i, t in enumerate(text) if t.lstrip().startswith("## Exercises"))
    exercises = re.findall(r"^\d+\. ", text[start].split("### Solutions")[0], flags=re.M)
    assert 2 <= len(exercises) <= 4, f"{book.name}: {len(exercises)} exercises"
    assert "### Solutions" in text[start]
    assert text[-1].lstrip().startswith("## Summary") and not hidden(cells[-1])
    solutions = cells[start + 1:-1]
    assert any(c["cell_type"] == "code" for c in solutions), f"{book.name}: no solution code to run"
    for c in solutions:
        assert hidden(c) and "solution" in c["metadata"].get("tags", []), f"{book.name}: a solution cell is not collapsed"
        if c["cell_type"] == "code":  # JupyterLab shows a collapsed cell's first line: it names, not answers
            assert re.match(r"# Solutions? \d", "".join(c["source"])), f"{book.name}: a solution starts with its answer"
    for c in cells[:start]:
        assert "solution" not in c["metadata"].get("tags", []), f"{book.name}: a solution before the exercises"
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1


def test_solutions_run_in_the_smoke_series(smoke_run):
    """Papermill executes the hidden cells like any other: each solution cell of the run has output."""
    for book in BOOKS:
        cells = json.loads((smoke_run / book.name).read_text())["cells"]
        ran = [c for c in cells if c["cell_type"] == "code" and "solution" in c["metadata"].get("tags", [])]
        assert ran and all(c.get("execution_count") for c in ran), book.name
        assert all(hidden(c) for c in ran), f"{book.name}: the executed copy lost the collapsed state"
