"""Reference results: what a run of the series measured, kept in the repository and checked again.

A *reference* is the metrics of every notebook of one run (``summary.json``) with what the run
ran on, saved as JSON under ``references/<profile>.json``. :func:`check` compares a new run with
it by the *kind* each notebook declared where it recorded the metric
(:data:`helpers.context.METRIC_KINDS`):

* a **lesson** is compared: a verdict word (``"ahead"``) must be equal; an accuracy recorded with
  its 95% interval (``name`` and ``name_ci``) must fall inside the reference's interval (a bound
  counts as inside);
* **setup** (the sizes of the experiment: clips, windows, weights) must be equal, or the two runs
  did not do the same experiment;
* a number only **shown** (a spread over seeds, a correlation, a calibration error, a time, a count
  over a handful of clips) is printed beside the reference and never fails the check; so is what
  describes the machine (backend, versions, cores).

A lesson must also hold under a second set of training seeds: :func:`seed_table` compares the
lessons of a run with other seeds (``vgenre run --seeds 3,4,5``) with the reference's and stores the
table in the reference. A lesson whose word changed there is *not settled*: the check shows it and
does not fail on it, the notebooks print that it is not settled, and the README says so.

``vgenre run --check FILE`` and ``vgenre check RUN FILE`` print the two tables and exit 1 when a
lesson or the setup drifted; ``vgenre save-reference RUN FILE`` writes a reference, ``vgenre
seed-table FILE RUN`` adds the second seed set, ``vgenre readme-table FILE`` writes the README's
results from one.

Usage (after ``vgenre run --profile smoke``)::

    rows = check(load_run("runs/smoke"), load_reference("references/smoke.json"))
    [r for r in rows if r.drifted]   # [] when every lesson reproduced
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import VgenreError
from helpers.fileio import write_text

CONTEXT_METRICS = frozenset({"backend", "backend_version", "keras_version", "n_cpus", "n_gpus"})
"""Metrics that say what the run ran on: always shown, never compared (nor is any metric whose name
ends in ``_seconds``: a time measured on the machine, which another machine or load changes)."""

BOUND_TOL = 1e-4
"""How far outside a stored interval bound an accuracy may fall and still count as on it (references
written before bounds were stored at full precision rounded them to 4 decimals)."""

RESULTS_START, RESULTS_END = "<!-- results table: start -->", "<!-- results table: end -->"
"""The markers around the README's results table, which :func:`write_readme_table` rewrites."""


def is_context(name: str) -> bool:
    """Whether metric *name* describes the machine or its speed rather than a result (never compared)."""
    return name in CONTEXT_METRICS or name.endswith("_seconds")


class ReferenceError(VgenreError, ValueError):
    """A run folder, summary or reference that cannot be read; the message names the file."""


def load_run(path: str | Path) -> dict:
    """The metrics of a run, ``{notebook: {metric: value}}``, with the kind of each, from its folder
    or its summary.json.

    Raises
    ------
    ReferenceError
        When there is no summary.json, it is not JSON, or a notebook of it failed.
    """
    path = Path(path)
    if not path.exists():
        raise ReferenceError(f"{path}: no such run folder or summary.json")
    summary = path / "summary.json" if path.is_dir() else path
    data = _read_json(summary, "run summary")
    failed = [n["notebook"] for n in data.get("notebooks", []) if n.get("status") != "ok"]
    if failed:
        raise ReferenceError(f"{summary}: notebook {failed[0]} did not finish; a reference or a check needs a "
                             "complete run")
    books = data.get("notebooks", [])
    return {key: data.get(key) for key in ("profile", "seeds", "backend", "keras", "framework_version", "devices")} | {
        "metrics": {Path(n["notebook"]).stem: n.get("metrics", {}) for n in books},
        "kinds": {Path(n["notebook"]).stem: n.get("kinds", {}) for n in books}}


