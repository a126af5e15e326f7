"""The run context: what one run of a notebook (or of a command) works on and where it writes.

A notebook's setup cell turns its papermill parameters into one :class:`RunContext`::

    ctx = start_run("01_data_curation", profile=profile, manifest=manifest, run_dir=run_dir,
                    data_dir=data_dir, figures_dir=figures_dir)

The context carries the profile, the data source (the profile's synthetic set or a curated
manifest), the folders, :meth:`RunContext.save_fig` and :meth:`RunContext.record_metric`. Running
the setup cell again with other parameters makes a new context, and everything switches with it:
nothing is kept in environment variables. ``vgenre run`` passes the same parameters to every
notebook through papermill; the commands of ``vgenre`` build a context from their options.

>>> import tempfile
>>> ctx = start_run("demo", profile="smoke", run_dir=tempfile.mkdtemp(), verbose=False)
>>> ctx.metrics_file.relative_to(ctx.run_dir).as_posix()
'metrics/demo.json'
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from helpers.config import ConfigError, Profile, data_dir as default_data_dir, get_profile, runs_dir
from helpers.errors import SettingError

METRIC_KINDS = {
    "lesson": "compared: a verdict word must be equal, an accuracy must fall inside the reference's interval",
    "setup": "compared: must be equal (the experiment's sizes; otherwise the runs are not comparable)",
    "shown": "printed beside the reference, never compared (spreads, correlations, times, a few clips' counts)",
}
"""How ``vgenre check`` treats a recorded metric; a notebook declares the kind where it records it."""


def parse_seeds(seeds: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Training seeds from ``"3,4,5"`` (or a sequence of ints).

    Raises
    ------
    ConfigError
        When the text is not a comma-separated list of distinct non-negative integers.
    """
    parts = seeds.replace(" ", "").split(",") if isinstance(seeds, str) else list(seeds)
    try:
        values = tuple(int(x) for x in parts)
    except (TypeError, ValueError):
        values = ()
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise ConfigError(f"seeds {seeds!r}: expected distinct non-negative integers separated by commas, "
                          "such as 3,4,5")
    return values


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line, ``UserWarning: message`` (Python's default adds the file and source line)."""
    return f"{category.__name__}: {message}\n"


def _check_template(name: str, readme) -> None:
    """Raise :class:`SettingError` unless *readme* is a README template (or a ``(lead, part)`` pair)
    that ``str.format`` can parse."""
    import string

    parts = (readme,) if isinstance(readme, str) else tuple(readme) if isinstance(readme, tuple) else ()
    if not parts or len(parts) > 2 or not all(isinstance(p, str) for p in parts):
        raise SettingError(f"metric {name!r}: readme= takes a template string or a (lead, part) pair, got {readme!r}")
    try:
        for part in parts:
            list(string.Formatter().parse(part))
    except ValueError as exc:
        raise SettingError(f"metric {name!r}: its README template {readme!r} does not parse ({exc})") from None


def _write_json(path: Path, data: dict) -> None:
    """Write *data* to *path* atomically (:mod:`helpers.fileio`: nothing partial left on a failure)."""
    from helpers.fileio import write_json

    write_json(path, data, indent=2, sort_keys=True)


@dataclass(frozen=True)
class RunContext:
    """One run's settings and folders. Make it with :func:`start_run`.

    Attributes
    ----------
    notebook : the name metrics are filed under (``metrics/<notebook>.json``)
    profile : every size the run uses
    run_dir : executed notebooks, ``figures/``, ``metrics/``, ``models/``
    data_dir : generated clips and feature caches (shared by runs)
    manifest : a curated ``manifest.csv`` of real clips, or None for the profile's synthetic set
    figures_dir : a second folder every figure is also saved to (``make run``: the README's
        ``figures/``), or None
    """

    notebook: str
    profile: Profile
    run_dir: Path
    data_dir: Path
    manifest: Path | None = None
    figures_dir: Path | None = None

    @property
    def source(self) -> str:
        """``synthetic`` or the curated manifest's path, for printing and summaries."""
        return str(self.manifest) if self.manifest else "synthetic"

    @property
    def metrics_file(self) -> Path:
        """Where :meth:`record_metric` keeps this notebook's numbers."""
        return self.run_dir / "metrics" / f"{self.notebook}.json"

    @property
    def models_dir(self) -> Path:
        """Where the run's trained models are kept."""
        return self.run_dir / "models"

    def metrics(self) -> dict:
        """What this notebook has recorded so far ({} when nothing)."""
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.exists() else {}

    @property
    def kinds_file(self) -> Path:
        """Where :meth:`record_metric` keeps the kind of each number (see :data:`METRIC_KINDS`)."""
        return self.run_dir / "metrics" / f"{self.notebook}.kinds.json"

    def record_metric(self, name: str, value, *, kind: str = "shown", readme: str | tuple[str, str] | None = None) -> None:
        """Record one number (or short string or list) the notebook measured, for ``summary.json``.

        *kind* says how ``vgenre check`` treats it (:data:`METRIC_KINDS`): a ``lesson`` (a verdict
        word the course states, an accuracy recorded with :meth:`record_accuracy`) is compared with
        the reference and fails the check when it changes; ``setup`` (the sizes of the experiment) must
        be equal; a number that is only ``shown`` (a spread, a correlation, a time) is printed beside
        the reference and never fails. The default is ``shown``, so a new metric cannot silently
        become a failing one. Recording a name again replaces its value; numpy numbers are stored
        as plain numbers; the files are rewritten atomically.

        A lesson that the reference's second seed set did not reproduce is printed as not settled
        (:func:`helpers.reference.lesson_note`).

        *readme* declares the README line this metric appears in, beside the value: a ``str.format``
        template whose fields name metrics of this notebook (``{}``: this one; ``{label}``: the varying
        part of an f-string name), or ``(lead, part)`` to join the parts of an f-string name into one
        line. ``vgenre readme-table`` collects it from the notebook's source and fills it from a
        reference (:func:`helpers.reference.declared_lines`); here it is only checked for syntax.
        """
        if readme is not None:
            _check_template(name, readme)
        if kind not in METRIC_KINDS:
            raise SettingError(f"metric {name!r}: unknown kind {kind!r}; choose one of {', '.join(METRIC_KINDS)}")
        metrics = self.metrics()
        metrics[name] = value.item() if hasattr(value, "item") else value
        kinds = json.loads(self.kinds_file.read_text()) if self.kinds_file.exists() else {}
        kinds[name] = kind
        _write_json(self.metrics_file, metrics)
        _write_json(self.kinds_file, kinds)
        if kind == "lesson" and isinstance(metrics[name], str):
            from helpers.reference import lesson_note

            note = lesson_note(self.profile.name, self.notebook, name, metrics[name])
            if note:
                print(note)

    def record_accuracy(self, name: str, value: float, interval, *, readme: str | tuple[str, str] | None = None) -> None:
        """Record an accuracy and its 95% interval (``name`` and ``name_ci``) as a lesson: the check
        asks that another run's accuracy fall inside this interval. *interval* is an
        :class:`~helpers.evaluate.Estimate` or ``(low, high)``; it is stored at full precision, so an
        accuracy on the interval's bound counts as inside."""
        low, high = (interval.low, interval.high) if hasattr(interval, "low") else interval
        self.record_metric(name, float(value), kind="lesson", readme=readme)
        self.record_metric(f"{name}_ci", [float(low), float(high)], kind="lesson")

    def save_fig(self, fig, name: str, *, dpi: int = 90) -> Path:
        """Save *fig* as ``<name>.png`` in the run's ``figures/`` (and in :attr:`figures_dir` when set)."""
        from helpers.fileio import atomic_path

        targets = [self.run_dir / "figures"] + ([self.figures_dir] if self.figures_dir else [])
        for folder in targets:
            with atomic_path(folder / f"{name}.png") as tmp:
                fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        return targets[0] / f"{name}.png"

    def describe(self) -> str:
        """One line saying what this run works on and where it writes."""
        data = f"curated manifest {self.manifest}" if self.manifest else f"the {self.profile.name} synthetic set"
        return f"profile {self.profile.name} · data: {data} · results in {self.run_dir}"


def start_run(notebook: str = "interactive", *, profile: str | Profile = "default", manifest: str | Path = "",
              run_dir: str | Path = "", data_dir: str | Path = "", figures_dir: str | Path = "",
              seeds: str | tuple[int, ...] = "", verbose: bool = True) -> RunContext:
    """Make the run context of one notebook from its parameters (empty strings mean the defaults).

    Parameters
    ----------
    notebook : the notebook's name (its metrics go to ``metrics/<notebook>.json``)
    profile : ``smoke``, ``default``, ``full`` or a :class:`~helpers.config.Profile`
    manifest : a curated ``manifest.csv`` of real clips; empty: the profile's synthetic set
    run_dir : the run folder; empty: ``runs/<profile>``
    data_dir : clips and caches; empty: ``data/`` of the repository
    figures_dir : also save every figure there; empty: only in the run folder
    seeds : training seeds in place of the profile's, e.g. ``"3,4,5"`` (a second seed set, to see
        which lessons hold; README, section Reproducibility); empty: the profile's
    verbose : print :meth:`RunContext.describe`
    """
    import warnings

    from helpers.backends import quiet_start

    quiet_start()
    warnings.formatwarning = _one_line_warning  # a notebook shows the warning, not the source line behind it
    prof = get_profile(profile)
    if seeds:
        prof = replace(prof, seeds=parse_seeds(seeds))
    ctx = RunContext(
        notebook=str(notebook), profile=prof,
        run_dir=(Path(run_dir).expanduser() if run_dir else runs_dir() / prof.name).resolve(),
        data_dir=(Path(data_dir).expanduser() if data_dir else default_data_dir()).resolve(),
        manifest=Path(manifest).expanduser().resolve() if manifest else None,
        figures_dir=Path(figures_dir).expanduser().resolve() if figures_dir else None,
    )
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(ctx.describe())
    return ctx
