"""Run the notebook series with papermill and collect what each notebook recorded.

``vgenre run --profile smoke`` executes every notebook of ``notebooks/`` in order, injecting the
profile into the cell tagged ``parameters``, and writes::

    runs/<profile>/
        00_setup.ipynb ...            executed copies
        figures/                      every figure saved through helpers.plots.save_fig
        metrics/<notebook>.json       what the notebook recorded through record_metric
        summary.json                  status, wall time and metrics of each notebook
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.config import get_profile, repo_root, runs_dir

log = logging.getLogger(__name__)

KERNEL_NAME = "vgenre"
"""The Jupyter kernel every notebook names; ``make`` registers it for the project's .venv."""


def notebooks_dir() -> Path:
    """The folder of the numbered notebooks (``VGENRE_NOTEBOOKS_DIR`` overrides)."""
    return Path(os.environ.get("VGENRE_NOTEBOOKS_DIR", repo_root() / "notebooks"))


def list_notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order, or those whose number or name starts with one of *only*."""
    books = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
        if not books:
            raise FileNotFoundError(f"no notebook in {notebooks_dir()} matches {only}")
    return books


def current_run_dir(profile: str | None = None) -> Path:
    """The folder of the run this code belongs to.

    Under ``vgenre run`` it is the run folder (``VGENRE_RUN_DIR``); a notebook opened alone in
    JupyterLab uses ``runs/<profile>/``, so it finds what an earlier run or notebook wrote.
    """
    env = os.environ.get("VGENRE_RUN_DIR")
    path = Path(env) if env else runs_dir() / (profile or "default")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _metrics_file() -> Path:
    env = os.environ.get("VGENRE_METRICS_FILE")
    return Path(env) if env else current_run_dir() / "metrics" / "interactive.json"


def record_metric(name: str, value) -> None:
    """Record one number (or short string) a notebook measured, for ``summary.json``.

    Values are kept in ``metrics/<notebook>.json`` of the run; recording a name again replaces
    its value. Numpy numbers are stored as plain Python numbers.
    """
    path = _metrics_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics[name] = value.item() if hasattr(value, "item") else value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    tmp.replace(path)


def read_metrics(run_dir: Path, notebook: str) -> dict:
    """What *notebook* recorded in the run at *run_dir* ({} when nothing)."""
    path = Path(run_dir) / "metrics" / f"{Path(notebook).stem}.json"
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class NotebookResult:
    """The outcome of one executed notebook."""

    notebook: str
    status: str
    wall_s: float
    metrics: dict
    error: str | None = None


def _failing_cell(exc: Exception) -> str:
    """Papermill's error says which cell failed; keep its first useful lines."""
    text = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in text[:6] if line.strip())[:600]


def run_series(profile: str = "default", only: list[str] | None = None, out: Path | None = None,
               update_figures: bool = False, cell_timeout: int | None = None,
               manifest: str | Path | None = None) -> tuple[Path, list[NotebookResult]]:
    """Execute the notebooks with papermill in order; return the run folder and the results.

    *manifest* (a curated ``manifest.csv`` of real clips) replaces the synthetic set. Stops at the
    first failing notebook (later ones read its outputs) and records it.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    prof = get_profile(profile)
    out = Path(out) if out else runs_dir() / prof.name
    out.mkdir(parents=True, exist_ok=True)
    timeout = cell_timeout or prof.cell_timeout_s
    summary_path = out / "summary.json"
    results: list[NotebookResult] = []
    parameters = {"profile": prof.name} | ({"manifest": str(Path(manifest).resolve())} if manifest else {})
    env_before = dict(os.environ)
    os.environ["VGENRE_RUN_DIR"] = str(out.resolve())
    os.environ["VGENRE_PROFILE"] = prof.name
    if update_figures:
        os.environ["VGENRE_UPDATE_FIGURES"] = "1"
    try:
        books = list_notebooks(only)
        for book in tqdm(books, desc=f"notebooks ({prof.name})", unit="nb"):
            metrics_file = out / "metrics" / f"{book.stem}.json"
            metrics_file.unlink(missing_ok=True)
            os.environ["VGENRE_METRICS_FILE"] = str(metrics_file)
            start = time.perf_counter()
            try:
                pm.execute_notebook(
                    str(book), str(out / book.name), parameters=parameters,
                    kernel_name=KERNEL_NAME, cwd=str(book.parent), execution_timeout=timeout,
                    progress_bar=False, log_output=False,
                )
                result = NotebookResult(book.name, "ok", time.perf_counter() - start, read_metrics(out, book.name))
            except Exception as exc:  # papermill raises PapermillExecutionError and friends
                result = NotebookResult(book.name, "failed", time.perf_counter() - start,
                                        read_metrics(out, book.name), _failing_cell(exc))
            results.append(result)
            _write_summary(summary_path, prof.name, results)
            if result.status != "ok":
                break
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return out, results


def _write_summary(path: Path, profile: str, results: list[NotebookResult]) -> None:
    """Write summary.json; entries of notebooks not run this time (``--only``) are kept from before."""
    entries = {r.notebook: r.__dict__ for r in results}
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("profile") == profile:
            entries = {n["notebook"]: n for n in previous.get("notebooks", [])} | entries
    order = {b.name: k for k, b in enumerate(list_notebooks())}
    data = {"profile": profile,
            "notebooks": sorted(entries.values(), key=lambda n: order.get(n["notebook"], len(order)))}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
