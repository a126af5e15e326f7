"""The manifest: one CSV row per clip (``path``, ``genre``, ``group``, ``split``, probe results).

Paths in a manifest are relative to the manifest's folder, so a data set can be moved or copied
as a whole. :func:`read_manifest` remembers that folder in each row (``_root``) and
:func:`clip_path` turns a row back into the clip's absolute path.

Example
-------
>>> rows = read_manifest("data/generated/synth-smoke")  # doctest: +SKIP
>>> clip_path(rows[0])  # doctest: +SKIP
PosixPath('data/generated/synth-smoke/Action/action_00_clip00.mp4')
"""
from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

MANIFEST_NAME = "manifest.csv"


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and the reason."""


def read_manifest(path: str | Path) -> list[dict]:
    """Read a manifest CSV (or ``manifest.csv`` in the folder *path*) as one dict per row.

    Each row gets ``_root``, the manifest's folder, which :func:`clip_path` resolves paths against.

    Raises
    ------
    ManifestError
        When the manifest is missing, empty or has no ``path`` column.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ManifestError(f"{path}: manifest is empty")
        if "path" not in reader.fieldnames:
            raise ManifestError(f"{path}: manifest has no 'path' column (columns: {', '.join(reader.fieldnames)})")
        rows = list(reader)
    for row in rows:
        row["_root"] = str(path.parent)
    return rows


def write_manifest(rows: list[dict], path: str | Path, fields: list[str] | None = None) -> Path:
    """Write *rows* as CSV atomically (temporary file, then rename); return *path*.

    The columns are *fields*, or every key of *rows* in first-seen order.
    """
    path = Path(path)
    fields = fields or list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", newline="", dir=path.parent, delete=False, suffix=".tmp") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    shutil.move(fh.name, path)
    return path


def clip_path(row: dict) -> Path:
    """The path of a manifest row's clip: ``path`` itself when absolute, else under ``_root``."""
    p = Path(row["path"])
    return p if p.is_absolute() else Path(row.get("_root", ".")) / p
