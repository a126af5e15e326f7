"""The notebooks end each experiment in a finding that code prints from the run's numbers; the
markdown explains the mechanism and never reads the outcome in advance ("if the curve is steep ...",
"whether it does is what the verdict says"): where the explanation depends on the outcome, code
chooses it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
BOOKS = ["06_error_analysis.ipynb", "07_classify_your_own_video.ipynb", "08_beyond_the_paper.ipynb"]
ALL_BOOKS = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

# A sentence that hands the reader a branch on this run's outcome instead of stating it.
TEMPLATES = [
    re.compile(r"\b(if|whether)\b[^.;]*\b(printed|verdict|curve|diagram|table|bars|plot|lines|shows?|says?|steep|scores?)\b", re.I),
    re.compile(r"\bwhatever the\b", re.I),
    re.compile(r"\bread the printed\b", re.I),
]


def markdown_matches(cells: list[dict], patterns: list[re.Pattern]) -> list[str]:
    """The markdown sentences of *cells* that match any of *patterns*, each with its cell id."""
    found = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = " ".join("".join(cell["source"]).split())
        found += [f"{cell.get('id')}: ...{text[max(0, m.start() - 40):m.end() + 20]}..."
                  for pattern in patterns for m in pattern.finditer(text)]
    return found


def branch_templates(cells: list[dict]) -> list[str]:
    """The markdown sentences of *cells* that match a template of branches."""
    return markdown_matches(cells, TEMPLATES)


def test_the_templates_catch_the_old_wording():
    """The phrasings issue 24 named, each caught."""
    old = ["Brightness augmentation during training, if the sensitivity curve above is steep.",
           "Calibration if the reliability diagram shows over-confidence.",
           "films are the unit of data (whatever the verdict of section 6 says for this run).",
           "Read the printed lines: if the picture part stays at or below 1.",
           "Whether they do here is what the printed verdict says.",
           "If the threshold is drawn in the right place, most of them score 1 or below."]
    cells = [{"cell_type": "markdown", "id": str(k), "source": [s]} for k, s in enumerate(old)]
    assert len({hit.split(":")[0] for hit in branch_templates(cells)}) == len(old)


@pytest.mark.parametrize("book", ALL_BOOKS, ids=[b[:2] for b in ALL_BOOKS])
def test_markdown_states_mechanisms_not_branches_on_the_outcome(book):
    cells = json.loads((NOTEBOOKS / book).read_text())["cells"]
    assert branch_templates(cells) == []


@pytest.mark.parametrize("book", BOOKS, ids=[b[:2] for b in BOOKS])
def test_solutions_print_their_answer(book):
    """Each exercise's solution code prints a numbered answer ("1. ...") for every exercise."""
    cells = json.loads((NOTEBOOKS / book).read_text())["cells"]
    exercises = next("".join(c["source"]) for c in cells if "".join(c["source"]).lstrip().startswith("## Exercises"))
    count = len(re.findall(r"^\d+\. ", exercises.split("### Solutions")[0], flags=re.M))
    code = "\n".join("".join(c["source"]) for c in cells
                     if c["cell_type"] == "code" and "solution" in c["metadata"].get("tags", []))
    printed = {int(n) for n in re.findall(r'print\(\s*f?"(\d+)\.', code)}
    assert printed == set(range(1, count + 1)), (book, sorted(printed))


# Wording that hands the outcome to the output instead of stating it, or a size from another profile.
DEFERRALS = [
    re.compile(r"\bthe printed\b[^.;]*\b(says?|shows?|counts?|weighs?|verdict says)\b", re.I),
    re.compile(r"\bwhich the printed\b", re.I),
    re.compile(r"\b(its|the) answer there says\b", re.I),
    re.compile(r"\bwith a dozen clips\b", re.I),
    re.compile(r"\bthe verdict below says\b", re.I),
]


def deferrals(cells: list[dict]) -> list[str]:
    """The markdown sentences of *cells* that leave their answer to the printed output."""
    return markdown_matches(cells, DEFERRALS)


def test_the_deferrals_catch_the_old_wording():
    """Phrasings a reader found in 06-08, each caught."""
    old = ["With a dozen clips a reliability bin holds one or two of them.",
           "the verdict below says whether the gap is larger than those clips can resolve.",
           "the printed count says how often that happens here.",
           "ECE is itself noisy, which the printed lines show when the two sides disagree.",
           "so its answer there says which half's cues weigh more for it.",
           "The printed lines say at which factor a part crosses.",
           "The printed verdict weighs the two on this run's test clips."]
    cells = [{"cell_type": "markdown", "id": str(k), "source": [s]} for k, s in enumerate(old)]
    assert len({hit.split(":")[0] for hit in deferrals(cells)}) == len(old)


@pytest.mark.parametrize("book", ALL_BOOKS, ids=[b[:2] for b in ALL_BOOKS])
def test_markdown_states_answers_instead_of_pointing_at_the_output(book):
    cells = json.loads((NOTEBOOKS / book).read_text())["cells"]
    assert deferrals(cells) == []
