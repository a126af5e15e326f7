"""The manifest: one CSV row per clip (``path``, ``genre``, ``group``, ``split``, probe results).

Paths in a manifest are relative to the manifest's folder, so a data set can be moved or copied
as a whole. :func:`read_manifest` remembers that folder in each row (``_root``) and
:func:`clip_path` turns a row back into the clip's absolute path.

File names are kept as the file system has them, any bytes: a value holding bytes that are not
UTF-8 (Python's ``surrogateescape`` characters, as ``os.fsdecode`` gives them) is written with
those bytes as ``%XX`` (and ``%`` itself as ``%25``), and the row's ``escaped`` column names the
columns so written; :func:`read_manifest` turns them back into the same strings. The column is
only there when some row needs it, so ordinary manifests are plain UTF-8 CSV.

Usage (after ``vgenre synth``)::

    rows = read_manifest("data/generated/synth-smoke")
    clip_path(rows[0])   # PosixPath('data/generated/synth-smoke/Action/action_00_clip00.mp4')
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from helpers.errors import VgenreError
from helpers.fileio import write_text

MANIFEST_NAME = "manifest.csv"
ESCAPED = "escaped"
"""The column naming, per row, the columns whose value is escaped (bytes that are not UTF-8)."""
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


class ManifestError(VgenreError, ValueError):
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
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ManifestError(f"{path}: manifest is empty")
        if "path" not in reader.fieldnames:
            raise ManifestError(f"{path}: manifest has no 'path' column (columns: {', '.join(reader.fieldnames)})")
        rows = list(reader)
    for row in rows:
        for col in (row.pop(ESCAPED, None) or "").split():
            if col in row:
                row[col] = unescape(row[col])
        row["_root"] = str(path.parent)
    return rows


def _needs_escape(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def escape(value: str) -> str:
    r"""*value* with each undecodable byte (``surrogateescape``) as ``%XX`` and ``%`` as ``%25``.

    >>> escape("caf\udce9 100%.mp4")
    'caf%E9 100%25.mp4'
    """
    return "".join(f"%{ord(ch) - 0xDC00:02X}" if "\udc80" <= ch <= "\udcff" else "%25" if ch == "%" else ch
                   for ch in value)


def unescape(value: str) -> str:
    r"""The inverse of :func:`escape`.

    >>> unescape("caf%E9 100%25.mp4") == "caf\udce9 100%.mp4"
    True
    """
    def back(m: re.Match) -> str:
        byte = int(m.group(1), 16)
        return chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)

    return _ESCAPE.sub(back, value)


def write_manifest(rows: list[dict], path: str | Path, fields: list[str] | None = None) -> Path:
    """Write *rows* as UTF-8 CSV atomically (:func:`helpers.fileio.write_text`); return *path*.

    The columns are *fields*, or every key of *rows* in first-seen order (keys starting with ``_``
    are left out). Values holding bytes that are not UTF-8 are escaped (see the module's text).

    Raises
    ------
    helpers.errors.WriteError
        When the file cannot be written (no space, read-only folder); nothing is left behind.
    """
    path = Path(path)
    fields = [f for f in fields or dict.fromkeys(k for r in rows for k in r) if not f.startswith("_")
              and f != ESCAPED]
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k in fields}
        cols = [k for k, v in row.items() if isinstance(v, str) and _needs_escape(v)]
        if cols:
            row = row | {k: escape(row[k]) for k in cols} | {ESCAPED: " ".join(cols)}
        out.append(row)
    if any(ESCAPED in r for r in out):
        fields.append(ESCAPED)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(out)
    return write_text(path, text.getvalue())


def clip_path(row: dict) -> Path:
    """The path of a manifest row's clip: ``path`` itself when absolute, else under ``_root``."""
    p = Path(row["path"])
    return p if p.is_absolute() else Path(row.get("_root", ".")) / p
