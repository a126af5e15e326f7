"""The ``vgenre`` command (also ``python -m helpers``)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from helpers.config import PROFILE_NAMES
from helpers.errors import SettingError, VgenreError

KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")
"""Values Keras 3 accepts in ``KERAS_BACKEND``."""


def _quiet_tensorflow() -> None:
    from helpers.backends import quiet_start

    quiet_start()


def cmd_synth(args) -> int:
    from helpers.config import get_profile
    from helpers.curate import probe_and_split
    from helpers.manifest import read_manifest
    from helpers.synth import generate_dataset

    prof = get_profile(args.profile, **({} if args.difficulty is None else {"difficulty": args.difficulty}))
    manifest = probe_and_split(generate_dataset(prof, args.out, seed=args.seed, workers=args.workers),
                               random_state=args.seed or 0, holdout=prof.holdout)
    print(f"{len(read_manifest(manifest))} clips written; manifest: {manifest}")
    return 0


def _print_table(rows: list[dict], cols: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))


def cmd_validate(args) -> int:
    from helpers.curate import validate_paths

    rows = validate_paths(args.paths)
    bad = [r for r in rows if r["status"].startswith("bad")]
    skipped = [r for r in rows if r["status"].startswith("skipped")]
    if args.json:
        for r in rows:
            print(json.dumps(r))
    elif bad or skipped:
        _print_table(bad + skipped, ["path", "status"])
    print(f"{len(rows)} files checked, {len(rows) - len(bad) - len(skipped)} ok, {len(bad)} bad, "
          f"{len(skipped)} skipped (not videos)", file=sys.stderr)
    return 1 if bad or not rows else 0


def cmd_curate(args) -> int:
    from helpers.curate import curate_folder
    from helpers.manifest import read_manifest

    manifest = curate_folder(args.root, args.out, dataset=args.dataset, random_state=args.seed)
    rows = read_manifest(manifest)
    bad = [r for r in rows if r["status"].startswith("bad")]
    skipped = [r for r in rows if r["status"].startswith("skipped")]
    print(f"{len(rows) - len(skipped)} clips, {len(bad)} bad, {len(skipped)} other files skipped; manifest: {manifest}")
    return 0


def _context(args, notebook: str):
    """The run context of a command, from its --profile, --manifest and --out options."""
    from helpers.context import start_run

    return start_run(notebook, profile=args.profile, manifest=getattr(args, "manifest", None) or "",
                     run_dir=getattr(args, "out", None) or "", verbose=False)


def cmd_features(args) -> int:
    from helpers.backbone import load_backbone
    from helpers.features import cache_dir, extract_features, parse_shard
    from helpers.manifest import ManifestError, read_manifest
    from helpers.pipeline import check_genres, ensure_dataset

    _quiet_tensorflow()
    shard = parse_shard(args.shard) if args.shard else None
    ctx = _context(args, "cli_features")
    manifest = ctx.manifest or ensure_dataset(ctx)  # any manifest will do: extraction needs no split
    rows = read_manifest(manifest)
    if not rows:
        raise ManifestError(f"{manifest}: manifest lists no clips (header only); add rows or make one with "
                            "`vgenre curate FOLDER`")
    check_genres(rows, manifest)
    backbone = load_backbone(ctx.profile, weights=args.weights, precision=args.precision, verbose=False)
    print(backbone.status.message, file=sys.stderr)
    records = extract_features(rows, backbone, ctx.profile, root=cache_dir(ctx.data_dir), shard=shard,
                               workers=args.workers, max_queued_mb=args.max_queued_mb)
    bad = [r for r in records if r.get("status", "").startswith("bad")]
    for r in bad:
        print(f"{r['path']}: {r['status']}", file=sys.stderr)
    counts = {s: sum(r.get("status", "").split(":")[0] == s for r in records)
              for s in ("written", "cached", "locked", "bad", "skipped")}
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 1 if bad else 0


def cmd_train(args) -> int:
    from helpers.evaluate import clip_metrics
    from helpers.features import sequence_inputs
    from helpers.models import get_method
    from helpers.pipeline import ensure_features, ensure_head, ensure_models
    from helpers.train import load_model_dir

    _quiet_tensorflow()
    ctx = _context(args, "cli_train")
    clips = ensure_features(ctx)
    head = ensure_head(ctx, clips) if get_method(args.method).feature == "softmax" else None
    model_dir = ensure_models(ctx, clips, [args.method], [args.seed], head=head)[args.method, args.seed]
    trained = load_model_dir(model_dir)
    test = clips.split("test")
    x = sequence_inputs(test, trained.config["seq_len"], head=trained.head)
    m = clip_metrics(test.y, trained.predict(x))
    metrics = {"test_accuracy": m["accuracy"], "test_macro_f1": m["macro_f1"], "n_test": int(len(test))}
    from helpers.fileio import write_json

    write_json(model_dir / "metrics.json", metrics)
    print(f"model: {model_dir}\n" + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    return 0


def cmd_predict(args) -> int:
    from helpers.predict import Predictor, default_model_dir, format_prediction, prediction_json
    from helpers.media import MediaError

    _quiet_tensorflow()
    model_dir = Path(args.model) if args.model else default_model_dir(args.profile)
    predictor = Predictor(model_dir, weights=args.weights)
    print(f"using the model {model_dir}", file=sys.stderr)
    failures = 0
    for video in args.videos:
        try:
            p = predictor.predict_file(video)
        except MediaError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        if p.warning:
            print(f"warning: {p.path}: {p.warning}", file=sys.stderr)
        print(prediction_json(p) if args.json else format_prediction(p), flush=True)
    return 1 if failures else 0


def cmd_run(args) -> int:
    from helpers.manifest import read_manifest
    from helpers.runner import run_series

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the kernels inherit it
    _quiet_tensorflow()  # this process loads Keras only to describe the backend in summary.json
    if args.manifest:
        read_manifest(args.manifest)  # a missing or unreadable manifest fails here, not in a notebook
    if args.check:
        from helpers.reference import load_reference

        load_reference(args.check)  # a missing reference fails now, not after the run
    from helpers.context import parse_seeds

    seeds = parse_seeds(args.seeds) if args.seeds else None
    out, results = run_series(args.profile, only=args.only, out=args.out, update_figures=args.update_figures,
                              cell_timeout=args.cell_timeout, manifest=args.manifest, notebooks=args.notebooks,
                              seeds=seeds)
    for r in results:
        print(f"{r.notebook:40s} {r.status:7s} {r.wall_s:7.1f}s  {len(r.metrics)} metrics")
    failed = [r for r in results if r.status != "ok"]
    print(f"executed notebooks: {out}\nfigures: {out / 'figures'}\nsummary: {out / 'summary.json'}")
    if failed:
        print(f"FAILED: {failed[0].notebook}: {failed[0].error}", file=sys.stderr)
        return 1
    if args.check:
        return _print_check(out, args.check, all_rows=True)
    return 0


def _print_check(run, reference, *, all_rows: bool) -> int:
    from helpers.reference import check_files

    ok, table = check_files(run, reference, all_rows=all_rows)
    print(table)
    return 0 if ok else 1


def cmd_check(args) -> int:
    return _print_check(args.run, args.reference, all_rows=not args.changed)


def cmd_seed_table(args) -> int:
    from helpers.reference import add_seed_table, format_seed_table

    path, table = add_seed_table(args.reference, args.run)
    print(format_seed_table(table))
    print(f"seed table stored in {path} (key seed_table)")
    return 0


def cmd_save_reference(args) -> int:
    from helpers.reference import save_reference

    print(f"reference written: {save_reference(args.run, args.reference)}")
    return 0


def cmd_readme_table(args) -> int:
    from helpers.reference import write_readme_table

    changed = write_readme_table(args.reference, args.readme)
    print(f"{args.readme}: results table {'rewritten' if changed else 'already up to date'} from {args.reference}")
    return 0


def cmd_save_cells(args) -> int:
    from helpers.cells import course_dir, read_course, render_course, saved_cells, write_course

    out = args.out or course_dir()
    n = len(saved_cells(args.notebooks))
    if read_course(out) == render_course(args.notebooks):
        print(f"{out}: already the {n} saved cells of {args.notebooks}/")
        return 0
    write_course(args.notebooks, out)
    print(f"{out}: rewritten from the {n} saved cells of {args.notebooks}/")
    return 0


def cmd_bench(args) -> int:
    from helpers.bench import run_bench

    _quiet_tensorflow()
    return run_bench(args.profile, only=args.only, workers=args.workers)


class _Parser(argparse.ArgumentParser):
    """argparse, with a wrong option in one line (``error: ...``) rather than the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _writable_folder(option: str, folder: str | Path) -> None:
    """Refuse a folder that cannot be made or written to, before any work: one line naming it and why."""
    from helpers.fileio import write_error

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SettingError(f"{option} {folder}: a file, not a folder; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".vgenre-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = write_error(exc, folder / "x").reason
        raise SettingError(f"{option} {folder}: cannot write there ({reason}); choose a folder you can write to") \
            from None


def check_settings(args) -> None:
    """Refuse every option and environment variable with a value that cannot work, in one line each,
    before any work starts (:class:`~helpers.errors.SettingError`)."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None and backend not in KERAS_BACKENDS:
        raise SettingError(f"KERAS_BACKEND={backend!r} is not a Keras backend; use one of "
                           f"{', '.join(KERAS_BACKENDS[:3])} (or unset it)")
    for name in ("VGENRE_DATA_DIR", "VGENRE_RUNS_DIR"):
        value = os.environ.get(name)
        if value is not None and (not value.strip() or (Path(value).exists() and not Path(value).is_dir())):
            raise SettingError(f"{name}={value!r} is not a folder; point it at a folder (or unset it)")
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 0:
        raise SettingError(f"--workers must be 0 or more (0: work in this process), got {workers}")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2 ** 32:
        raise SettingError(f"--seed must be between 0 and {2 ** 32 - 1}, got {seed}")
    timeout = getattr(args, "cell_timeout", None)
    if timeout is not None and timeout <= 0:
        raise SettingError(f"--cell-timeout is seconds per cell and must be above 0, got {timeout}")
    for option in ("manifest", "model", "weights"):
        value = getattr(args, option, None)
        if value is not None and not str(value).strip():
            raise SettingError(f"--{option} is empty; give a path")
    notebooks = getattr(args, "notebooks", None)
    if notebooks is not None and not Path(notebooks).is_dir():
        raise SettingError(f"--notebooks {notebooks}: not a folder; give the folder holding the series")
    out = getattr(args, "out", None)
    if out is not None and args.command in ("synth", "train", "run"):
        _writable_folder("--out", out)
    if out is not None and args.command == "curate":
        if Path(out).is_dir():
            raise SettingError(f"--out {out}: a folder; give the manifest's file name (e.g. {Path(out) / 'manifest.csv'})")
        _writable_folder("--out (its folder)", Path(out).parent)
    if args.command in ("synth", "features", "train", "run", "bench"):
        from helpers.config import data_dir

        _writable_folder("VGENRE_DATA_DIR" if os.environ.get("VGENRE_DATA_DIR") else "the data folder", data_dir())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vgenre``."""
    parser = _Parser(prog="vgenre", description="Video genre classification with a "
                                     "convolutional recurrent network (InceptionV3 features + LSTM + audio).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"],
                        help="Keras backend (default: KERAS_BACKEND, else Keras' own default, tensorflow)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def profile_arg(p, default="default"):
        p.add_argument("--profile", choices=PROFILE_NAMES, default=default, help=f"sizes to use (default: {default})")

    p = sub.add_parser("synth", help="generate the synthetic genre clips (MP4, folder per genre, manifest.csv)")
    profile_arg(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=None, help="data seed (default: the profile's)")
    p.add_argument("--workers", type=int, help="processes rendering clips (default: one per core; 0: this one)")
    p.add_argument("--difficulty", type=float, help="share of clips shot like another genre, and (independently) "
                   "without score (default: the profile's; data/README.md)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("validate", help="probe video files or folders; list bad files and why (exit 1 if any)")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("curate", help="probe and split a folder-per-genre tree (or UCF101/HMDB51) into manifest.csv")
    p.add_argument("root", help="folder with one subfolder per genre (or per dataset class)")
    p.add_argument("--dataset", choices=["ucf101", "hmdb51"], help="map dataset classes to genres with the maps in helpers/genre_maps/")
    p.add_argument("--out", help="manifest path (default: ROOT/manifest.csv)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("features", help="extract per-clip InceptionV3 and audio features (cached, resumable)")
    profile_arg(p)
    p.add_argument("--manifest", help="manifest.csv (default: the profile's synthetic set)")
    p.add_argument("--shard", help="i/n: this machine's share of the manifest")
    p.add_argument("--weights", help="InceptionV3 weights file (else VGENRE_WEIGHTS, Keras' cache, download)")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="auto: bfloat16 on a GPU or TPU that computes in it natively, else float32")
    p.add_argument("--workers", type=int, help="decoding processes (default: one per core but one; 0: a thread "
                                                "of this process)")
    p.add_argument("--max-queued-mb", type=float, help="decoded frames waiting for the network, at most this many "
                                                       "megabytes (estimated; default: the profile's, 1024; one "
                                                       "clip is always allowed)")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="train one model on the cached features; write a model folder")
    profile_arg(p)
    from helpers.models import METHODS

    p.add_argument("--method", choices=list(METHODS), default="late_fusion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--manifest", help="a curated manifest.csv of real clips (default: the profile's synthetic set)")
    p.add_argument("--out", help="run folder (default: runs/<profile>)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="classify video files: genre, probabilities, timeline")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--model", help="model directory (default: runs/<profile>/models/late_fusion_seed<first seed>)")
    profile_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.add_argument("--weights", help="InceptionV3 weights file the model was trained with (else VGENRE_WEIGHTS, "
                                     "else what the model folder records)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("run", help="execute the notebook series with papermill")
    profile_arg(p)
    p.add_argument("--only", nargs="+", help="notebook numbers or names to run, e.g. 00 03")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<profile>)")
    p.add_argument("--update-figures", action="store_true", help="also refresh the committed figures/")
    p.add_argument("--cell-timeout", type=int, help="seconds per cell (default: the profile's)")
    p.add_argument("--manifest", help="a curated manifest.csv of real clips (vgenre curate) in place of the synthetic set")
    p.add_argument("--notebooks", type=Path, help="the folder of the series (default: notebooks/ of the repository)")
    p.add_argument("--check", type=Path, metavar="REFERENCE", help="afterwards compare the run's metrics with a "
                   "reference (e.g. references/default.json); exit 1 if a lesson drifted")
    p.add_argument("--seeds", metavar="3,4,5", help="training seeds in place of the profile's (a second seed set; "
                   "default run folder runs/<profile>-seeds-3-4-5)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="compare a run's lessons with a reference (numbers shown beside it); "
                                     "exit 1 if a lesson drifted")
    p.add_argument("run", type=Path, help="run folder (or its summary.json), e.g. runs/default")
    p.add_argument("reference", type=Path, help="reference file, e.g. references/default.json")
    p.add_argument("--changed", action="store_true", help="list only the lessons that did not reproduce (and the "
                                                            "numbers shown)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("seed-table", help="store in a reference which lessons held in a run with other seeds")
    p.add_argument("reference", type=Path, help="reference file, e.g. references/default.json")
    p.add_argument("run", type=Path, help="a run of the same profile made with --seeds, e.g. runs/default-seeds-3-4-5")
    p.set_defaults(func=cmd_seed_table)

    p = sub.add_parser("save-reference", help="write a run's metrics as a reference file (references/<profile>.json)")
    p.add_argument("run", type=Path, help="run folder (or its summary.json)")
    p.add_argument("reference", type=Path, help="file to write")
    p.set_defaults(func=cmd_save_reference)

    p = sub.add_parser("readme-table", help="rewrite the README's results table from a reference file")
    p.add_argument("reference", type=Path, help="reference file, e.g. references/default.json")
    p.add_argument("--readme", type=Path, default=Path("README.md"), help="the README to rewrite (default: README.md)")
    p.set_defaults(func=cmd_readme_table)

    p = sub.add_parser("save-cells", help="copy the notebooks' `# @save` cells into helpers/course/ (the code "
                                          "the helpers run)")
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="the notebook folder (default: notebooks)")
    p.add_argument("--out", type=Path, default=None, help="folder to write (default: helpers/course)")
    p.set_defaults(func=cmd_save_cells)

    p = sub.add_parser("bench", help="measure speed as ratios within one run; last line is key=value pairs")
    profile_arg(p, "smoke")
    p.add_argument("--only", nargs="+", choices=["synth", "frames", "audio", "features"], help="entries to run")
    p.add_argument("--workers", type=int, help="decoding processes for the features entry (default: one per "
                                                "core but one)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vgenre``."""
    for stream in (sys.stdout, sys.stderr):  # file names are printed as the file system has them (any bytes)
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    args = build_parser().parse_args(argv)
    if args.backend:  # Keras reads it once, at its first import; notebooks run by `vgenre run` inherit it
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", "tensorflow") != args.backend:
            print(f"error: Keras is already loaded with another backend; set KERAS_BACKEND={args.backend} "
                  "before starting Python", file=sys.stderr)
            return 2
        os.environ["KERAS_BACKEND"] = args.backend
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        check_settings(args)
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the system refused a file or folder the package does not write itself
        if args.debug:
            raise
        from helpers.fileio import write_error

        where = exc.filename if exc.filename is not None else "a file"
        print(f"error: {where}: {write_error(exc, Path(str(where))).reason}", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[Exception], ...]:
    """The package's errors about what the user gave (files, settings, room to write): the root
    :class:`~helpers.errors.VgenreError`, printed in one line without a traceback."""
    return (VgenreError,)


if __name__ == "__main__":
    sys.exit(main())