def load_reference(path: str | Path) -> dict:
    """A reference file written by :func:`save_reference`."""
    data = _read_json(Path(path), "reference")
    if "metrics" not in data:
        raise ReferenceError(f"{path}: not a reference (no 'metrics'); write one with `vgenre save-reference`")
    return data


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ReferenceError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReferenceError(f"{path}: {what} is not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")  # atomic, nothing left on a failure


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or "processor not known"


def machine_line(cores: int | None = None) -> str:
    """What a reference was measured on: architecture, CPU model, cores, Python."""
    return (f"{platform.machine()}, {cpu_model()}, {cores or _cpu_count()} CPU cores, "
            f"Python {platform.python_version()}")


def save_reference(run: str | Path, out: str | Path) -> Path:
    """Write the reference of the run at *run* (folder or summary.json) to *out*; return *out*.

    It keeps the metrics, their kinds and what they were measured on (profile, seeds, backend,
    versions, machine with its CPU model), not the run's paths or wall times. A seed table of an
    earlier reference in *out* is not carried over (it described other runs): add the new run's with
    ``vgenre seed-table``.
    """
    data = load_run(run)
    cores = data["metrics"].get("00_setup", {}).get("n_cpus")  # the run's machine, as it recorded
    reference = data | {"machine": machine_line(cores), "date": _dt.date.today().isoformat()}
    out = Path(out)
    _write_json(out, reference)
    return out


def _cpu_count() -> int:
    from helpers.workers import available_cores

    return available_cores()


@dataclass(frozen=True)
class Row:
    """One metric of a check: its reference and run values, its kind, how it was compared, the outcome."""

    notebook: str
    metric: str
    reference: object
    run: object
    rule: str
    status: str  # reproduced, drifted, missing, new, shown, not settled
    kind: str = "shown"

    @property
    def drifted(self) -> bool:
        return self.status in ("drifted", "missing")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v):
        return f"[{v[0]:.3f}, {v[1]:.3f}]"
    return str(v)


def compare_lesson(ref, new, interval=None) -> tuple[str, bool]:
    """How a lesson is compared and whether *new* reproduces *ref*: inside the reference's 95%
    *interval* for an accuracy (a bound counts as inside), equal for anything else."""
    if interval is not None and _is_number(ref) and _is_number(new):
        low, high = interval
        return (f"inside reference interval [{low:.3f}, {high:.3f}]",
                low - BOUND_TOL <= new <= high + BOUND_TOL)
    return "equal", ref == new


def kind_of(notebook: str, name: str, run: dict, reference: dict) -> str:
    """The kind of metric *name*: as the run's notebook declared it, else as the reference recorded it,
    else ``shown`` (an undeclared metric never fails a check)."""
    if is_context(name):
        return "shown"
    for source in (run, reference):
        kind = (source.get("kinds") or {}).get(notebook, {}).get(name)
        if kind:
            return kind
    return "shown"


def unsettled(reference: dict) -> dict[tuple[str, str], dict]:
    """The lessons of *reference* that its second seed set did not reproduce: ``{(notebook, metric): row}``."""
    table = reference.get("seed_table") or {}
    return {(r["notebook"], r["metric"]): r for r in table.get("rows", []) if not r["settled"]}


