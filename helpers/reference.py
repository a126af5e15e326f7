"""Reference results: what a run of the series measured, kept in the repository and checked again.

A *reference* is the metrics of every notebook of one run (``summary.json``) with what the run
ran on, saved as JSON under ``references/<profile>.json``. :func:`check` compares a new run with
it, metric by metric, by the kind of the metric:

* an accuracy recorded with its 95% interval (``name`` and ``name_ci``) reproduces when the new
  value lies inside the reference's interval: the two runs agree within what the test clips can
  tell;
* a count, a word (a verdict such as ``"ahead"``), a flag or a list must be equal;
* any other number (a spread over seeds, an error, a calibration gap) must agree within 10% or
  0.02, whichever is larger;
* what describes the machine rather than the result (backend, versions, core and GPU counts) is
  shown, never compared.

A metric that is in the reference but missing from the run counts as drifted; one that is new in
the run is listed as new. ``vgenre run --check FILE`` and ``vgenre check RUN FILE`` print the
table and exit 1 when anything drifted; ``vgenre save-reference RUN FILE`` writes a reference and
``vgenre readme-table FILE`` writes the README's results table from one.

>>> rows = check(load_run("runs/smoke"), load_reference("references/smoke.json"))  # doctest: +SKIP
>>> [r for r in rows if r.status == "drifted"]  # doctest: +SKIP
[]
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import re
from dataclasses import dataclass
from pathlib import Path

CONTEXT_METRICS = frozenset({"backend", "backend_version", "keras_version", "n_cpus", "n_gpus"})
"""Metrics that say what the run ran on: shown by :func:`check`, never compared (nor is any metric
whose name ends in ``_seconds``: a time measured on the machine, which another machine or load changes)."""


def is_context(name: str) -> bool:
    """Whether metric *name* describes the machine or its speed rather than a result (not compared)."""
    return name in CONTEXT_METRICS or name.endswith("_seconds")

REL_TOL, ABS_TOL = 0.10, 0.02
"""How close a number without an interval must come to the reference: 10% or 0.02."""

RESULTS_START, RESULTS_END = "<!-- results table: start -->", "<!-- results table: end -->"
"""The markers around the README's results table, which :func:`write_readme_table` rewrites."""


class ReferenceError(ValueError):
    """A run folder, summary or reference that cannot be read; the message names the file."""


