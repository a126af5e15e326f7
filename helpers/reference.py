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
    return (f"not settled: with seeds {_seeds(ref.get('seeds'))} the reference recorded {row['reference']!r}, with "
            f"seeds {_seeds(row['seeds'])} {row['other']!r} ({path.name}); {clips} cannot settle '{name}', "
            f"so read '{word}' as this run's outcome, not as a lesson")


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


def results_table(reference: dict) -> str:
    """The README's results table (markdown) from the metrics notebook 05 recorded in *reference*."""
    m = reference["metrics"].get("05_lstm_training", {})
    methods = [k[len("test_acc_std_"):] for k in m if k.startswith("test_acc_std_")]
    order = ["colour_stats", "colour_and_motion", "single_frame", "frame_average", "mlp", "conv3d", "lstm_softmax",
             "lstm_pool", "audio_only", "early_fusion", "late_fusion"]
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
    lines += ["", *other_results(reference), *seed_lines(reference)]
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


def other_results(reference: dict) -> list[str]:
    """Bullet lines for the README: what notebooks 01, 02, 04, 05 and 06 measured in the reference run."""
    m = reference["metrics"]
    nb01, nb02, nb06 = (m.get(k, {}) for k in ("01_data_curation", "02_frame_rate_experiments", "06_error_analysis"))
    loose = unsettled(reference)

    def word(notebook: str, key: str, text: str | None = None) -> str:
        """A recorded verdict in bold, marked when the second seed set did not reproduce it."""
        value = m.get(notebook, {}).get(key)
        shown = f"**{text or value}**"
        row = loose.get((notebook, key))
        return shown + (f" (not settled: seeds {_seeds(row['seeds'])} gave {_show(row['other'])})" if row else "")

    out = []
    if "leakage_verdict" in nb01:
        linear = (f" (a logistic regression, which cannot remember clips: {_acc(nb01, 'leakage_linear_random_split_acc')}"
                  f" against {_acc(nb01, 'leakage_linear_grouped_split_acc')}, {word('01_data_curation', 'leakage_verdict_linear')})"
                  if "leakage_verdict_linear" in nb01 else "")
        out.append(f"- Leak (notebook 01, a nearest-neighbour colour classifier, five-fold cross-validation over every "
                   f"clip): folds that ignore films {_acc(nb01, 'leakage_random_split_acc')}, folds that keep films "
                   f"whole {_acc(nb01, 'leakage_grouped_split_acc')}; the first is {word('01_data_curation', 'leakage_verdict')}{linear}.")
    rates = sorted((float(k[len("fps_acc_"):]), k) for k in nb02 if k.startswith("fps_acc_") and not k.endswith("_ci"))
    if rates:
        out.append("- Frame rate (notebook 02, a cheap classifier): " + ", ".join(f"{r:g} fps {_acc(nb02, k)}" for r, k in rates)
                   + (f"; the lowest rate not distinguishable from the best: {nb02['knee_fps']:g} fps" if "knee_fps" in nb02
                      else "") + f". Flashes caught at 1 fps: {nb02.get('flashes_caught_at_1fps', float('nan')):.0%}, at 4 fps: "
                   f"{nb02.get('flashes_caught_at_4fps', float('nan')):.0%}.")
    nb04, nb05 = m.get("04_inceptionv3_transfer_learning", {}), m.get("05_lstm_training", {})
    ran = nb04.get("transfer_rows_run") or []
    if ran:
        skipped = nb04.get("transfer_rows_not_run") or []
        out.append("- Backbone weights (notebook 04, `lstm_pool`, first seed): "
                   + ", ".join(f"{r.replace('_', ' ')} {_acc(nb04, f'transfer_clip_acc_{r}')}" for r in ran)
                   + (f"; not run (no ImageNet weights): {', '.join(r.replace('_', ' ') for r in skipped)}" if skipped else "")
                   + "".join(f"; {k[len('verdict_transfer_'):].replace('_vs_', ' against ').replace('_', ' ')}: "
                             f"{word('04_inceptionv3_transfer_learning', k)}"
                             for k in nb04 if k.startswith("verdict_transfer_")) + ".")
    if "verdict_preprocessing_slip" in nb04:
        out.append(f"- Preprocessing slip (notebook 04, pixels scaled to [0, 1] for a network that expects [-1, 1]): "
                   f"the head's frame accuracy {nb04.get('head_frame_test_acc', float('nan')):.3f} -> "
                   f"{nb04.get('slip_frame_acc', float('nan')):.3f}, `lstm_pool` {_acc(nb04, 'slip_clip_acc')} after "
                   f"the slip; the slip against the right scaling: {word('04_inceptionv3_transfer_learning', 'verdict_preprocessing_slip')}.")
    if "same_film_neighbours" in nb04:
        out.append(f"- Frames clump by film (notebook 04): of a frame's 10 nearest neighbours in other clips, "
                   f"{nb04['same_film_neighbours']:.0%} come from its film's other clip, "
                   f"{nb04.get('same_film_neighbours_if_mixed', float('nan')):.0%} would if a genre's clips were "
                   f"shuffled between its films.")
    ablations = ("verdict_order_", "verdict_softmax_", "verdict_balanced_")
    table_i = [k for k in nb05 if k.startswith("verdict_") and k != "verdict_wide_vs_deep" and not k.startswith(ablations)]
    if table_i:
        out.append("- Table I's comparisons (notebook 05, paired over the test clips, each clip scored by its share of "
                   "seeds): " + "; ".join(f"{k[len('verdict_'):].replace('_vs_', ' against ').replace('_', ' ')}: "
                                          f"{word('05_lstm_training', k)}" for k in sorted(table_i)) + ".")
    order = {"lstm_pool": "`lstm_pool`", "mlp": "`mlp`", "frame_average": "`frame_average` (the control)"}
    if any(f"verdict_order_{m}" in nb05 for m in order):
        out.append("- Order (notebook 05): the trained models on ordered against shuffled test steps: "
                   + ", ".join(f"{name} {word('05_lstm_training', f'verdict_order_{m}')}" for m, name in order.items()
                               if f"verdict_order_{m}" in nb05)
                   + (f"; `lstm_pool` trained on ordered against shuffled steps (first seed, "
                      f"{_acc(nb05, 'test_acc_lstm_pool_shuffled_training')} when trained shuffled): "
                      f"{word('05_lstm_training', 'verdict_order_training')}" if "verdict_order_training" in nb05 else "")
                   + ".")
    if "verdict_balanced_vs_early_fusion" in nb05:
        out.append(f"- Fusion with both senses projected to the same width (notebook 05, first seed): "
                   f"{_acc(nb05, 'test_acc_balanced_fusion')}; against early fusion: "
                   f"{word('05_lstm_training', 'verdict_balanced_vs_early_fusion')}.")
    if "verdict_softmax_crossed_vs_plain" in nb05:
        out.append(f"- `lstm_softmax` on features from heads that did not see the clip (notebook 05, first seed): "
                   f"{_acc(nb05, 'test_acc_lstm_softmax_crossed')}; against the run's head: "
                   f"{word('05_lstm_training', 'verdict_softmax_crossed_vs_plain')}; `lstm_pool` against it: "
                   f"{word('05_lstm_training', 'verdict_softmax_pool_vs_crossed')}.")
    if "verdict_wide_vs_deep" in nb05 and "test_acc_deep_lstm" in nb05:
        out.append(f"- Wide against deep (notebook 05, first seed, about the same number of LSTM weights): one layer of "
                   f"the profile's width against two of {nb05.get('deep_lstm_units', '?')} units "
                   f"({_acc(nb05, 'test_acc_deep_lstm')}); wide against deep: {word('05_lstm_training', 'verdict_wide_vs_deep')}.")
    hard = [k for k in ("lstm_pool", "audio_only", "early_fusion", "late_fusion") if f"hard_acc_{k}" in nb06]
    if hard:
        out.append("- The paper's two failures (notebook 06, hard cases never trained on): "
                   + ", ".join(f"`{k}` {_acc(nb06, f'hard_acc_{k}')}" for k in hard) + ".")
    hidden = [k for k in ("lstm_pool", "audio_only", "late_fusion") if f"mistakes_on_hidden_cues_{k}" in nb06]
    if hidden:
        out.append("- Share of each model's test mistakes that fall on clips with a hidden cue (notebook 06): "
                   + ", ".join(f"`{k}` {nb06[f'mistakes_on_hidden_cues_{k}']:.0%}" for k in hidden) + ".")
    if "split_verdict_lstm_pool" in nb06:
        out.append(f"- `lstm_pool` trained and tested on a random split of the same sizes: "
                   f"{_acc(nb06, 'random_split_acc_lstm_pool')} against {_acc(nb06, 'grouped_split_acc_lstm_pool')} "
                   f"on the grouped split: {word('06_error_analysis', 'split_verdict_lstm_pool')} (notebook 06).")
    if "darkening_shift_verdict" in nb06:
        out.append(f"- Frames darkened to 40%: `lstm_pool` accuracy {nb06.get('brightness_0.4_acc_lstm_pool', float('nan')):.3f} "
                   f"(1.0: {nb06.get('brightness_1_acc_lstm_pool', float('nan')):.3f}); "
                   + "the share of Horror and Science Fiction predictions, darkened against as made: "
                   + word("06_error_analysis", "darkening_shift_verdict") + " (notebook 06).")
    nb08 = m.get("08_beyond_the_paper", {})
    designs = [d for d in ("attention", "tconv") if f"verdict_{d}_vs_lstm" in nb08]
    if designs:
        names = {"attention": "temporal attention", "tconv": "a temporal convolution"}
        out.append("- Beyond the paper (notebook 08, the same features, split and seeds as `lstm_pool`): " + ", ".join(
            f"{names[d]} {_acc(nb08, f'test_acc_{d}')}, {nb08.get(f'params_{d}', 0):,} weights, against the LSTM: "
            f"{word('08_beyond_the_paper', f'verdict_{d}_vs_lstm')}" for d in designs)
            + (f" (`lstm_pool`: {nb08['params_lstm_pool']:,} weights)" if "params_lstm_pool" in nb08 else "") + ".")
    nb07 = m.get("07_classify_your_own_video", {})
    if "ood_score_demo" in nb07:
        word = {True: "familiar", False: "**not familiar**"}
        out.append("- Out-of-distribution score (notebook 07; above 1: farther from the training clips than 99% of them "
                   "are from each other): " + ", ".join(
                       f"{name} {nb07[f'ood_score_{key}']:.2f} ({word.get(nb07.get(f'ood_familiar_{key}'), '?')})"
                       for key, name in (("demo", "the demo clip"), ("grey", "a grey silent clip"), ("noise", "noise"))
                       if f"ood_score_{key}" in nb07)
                   + (f"; test clips judged familiar: {nb07['ood_familiar_share_test']:.0%}"
                      if "ood_familiar_share_test" in nb07 else "") + ".")
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


def write_readme_table(reference: str | Path, readme: str | Path) -> bool:
    """Rewrite the results table between the README's markers from *reference*; True if it changed.

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
    table = results_table(load_reference(reference))
    new = pattern.sub(lambda _: f"{RESULTS_START}\n{table}\n{RESULTS_END}", text)
    if new != text:
        write_text(readme, new)
    return new != text