def check(run: dict, reference: dict) -> list[Row]:
    """Compare the metrics of *run* (:func:`load_run`) with *reference*, one :class:`Row` per metric."""
    rows: list[Row] = []
    ref_metrics, run_metrics = reference["metrics"], run["metrics"]
    loose = unsettled(reference)
    for notebook in sorted(set(ref_metrics) | set(run_metrics)):
        ref_nb, run_nb = ref_metrics.get(notebook, {}), run_metrics.get(notebook, {})
        for name in sorted(set(ref_nb) | set(run_nb)):
            if name.endswith("_ci") and name[:-3] in (ref_nb.keys() | run_nb.keys()):
                continue  # an accuracy's interval: compared with its accuracy
            ref, new = ref_nb.get(name), run_nb.get(name)
            kind = kind_of(notebook, name, run, reference)
            if kind == "shown":
                rows.append(Row(notebook, name, ref, new, "shown, not compared", "shown", kind))
            elif name not in run_nb:
                rows.append(Row(notebook, name, ref, None, "missing from the run", "missing", kind))
            elif name not in ref_nb:
                rows.append(Row(notebook, name, None, new, "not in the reference", "new", kind))
            else:
                rule, same = compare_lesson(ref, new, ref_nb.get(f"{name}_ci"))
                if (notebook, name) in loose:
                    other = loose[notebook, name]
                    rows.append(Row(notebook, name, ref, new, f"not settled: seeds {_seeds(other['seeds'])} gave "
                                    f"{_show(other['other'])}", "not settled", kind))
                else:
                    rows.append(Row(notebook, name, ref, new, rule, "reproduced" if same else "drifted", kind))
    return rows


def _seeds(seeds) -> str:
    return ", ".join(map(str, seeds)) if seeds else "?"


def _table(rows: list[Row], cols) -> list[str]:
    cells = [[get(r) for _, get in cols] for r in rows]
    widths = [max(len(name), *(len(c[k]) for c in cells)) for k, (name, _) in enumerate(cols)]
    return (["  ".join(name.ljust(w) for (name, _), w in zip(cols, widths)).rstrip()]
            + ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells])


def format_table(rows: list[Row], *, all_rows: bool = True) -> str:
    """The check as text: the lessons and setup compared (every one; with ``all_rows=False`` only those
    that did not reproduce), the numbers shown beside the reference, then one line of counts."""
    compared = [r for r in rows if r.kind != "shown"]
    shown = [r for r in rows if r.kind == "shown"]
    if not all_rows:
        compared = [r for r in compared if r.status != "reproduced"]
    lines = []
    if compared:
        lines += ["Lessons and setup (compared; a drift fails the check):"]
        lines += _table(compared, [("notebook", lambda r: r.notebook), ("metric", lambda r: r.metric),
                                   ("kind", lambda r: r.kind), ("reference", lambda r: _show(r.reference)),
                                   ("run", lambda r: _show(r.run)), ("status", lambda r: r.status),
                                   ("rule", lambda r: r.rule)]) + [""]
    if shown:
        lines += ["Numbers shown beside the reference (not compared; another machine or seed may move them):"]
        lines += _table(shown, [("notebook", lambda r: r.notebook), ("metric", lambda r: r.metric),
                                ("reference", lambda r: _show(r.reference)), ("run", lambda r: _show(r.run))]) + [""]
    counts = {s: sum(r.status == s for r in rows) for s in ("reproduced", "drifted", "missing", "new", "not settled")}
    counts["shown"] = len(shown)
    bad = counts["drifted"] + counts["missing"]
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + " metrics"
                 + (": DRIFT (a lesson or the setup changed)" if bad else ": every lesson reproduced"))
    return "\n".join(lines)


def check_files(run: str | Path, reference: str | Path, *, all_rows: bool = True) -> tuple[bool, str]:
    """Check the run at *run* against the reference file; return (no drift, the printed tables)."""
    ref = load_reference(reference)
    new = load_run(run)
    rows = check(new, ref)
    header = (f"run {run} ({new['profile']}, seeds {_seeds(new.get('seeds'))}, {new['backend']}) against reference "
              f"{reference} ({ref.get('profile')}, seeds {_seeds(ref.get('seeds'))}, {ref.get('backend')}, "
              f"{ref.get('machine', 'machine not recorded')}, {ref.get('date', 'undated')})")
    notes = []
    if ref.get("profile") != new["profile"]:
        notes.append(f"note: the reference is of profile {ref.get('profile')}, the run of {new['profile']}")
    if ref.get("backend") != new["backend"]:
        notes.append(f"note: the reference ran on {ref.get('backend')}, the run on {new['backend']}; "
                     "results may differ across backends (README, section Reproducibility)")
    ok = not any(r.drifted for r in rows)
    return ok, "\n".join([header, *notes, format_table(rows, all_rows=all_rows)])