def load_run(path: str | Path) -> dict:
    """The metrics of a run, ``{notebook: {metric: value}}``, from its folder or its summary.json.

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
    return {key: data.get(key) for key in ("profile", "backend", "keras", "framework_version", "devices")} | {
        "metrics": {Path(n["notebook"]).stem: n.get("metrics", {}) for n in data.get("notebooks", [])}}


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


def save_reference(run: str | Path, out: str | Path) -> Path:
    """Write the reference of the run at *run* (folder or summary.json) to *out*; return *out*.

    It keeps the metrics and what they were measured on (profile, backend, versions, machine),
    not the run's paths or wall times.
    """
    data = load_run(run)
    cores = data["metrics"].get("00_setup", {}).get("n_cpus") or _cpu_count()  # the run's machine, as it recorded
    reference = data | {"machine": f"{platform.machine()}, {cores} CPU cores, Python {platform.python_version()}",
                        "date": _dt.date.today().isoformat()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)
    return out


def _cpu_count() -> int:
    from helpers.workers import available_cores

    return available_cores()


@dataclass(frozen=True)
class Row:
    """One metric of a check: its reference and run values, how they were compared, the outcome."""

    notebook: str
    metric: str
    reference: object
    run: object
    rule: str
    status: str  # reproduced, drifted, missing, new, info

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


def compare_metric(name: str, ref, new, interval=None) -> tuple[str, bool]:
    """How metric *name* is compared and whether *new* reproduces *ref* (see the module's rules).

    *interval* is the reference's 95% interval of an accuracy (``name_ci``), when it has one.
    """
    if interval is not None and _is_number(ref) and _is_number(new):
        low, high = interval
        return f"inside reference interval [{low:.3f}, {high:.3f}]", low - 1e-9 <= new <= high + 1e-9
    if isinstance(ref, float) and _is_number(new):
        return f"within {REL_TOL:.0%} or {ABS_TOL}", math.isclose(new, ref, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(ref, list) and isinstance(new, list) and all(_is_number(x) for x in ref + new) and (
            any(isinstance(x, float) for x in ref)):
        same = len(ref) == len(new) and all(math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
                                            for a, b in zip(ref, new))
        return f"each within {REL_TOL:.0%} or {ABS_TOL}", same
    return "equal", ref == new


def check(run: dict, reference: dict) -> list[Row]:
    """Compare the metrics of *run* (:func:`load_run`) with *reference*, one :class:`Row` per metric."""
    rows: list[Row] = []
    ref_metrics, run_metrics = reference["metrics"], run["metrics"]
    for notebook in sorted(set(ref_metrics) | set(run_metrics)):
        ref_nb, run_nb = ref_metrics.get(notebook, {}), run_metrics.get(notebook, {})
        for name in sorted(set(ref_nb) | set(run_nb)):
            if name.endswith("_ci") and name[:-3] in (ref_nb.keys() | run_nb.keys()):
                continue  # an accuracy's interval: compared with its accuracy
            ref, new = ref_nb.get(name), run_nb.get(name)
            if is_context(name):
                rows.append(Row(notebook, name, ref, new, "shown, not compared", "info"))
            elif name not in run_nb:
                rows.append(Row(notebook, name, ref, None, "missing from the run", "missing"))
            elif name not in ref_nb:
                rows.append(Row(notebook, name, None, new, "not in the reference", "new"))
            else:
                rule, same = compare_metric(name, ref, new, ref_nb.get(f"{name}_ci"))
                rows.append(Row(notebook, name, ref, new, rule, "reproduced" if same else "drifted"))
    return rows


def format_table(rows: list[Row], *, all_rows: bool = False) -> str:
    """The check as a text table: every drifted, missing and new metric (every row with *all_rows*),
    then one line of counts."""
    shown = rows if all_rows else [r for r in rows if r.status not in ("reproduced", "info")]
    cols = [("notebook", lambda r: r.notebook), ("metric", lambda r: r.metric),
            ("reference", lambda r: _show(r.reference)), ("run", lambda r: _show(r.run)),
            ("status", lambda r: r.status), ("rule", lambda r: r.rule)]
    lines = []
    if shown:
        cells = [[get(r) for _, get in cols] for r in shown]
        widths = [max(len(name), *(len(c[k]) for c in cells)) for k, (name, _) in enumerate(cols)]
        lines.append("  ".join(name.ljust(w) for (name, _), w in zip(cols, widths)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    counts = {s: sum(r.status == s for r in rows) for s in ("reproduced", "drifted", "missing", "new")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + " metrics"
                 + (": DRIFT" if counts["drifted"] or counts["missing"] else ": all reproduced"))
    return "\n".join(lines)


def check_files(run: str | Path, reference: str | Path, *, all_rows: bool = False) -> tuple[bool, str]:
    """Check the run at *run* against the reference file; return (no drift, the printed table)."""
    ref = load_reference(reference)
    new = load_run(run)
    rows = check(new, ref)
    header = (f"run {run} ({new['profile']}, {new['backend']}) against reference {reference} "
              f"({ref.get('profile')}, {ref.get('backend')}, {ref.get('machine', 'machine not recorded')}, "
              f"{ref.get('date', 'undated')})")
    notes = []
    if ref.get("profile") != new["profile"]:
        notes.append(f"note: the reference is of profile {ref.get('profile')}, the run of {new['profile']}")
    if ref.get("backend") != new["backend"]:
        notes.append(f"note: the reference ran on {ref.get('backend')}, the run on {new['backend']}; "
                     "results may differ across backends (README, section Reproducibility)")
    ok = not any(r.drifted for r in rows)
    return ok, "\n".join([header, *notes, format_table(rows, all_rows=all_rows)])


# --- the README's results table --------------------------------------------------------------

PAPER_TABLE_I = {
    "single_frame": "ConvNet 65%",
    "lstm_softmax": "CNN-LSTM softmax 85.4%",
    "lstm_pool": "CNN-LSTM pool 90.3%",
    "conv3d": "3D CNN 52.8% (by our attribution the C3D paper's 10-dimension feature result)",
}
"""The rows of the paper's Table I that a method of the series corresponds to."""

METHOD_NOTES = {"conv3d": "on 32x32 thumbnails", "early_fusion": "pool features + log-mel",
                "late_fusion": "pool LSTM + audio model"}


def results_table(reference: dict) -> str:
    """The README's results table (markdown) from the metrics notebook 05 recorded in *reference*."""
    m = reference["metrics"].get("05_lstm_training", {})
    methods = [k[len("test_acc_std_"):] for k in m if k.startswith("test_acc_std_")]
    order = ["single_frame", "frame_average", "mlp", "conv3d", "lstm_softmax", "lstm_pool", "audio_only",
             "early_fusion", "late_fusion"]
    methods.sort(key=lambda x: order.index(x) if x in order else len(order))
    if not methods:
        raise ReferenceError("the reference has no test accuracies of notebook 05 (test_acc_std_<method>)")
    best = max(m[f"test_acc_{x}"] for x in methods)
    lines = ["| method | test accuracy (mean ± sd over seeds) | 95% interval over test clips | macro-F1 "
             "| the paper's Table I |", "|---|---|---|---|---|"]
    for x in methods:
        acc = f"{m[f'test_acc_{x}']:.3f} ± {m[f'test_acc_std_{x}']:.3f}"
        if m[f"test_acc_{x}"] == best:
            acc = f"**{acc}**"
        ci = m.get(f"test_acc_{x}_ci")
        name = f"`{x}`" + (f" ({METHOD_NOTES[x]})" if x in METHOD_NOTES else "")
        lines.append(f"| {name} | {acc} | {_show(ci) if ci else '-'} | {m.get(f'test_f1_{x}', float('nan')):.3f} "
                     f"| {PAPER_TABLE_I.get(x, '')} |")
    lines += ["", *other_results(reference)]
    setup = reference["metrics"].get("00_setup", {})
    lines += ["", f"Profile `{reference.get('profile')}`, backend {reference.get('backend')} "
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
    out = []
    if "leakage_verdict" in nb01:
        linear = (f" (a logistic regression, which cannot remember clips: {_acc(nb01, 'leakage_linear_random_split_acc')}"
                  f" against {_acc(nb01, 'leakage_linear_grouped_split_acc')}, **{nb01['leakage_verdict_linear']}**)"
                  if "leakage_verdict_linear" in nb01 else "")
        out.append(f"- Leak (notebook 01, a nearest-neighbour colour classifier, five-fold cross-validation over every "
                   f"clip): folds that ignore films {_acc(nb01, 'leakage_random_split_acc')}, folds that keep films "
                   f"whole {_acc(nb01, 'leakage_grouped_split_acc')}; the first is **{nb01['leakage_verdict']}**{linear}.")
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
                   + "".join(f"; {k[len('verdict_transfer_'):].replace('_vs_', ' against ').replace('_', ' ')}: **{v}**"
                             for k, v in nb04.items() if k.startswith("verdict_transfer_")) + ".")
    if "verdict_preprocessing_slip" in nb04:
        out.append(f"- Preprocessing slip (notebook 04, pixels scaled to [0, 1] for a network that expects [-1, 1]): "
                   f"the head's frame accuracy {nb04.get('head_frame_test_acc', float('nan')):.3f} -> "
                   f"{nb04.get('slip_frame_acc', float('nan')):.3f}, `lstm_pool` {_acc(nb04, 'slip_clip_acc')} after "
                   f"the slip; the slip against the right scaling: **{nb04['verdict_preprocessing_slip']}**.")
    if "same_film_neighbours" in nb04:
        out.append(f"- Frames clump by film (notebook 04): of a frame's 10 nearest neighbours in other clips, "
                   f"{nb04['same_film_neighbours']:.0%} come from its film's other clip, "
                   f"{nb04.get('same_film_neighbours_if_mixed', float('nan')):.0%} would if a genre's clips were "
                   f"shuffled between its films.")
    if "verdict_wide_vs_deep" in nb05:
        out.append(f"- Wide against deep (notebook 05, first seed, about the same number of LSTM weights): one layer of "
                   f"the profile's width against two of {nb05.get('deep_lstm_units', '?')} units "
                   f"({_acc(nb05, 'test_acc_deep_lstm')}); wide against deep: **{nb05['verdict_wide_vs_deep']}**.")
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
                   f"on the grouped split: **{nb06['split_verdict_lstm_pool']}** (notebook 06).")
    if "darkening_shift_verdict" in nb06:
        out.append(f"- Frames darkened to 40%: `lstm_pool` accuracy {nb06.get('brightness_0.4_acc_lstm_pool', float('nan')):.3f} "
                   f"(1.0: {nb06.get('brightness_1_acc_lstm_pool', float('nan')):.3f}); "
                   + {"ahead": "darkening **pushes** predictions toward Horror and Science Fiction",
                      "behind": "darkening **pulls** predictions away from Horror and Science Fiction",
                      "not distinguishable": "a shift toward Horror and Science Fiction is **not distinguishable**"}.get(
                       nb06["darkening_shift_verdict"], nb06["darkening_shift_verdict"]) + " (notebook 06).")
    nb08 = m.get("08_beyond_the_paper", {})
    designs = [d for d in ("attention", "tconv") if f"verdict_{d}_vs_lstm" in nb08]
    if designs:
        names = {"attention": "temporal attention", "tconv": "a temporal convolution"}
        out.append("- Beyond the paper (notebook 08, the same features, split and seeds as `lstm_pool`): " + ", ".join(
            f"{names[d]} {_acc(nb08, f'test_acc_{d}')}, {nb08.get(f'params_{d}', 0):,} weights, against the LSTM: "
            f"**{nb08[f'verdict_{d}_vs_lstm']}**" for d in designs)
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
        readme.write_text(new)
    return new != text
