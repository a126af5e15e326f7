"""Run the notebook series with papermill and collect what each notebook recorded.

``vgenre run --profile smoke`` executes every notebook of ``notebooks/`` in order, passing the
run's settings as papermill parameters (``profile``, ``manifest``, ``run_dir``, ``data_dir``,
``figures_dir``) to the cell tagged ``parameters``; each notebook's setup cell turns them into its
run context (:func:`helpers.context.start_run`). Nothing travels through environment variables.
It writes::

    runs/<profile>/
        00_setup.ipynb ...            executed copies
        figures/                      every figure saved through ctx.save_fig
        metrics/<notebook>.json       what the notebook recorded through ctx.record_metric
        metrics/<notebook>.kinds.json the kind it declared for each (lesson, setup, shown)
        summary.json                  status, wall time and metrics of each notebook
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from helpers.config import data_dir, figures_dir, get_profile, repo_root, runs_dir

log = logging.getLogger(__name__)

KERNEL_NAME = "vgenre"
"""The Jupyter kernel every notebook names; ``make`` registers it for the project's .venv."""


def notebooks_dir() -> Path:
    """The folder of the numbered notebooks."""
    return repo_root() / "notebooks"


def list_notebooks(only: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """The numbered notebooks in order, or those whose number or name starts with one of *only*."""
    folder = Path(folder) if folder else notebooks_dir()
    books = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
        if not books:
            raise FileNotFoundError(f"no notebook in {folder} matches {only}")
    return books


def read_metrics(run_dir: Path, notebook: str) -> dict:
    """What *notebook* recorded in the run at *run_dir* ({} when nothing)."""
    path = Path(run_dir) / "metrics" / f"{Path(notebook).stem}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_kinds(run_dir: Path, notebook: str) -> dict:
    """The kind *notebook* declared for each metric it recorded (``lesson``, ``setup``, ``shown``)."""
    path = Path(run_dir) / "metrics" / f"{Path(notebook).stem}.kinds.json"
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class NotebookResult:
    """The outcome of one executed notebook."""

    notebook: str
    status: str
    wall_s: float
    metrics: dict
    error: str | None = None
    kinds: dict = field(default_factory=dict)


def _failing_cell(exc: Exception) -> str:
    """Which cell failed and its error line: ``"cell In [3]: RuntimeError: boom"``.

    Papermill's ``PapermillExecutionError`` carries the cell's number and the exception's type and
    message; other errors (a timeout, a dead kernel) are given by their own type and message.
    """
    if getattr(exc, "ename", None):
        message = str(getattr(exc, "evalue", "")).strip()
        return f"cell In [{getattr(exc, 'exec_count', '?')}]: {exc.ename}: {message}"[:600]
    return f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"[:600]


def run_parameters(profile: str, out: Path, *, manifest: str | Path | None = None,
                   update_figures: bool = False, seeds: tuple[int, ...] | None = None) -> dict:
    """The papermill parameters every notebook of one run receives (see the module's docstring)."""
    return {"profile": profile, "manifest": str(Path(manifest).resolve()) if manifest else "",
            "run_dir": str(Path(out).resolve()), "data_dir": str(data_dir()),
            "figures_dir": str(figures_dir()) if update_figures else "",
            "seeds": ",".join(map(str, seeds)) if seeds else ""}


def default_run_dir(profile: str, seeds: tuple[int, ...] | None = None) -> Path:
    """``runs/<profile>``, or ``runs/<profile>-seeds-3-4-5`` for a run with other training seeds."""
    return runs_dir() / (profile + (f"-seeds-{'-'.join(map(str, seeds))}" if seeds else ""))


def _local_kernel() -> dict:
    """papermill's keyword for a kernel reached over local sockets (IPC) where the system has them:
    the kernel and this process share the machine, and over TCP every kernel prints a warning about
    unencrypted traffic into the run's output. Elsewhere (Windows), papermill's default."""
    if os.name != "posix":
        return {}
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    class LocalKernelManager(AsyncKernelManager):
        transport = Unicode("ipc")
        # the sockets' path prefix: in the temporary folder, not the notebooks' folder (the default,
        # "kernel-ipc" in the working directory, left sockets beside the notebooks while a kernel ran)
        ip = Unicode(os.path.join(tempfile.gettempdir(), f"vgenre-{os.getpid()}-kernel-ipc"))

    return {"kernel_manager_class": LocalKernelManager}


def run_series(profile: str = "default", only: list[str] | None = None, out: Path | None = None,
               update_figures: bool = False, cell_timeout: int | None = None,
               manifest: str | Path | None = None, notebooks: Path | None = None,
               seeds: tuple[int, ...] | None = None) -> tuple[Path, list[NotebookResult]]:
    """Execute the notebooks with papermill in order; return the run folder and the results.

    *manifest* (a curated ``manifest.csv`` of real clips) replaces the synthetic set; *notebooks*
    is the folder of the series (default: ``notebooks/``); *seeds* replace the profile's training
    seeds (a second seed set, for :func:`helpers.reference.seed_table`). Stops at the first failing notebook
    (later ones read its outputs) and records it.
    """
    import papermill as pm

    from helpers.progress import progress_bar

    prof = get_profile(profile)
    if seeds:
        prof = replace(prof, seeds=tuple(seeds))
    out = Path(out) if out else default_run_dir(prof.name, seeds)
    out.mkdir(parents=True, exist_ok=True)
    timeout = cell_timeout or prof.cell_timeout_s
    summary_path = out / "summary.json"
    results: list[NotebookResult] = []
    parameters = run_parameters(prof.name, out, manifest=manifest, update_figures=update_figures, seeds=seeds)
    books = list_notebooks(only, notebooks)
    for book in progress_bar(books, desc=f"notebooks ({prof.name})", unit="nb"):
        (out / "metrics" / f"{book.stem}.json").unlink(missing_ok=True)
        (out / "metrics" / f"{book.stem}.kinds.json").unlink(missing_ok=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                str(book), str(out / book.name), parameters=parameters,
                kernel_name=KERNEL_NAME, cwd=str(book.parent), execution_timeout=timeout,
                progress_bar=False, log_output=False, **_local_kernel(),
            )
            result = NotebookResult(book.name, "ok", time.perf_counter() - start, read_metrics(out, book.name),
                                    kinds=read_kinds(out, book.name))
        except Exception as exc:  # papermill raises PapermillExecutionError and friends
            result = NotebookResult(book.name, "failed", time.perf_counter() - start,
                                    read_metrics(out, book.name), _failing_cell(exc), read_kinds(out, book.name))
        sign_notebook(out / book.name)
        results.append(result)
        _write_summary(summary_path, prof, results, books[0].parent, parameters)
        if result.status != "ok":
            break
    return out, results


def sign_notebook(path: Path) -> bool:
    """Sign an executed notebook so Jupyter trusts it on this machine (its widgets and HTML render).

    Jupyter keeps the signatures of notebooks it trusts in a database under the user's Jupyter data
    folder; a notebook executed by papermill is not in it until signed. Elsewhere, trust it with
    ``jupyter trust FILE``. Returns False (with a warning) when the database cannot be written.
    """
    import nbformat
    from nbformat.sign import NotebookNotary

    if not path.exists():
        return False
    try:
        NotebookNotary().sign(nbformat.read(path, as_version=4))
        return True
    except Exception as exc:  # a read-only home or a broken database must not fail the run
        warnings.warn(f"{path}: not signed as trusted ({exc.__class__.__name__}: {exc}); run `jupyter trust "
                      f"{path}` to see its widgets", stacklevel=2)
        return False


def _write_summary(path: Path, prof, results: list[NotebookResult], folder: Path, parameters: dict) -> None:
    """Write summary.json; entries of notebooks not run this time (``--only``) are kept from before."""
    entries = {r.notebook: r.__dict__ for r in results}
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("profile") == prof.name and previous.get("seeds") == list(prof.seeds):
            entries = {n["notebook"]: n for n in previous.get("notebooks", [])} | entries
    order = {b.name: k for k, b in enumerate(list_notebooks(folder=folder))}
    from helpers.backends import describe

    backend = describe()
    data = {"profile": prof.name, "seeds": list(prof.seeds), "backend": backend["backend"], "keras": backend["keras"],
            "framework_version": backend["framework_version"], "devices": backend["devices"],
            "parameters": parameters,
            "notebooks": sorted(entries.values(), key=lambda n: order.get(n["notebook"], len(order)))}
    from helpers.fileio import write_json

    write_json(path, data)