# --- lessons under a second seed set ---------------------------------------------------------

def seed_table(reference: dict, other: dict) -> dict:
    """Every lesson of *reference* beside the same lesson in *other*, a run of the same profile with
    another set of training seeds: ``{"seeds": [...], "other_seeds": [...], "rows": [...]}``.

    A row is *settled* when the word is the same (a verdict) or the other run's accuracy lies inside
    the reference's interval (an accuracy). Setup and shown metrics are not lessons and are left out,
    and so are the notebooks the other run did not execute (``vgenre run --seeds 3,4,5 --only 04 05 06
    07 08``: notebooks 00-03 train nothing, so their lessons do not depend on the seeds); the table
    lists them under ``not_run``.
    """
    if reference.get("profile") != other.get("profile"):
        raise ReferenceError(f"a seed table needs two runs of one profile: {reference.get('profile')} and "
                             f"{other.get('profile')}")
    if reference.get("seeds") and reference.get("seeds") == other.get("seeds"):
        raise ReferenceError(f"both runs used seeds {_seeds(other.get('seeds'))}; run the second with "
                             "`vgenre run --seeds ...` (other seeds)")
    rows, not_run = [], []
    for notebook, metrics in sorted(reference["metrics"].items()):
        if notebook not in other["metrics"]:
            not_run.append(notebook)
            continue
        for name, value in sorted(metrics.items()):
            if name.endswith("_ci") or kind_of(notebook, name, {}, reference) != "lesson":
                continue
            new = other["metrics"].get(notebook, {}).get(name)
            _, same = compare_lesson(value, new, metrics.get(f"{name}_ci"))
            rows.append({"notebook": notebook, "metric": name, "reference": value, "other": new,
                         "seeds": other.get("seeds"), "settled": bool(same)})
    return {"seeds": reference.get("seeds"), "other_seeds": other.get("seeds"), "rows": rows, "not_run": not_run}


def add_seed_table(reference: str | Path, run: str | Path) -> tuple[Path, dict]:
    """Store in the reference file the :func:`seed_table` of the run at *run*; return the file and table."""
    ref = load_reference(reference)
    table = seed_table(ref, load_run(run))
    _write_json(Path(reference), ref | {"seed_table": table})
    return Path(reference), table


def format_seed_table(table: dict) -> str:
    """The seed table as text: each lesson's value under both seed sets and whether it is settled."""
    a, b = f"seeds {_seeds(table.get('seeds'))}", f"seeds {_seeds(table.get('other_seeds'))}"
    rows = [Row(r["notebook"], r["metric"], r["reference"], r["other"], "", "settled" if r["settled"] else "NOT SETTLED")
            for r in table["rows"]]
    lines = _table(rows, [("notebook", lambda r: r.notebook), ("lesson", lambda r: r.metric),
                          (a, lambda r: _show(r.reference)), (b, lambda r: _show(r.run)), ("", lambda r: r.status)])
    n = sum(r["settled"] for r in table["rows"])
    skipped = table.get("not_run") or []
    return "\n".join(lines + [f"{n} of {len(table['rows'])} lessons settled (the same under both seed sets)"]
                     + ([f"not run with the other seeds (they train nothing): {', '.join(skipped)}"] if skipped else []))


def lesson_note(profile: str, notebook: str, name: str, word: str) -> str | None:
    """One line for a notebook that records lesson *name*, when the committed reference of *profile*
    found it not settled under its second seed set; None when settled, or when there is no such table."""
    from helpers.config import repo_root

    path = repo_root() / "references" / f"{profile}.json"
    try:
        ref = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    row = unsettled(ref).get((notebook, name))
    if row is None:
        return None
    n = ref.get("metrics", {}).get("05_lstm_training", {}).get("n_test_clips")
    clips = f"{n} test clips" if n else "these test clips"
    return (f"not settled: the course's reference run gave {_show(row['reference'])} with seeds "
            f"{_seeds(ref.get('seeds'))} and {_show(row['other'])} with seeds {_seeds(row['seeds'])}; {clips} cannot "
            f"settle this one, so read {word if isinstance(word, str) else _show(word)!r} as this run's outcome, "
            "not as a lesson")


# --- the README's results table --------------------------------------------------------------

PAPER_TABLE_I = {
    "single_frame": "ConvNet 65%",
    "lstm_softmax": "CNN-LSTM softmax 85.4%",
    "lstm_pool": "CNN-LSTM pool 90.3%",
    "conv3d": "3D CNN 52.8% (by our attribution the C3D paper's 10-dimension feature result)",
}
"""The rows of the paper's Table I that a method of the series corresponds to."""

BASELINES = ("colour_stats", "colour_and_motion")
"""Notebook 05's cheap baselines: fitted once (no seeds), so no spread."""

METHOD_NOTES = {"colour_stats": "baseline: logistic regression on colour histograms, no time",
                "colour_and_motion": "baseline: colour histograms, their spread and change over time",
                "conv3d": "on 32x32 thumbnails", "early_fusion": "pool features + log-mel",
                "late_fusion": "pool LSTM + audio model"}


def results_table(reference: dict, notebooks: str | Path = "notebooks") -> str:
    """The README's results table (markdown) from the metrics notebook 05 recorded in *reference*, then
    the lines the notebooks under *notebooks* declare (:func:`other_results`) and the seed lines."""
    from helpers.models import METHODS

    m = reference["metrics"].get("05_lstm_training", {})
    methods = [k[len("test_acc_std_"):] for k in m if k.startswith("test_acc_std_")]
    order = [*BASELINES, *METHODS]  # the cheap baselines, then the registry's order (Table I's)
    methods.sort(key=lambda x: order.index(x) if x in order else len(order))
    if not methods:
        raise ReferenceError("the reference has no test accuracies of notebook 05 (test_acc_std_<method>)")
    best = max(m[f"test_acc_{x}"] for x in methods)
    lines = ["| method | test accuracy (mean ± sd over seeds) | 95% interval over test clips | macro-F1 "
             "| the paper's Table I |", "|---|---|---|---|---|"]
    for x in methods:
        acc = (f"{m[f'test_acc_{x}']:.3f} (one fit)" if x in BASELINES else
               f"{m[f'test_acc_{x}']:.3f} ± {m[f'test_acc_std_{x}']:.3f}")
        if m[f"test_acc_{x}"] == best:
            acc = f"**{acc}**"
        ci = m.get(f"test_acc_{x}_ci")
        name = f"`{x}`" + (f" ({METHOD_NOTES[x]})" if x in METHOD_NOTES else "")
        lines.append(f"| {name} | {acc} | {_show(ci) if ci else '-'} | {m.get(f'test_f1_{x}', float('nan')):.3f} "
                     f"| {PAPER_TABLE_I.get(x, '')} |")
    lines += ["", *other_results(reference, notebooks), *seed_lines(reference)]
    setup = reference["metrics"].get("00_setup", {})
    lines += ["", f"Profile `{reference.get('profile')}`, seeds {_seeds(reference.get('seeds'))}, "
              f"backend {reference.get('backend')} "
              f"(Keras {reference.get('keras')}), backbone weights: {setup.get('weights_source', 'not recorded')}, "
              f"{m.get('n_test_clips', '?')} test clips, {reference.get('machine', 'machine not recorded')}, "
              f"{reference.get('date', 'undated')}."]
    return "\n".join(lines)


def _acc(metrics: dict, name: str) -> str:
    """An accuracy with its interval when the run recorded one: ``0.812 [0.742, 0.875]``."""
    ci = metrics.get(f"{name}_ci")
    return f"{metrics[name]:.3f}" + (f" {_show(ci)}" if ci else "")


@dataclass(frozen=True)
class Declared:
    """A README line declared where a notebook records a metric (``readme=`` of ``record_metric``).

    *name* is the metric's name, or a pattern (from an f-string name: one line part per recorded
    metric that matches); *lead* starts the line when the parts of a pattern are joined.
    """
    notebook: str
    name: str
    template: str | None  # None: a literal name recorded without a line (it only claims the name)
    lead: str = ""
    pattern: bool = False


def _name_pattern(node) -> tuple[str, bool] | None:
    """The metric name of a ``record_*`` call: the literal, or a regex for an f-string (None: neither)."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, False
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else "(.+?)" for v in node.values), True
    return None


def declared_lines(notebooks: str | Path) -> list[Declared]:
    """Every README line the notebooks under *notebooks* declare, in notebook and cell order.

    A line is the ``readme=`` argument of a ``ctx.record_metric`` or ``ctx.record_accuracy`` call: a
    template (``str.format`` fields name metrics the same notebook records; ``{}`` is the metric of
    the call, ``{label}`` the part of an f-string name that varies), or a ``(lead, part)`` pair for an
    f-string name, whose parts, one per metric recorded under that name, are joined after *lead*. A
    call with a literal name and no ``readme=`` is listed too (template None): it keeps the metric
    from a pattern's line.

    Raises
    ------
    ReferenceError
        When a ``readme=`` is not a literal string (or pair of strings), naming the notebook and cell.
    """
    import ast

    out = []
    for path in sorted(Path(notebooks).glob("[0-9][0-9]_*.ipynb")):
        cells = _read_json(path, "a notebook").get("cells", [])
        for k, cell in enumerate(cells):
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell.get("source", []))
            try:
                tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("record_metric", "record_accuracy") and node.args):
                    continue
                readme = next((kw.value for kw in node.keywords if kw.arg == "readme"), None)
                name = _name_pattern(node.args[0])
                if readme is None:  # a literal name still keeps a pattern's line from claiming it
                    if name is not None and not name[1]:
                        out.append(Declared(path.stem, name[0], None))
                    continue
                try:
                    text = ast.literal_eval(readme)
                except ValueError:
                    text = None
                if name is None or not (isinstance(text, str) or (isinstance(text, tuple) and len(text) == 2
                                                                  and all(isinstance(t, str) for t in text))):
                    raise ReferenceError(f"{path.name}, cell {k}, line {node.lineno}: readme= must be a literal string "
                                         "(or a pair of them) on a metric named by a literal or an f-string")
                lead, template = ("", text) if isinstance(text, str) else text
                out.append(Declared(path.stem, name[0], template, lead, name[1]))
    return out


def _render_value(reference: dict, notebook: str, name: str, spec: str) -> str:
    """One field of a README line: an accuracy with its interval, a lesson's word in bold (marked when
    the second seed set did not settle it), else the value (formatted by *spec* when given)."""
    m = reference["metrics"][notebook]
    value = m[name]
    if spec:
        return format(value, spec)
    if f"{name}_ci" in m and _is_number(value):
        text = _acc(m, name)
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(str(v).replace("_", " ") for v in value) or "none"
    elif isinstance(value, float):
        text = f"{value:.3f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    if ((reference.get("kinds") or {}).get(notebook, {}).get(name) == "lesson" and not f"{name}_ci" in m):
        text = f"**{text}**"
        row = unsettled(reference).get((notebook, name))
        if row:
            text += f" (not settled: seeds {_seeds(row['seeds'])} gave {_show(row['other'])})"
    return text


def _fill(reference: dict, line: Declared, name: str, label: str) -> str:
    import string

    m = reference["metrics"][line.notebook]
    out = []
    for literal, field, spec, _ in string.Formatter().parse(line.template):
        out.append(literal)
        if field is None:
            continue
        if field == "label":
            out.append(label)
            continue
        field = field or name
        if field not in m:
            raise ReferenceError(f"{line.notebook}: the README line declared with '{line.name}' names '{field}', "
                                 "which the reference does not hold (renamed or no longer recorded?)")
        out.append(_render_value(reference, line.notebook, field, spec))
    return "".join(out)


def _specificity(line: Declared) -> float:
    """How specific a declaration's name is: a literal beats any pattern, a longer literal part wins."""
    return float("inf") if not line.pattern else len(re.sub(r"\(\.\+\?\)|\\", "", line.name))


def other_results(reference: dict, notebooks: str | Path = "notebooks") -> list[str]:
    """The README's bullet lines: each line a notebook declares (:func:`declared_lines`), filled from
    *reference*. A recorded metric belongs to the most specific declaration it matches (a literal
    name, else the pattern with the longest literal part). A line whose metric the reference did not
    record (a row that did not run) is left out; a line that names a metric the reference lacks
    raises :class:`ReferenceError`."""
    declared = declared_lines(notebooks)
    owner: dict[tuple[str, str], Declared] = {}
    for notebook in {d.notebook for d in declared}:
        mine = [d for d in declared if d.notebook == notebook]
        for name in reference["metrics"].get(notebook, {}):
            hits = [d for d in mine if (re.fullmatch(d.name, name) if d.pattern else d.name == name)]
            if hits and not name.endswith("_ci"):
                owner[notebook, name] = max(hits, key=_specificity)
    out = []
    for line in declared:
        m = reference["metrics"].get(line.notebook, {})
        where = f" (notebook {line.notebook[:2]})"
        if line.template is None:
            continue
        if not line.pattern:
            if owner.get((line.notebook, line.name)) is line:
                out.append(f"- {_fill(reference, line, line.name, '')}{where}.")
            continue
        parts = []
        for name in m:
            if owner.get((line.notebook, name)) is line:
                match = re.fullmatch(line.name, name)
                label = name[match.start(1):match.end(match.lastindex)].replace("_vs_", " against ")
                parts.append(_fill(reference, line, name, label))
        if parts:
            out.append(f"- {line.lead}{'; '.join(parts)}{where}.")
    return out


def seed_lines(reference: dict) -> list[str]:
    """README lines saying which lessons held under the reference's second seed set."""
    table = reference.get("seed_table")
    if not table:
        return ["", "No second seed set was run for this reference: its lessons are not yet known to be settled."]
    rows = table["rows"]
    loose = [r for r in rows if not r["settled"]]
    line = (f"Lessons under a second seed set (seeds {_seeds(table['other_seeds'])} against "
            f"{_seeds(table['seeds'])}, `references/{reference.get('profile')}.json`, key `seed_table`): "
            f"{len(rows) - len(loose)} of {len(rows)} held")
    if loose:
        line += "; not settled, so not lessons: " + ", ".join(
            f"`{r['metric']}` ({_show(r['reference'])} / {_show(r['other'])})" for r in loose)
    return ["", line + "."]


def write_readme_table(reference: str | Path, readme: str | Path, notebooks: str | Path | None = None) -> bool:
    """Rewrite the results table between the README's markers from *reference* and the lines the
    notebooks declare (*notebooks*; default: ``notebooks/`` beside the README); True if it changed.

    Raises
    ------
    ReferenceError
        When the README lacks the two markers (:data:`RESULTS_START`, :data:`RESULTS_END`).
    """
    readme = Path(readme)
    text = readme.read_text()
    pattern = re.compile(re.escape(RESULTS_START) + r"\n.*?" + re.escape(RESULTS_END), re.S)
    if not pattern.search(text):
        raise ReferenceError(f"{readme}: no results table markers ({RESULTS_START} ... {RESULTS_END})")
    table = results_table(load_reference(reference), readme.parent / "notebooks" if notebooks is None else notebooks)
    new = pattern.sub(lambda _: f"{RESULTS_START}\n{table}\n{RESULTS_END}", text)
    if new != text:
        write_text(readme, new)
    return new != text
