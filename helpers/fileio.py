"""Writing files: one helper, atomic, cleaning up after itself, one error for a failed write.

Every file the package writes (features, manifests, models, figures, references) goes through
:func:`atomic_path`: the content is written to a hidden temporary name in the target's folder
(``.<name>.<pid>.partial<suffix>``) and renamed over the target only once complete, so a reader
never sees half a file and an interrupted run leaves none. On any error the temporary file is
removed; an ``OSError`` (no space left, read-only folder, permission denied) becomes one
:class:`~helpers.errors.WriteError` naming the path and the reason, for a full disk with the
space left and about the space needed::

    cannot write data/cache/features/ab/ab12.npz: no space left on device at data/cache/features/ab:
    0.0 MB free, about 3.5 MB needed

Files get the mode the umask gives new files (``0o666 & ~umask``), as ``open`` would give them.

>>> import json, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_text(folder / "a.json", json.dumps({"x": 1}))
>>> with atomic_path(folder / "b.npz") as tmp:  # any writer that takes a path
...     np.savez(tmp, x=np.arange(3))
>>> sorted(p.name for p in folder.iterdir())
['a.json', 'b.npz']
"""
from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from helpers.errors import WriteError

__all__ = ["WriteError", "atomic_path", "atomic_open", "write_text", "write_bytes", "write_json", "save_npz",
           "write_error", "file_mode", "temp_name", "remove_stale_temps", "copy_file", "make_folder"]

_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a new file gets here: ``0o666`` less this process's umask."""
    try:  # Linux says it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def temp_name(path: Path) -> Path:
    """The temporary name *path* is written under: hidden, in its folder, with this process's id and
    the same suffix (writers such as ``np.savez``, Keras and Matplotlib read the format from it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(n: int) -> str:
    """Bytes in MB, or in kB below a tenth of a MB (so a small file is not "about 0.0 MB")."""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 or n == 0 else f"{n / 1e3:.1f} kB"


def write_error(exc: OSError, path: str | Path, *, needed: int | None = None) -> WriteError:
    """The :class:`WriteError` for *exc* raised while writing *path*: the path and the reason in
    words (for a full disk: the folder, the space free and about the space *needed*, in bytes)."""
    path = Path(path) if not isinstance(path, Path) else path
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(path.parent)
        what = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        room = f"{free / 1e6:.1f} MB free" if free is not None else "free space unknown"
        need = f", about {_size(needed)} needed" if needed else ""
        reason = f"{what} at {path.parent}: {room}{need}"
    elif code == errno.EFBIG:
        reason = "file too large (the file system's or the process's file size limit)"
        if needed:
            reason += f"; about {_size(needed)} needed"
    elif code == errno.EROFS:
        reason = f"read-only file system at {path.parent}"
    elif code in (errno.EACCES, errno.EPERM):
        reason = f"permission denied (the folder {path.parent} is not writable by this user)"
    elif code == errno.ENOENT:
        reason = f"the folder {path.parent} does not exist"
    elif code == errno.ENOTDIR:
        reason = f"a file stands in the way of the folder {path.parent}"
    elif code == errno.EISDIR:
        reason = "a folder of that name is in the way"
    else:
        reason = exc.strerror or str(exc) or exc.__class__.__name__
    return WriteError(path, reason, code)


def make_folder(path: str | Path) -> Path:
    """``mkdir -p`` *path*; return it.

    Raises
    ------
    WriteError
        When it cannot be made (read-only, permission, a file in the way), naming it and why.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise WriteError(path, "a file of that name is in the way (a folder is needed)", exc.errno) from exc
    except OSError as exc:
        raise write_error(exc, path / ".") from exc
    return path


def _remove(tmp: Path) -> None:
    try:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def atomic_path(path: str | Path, *, needed: int | None = None, mkdir: bool = True) -> Iterator[Path]:
    """A temporary path to write *path* to; renamed over *path* when the block ends without error.

    Temporary files of earlier writers of *path* that were killed (their process is gone) are
    removed first. On any exception the temporary file is removed and the exception propagates; an ``OSError``
    becomes a :class:`WriteError` naming *path* and the reason. *needed* (bytes) is what the file
    will take, for the message of a full disk (by default: what was written before it filled).
    The folder is created first (*mkdir*).

    Raises
    ------
    WriteError
        When the folder cannot be made, the content cannot be written or the rename fails.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        if mkdir:
            make_folder(path.parent)
        remove_stale_temps(path.parent, glob.escape(f".{path.name}.") + "*.partial*")  # of killed writers
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        written = tmp.stat().st_size if tmp.is_file() else 0
        _remove(tmp)
        if isinstance(exc, WriteError):
            raise
        raise write_error(exc, path, needed=needed or written or None) from exc
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, needed: int | None = None, **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through :func:`atomic_path`: the file appears whole when the block ends.

    *mode* is ``"w"`` or ``"wb"``; *kwargs* go to ``open`` (``newline``, ``encoding``).
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path, needed=needed) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write *data* to *path* atomically; return *path*."""
    with atomic_open(path, "wb", needed=len(data)) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write *text* to *path* atomically; return *path*."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | Path, obj, *, indent: int | None = 2, **kwargs) -> Path:
    """Write *obj* as JSON to *path* atomically (``json.dumps`` *kwargs*, e.g. ``default=str``); return *path*."""
    return write_text(path, json.dumps(obj, indent=indent, **kwargs))


def save_npz(path: str | Path, **arrays) -> Path:
    """``np.savez(path, **arrays)`` atomically; return *path* (which should end in ``.npz``)."""
    needed = sum(np.asarray(a).nbytes for a in arrays.values())
    with atomic_path(path, needed=needed) as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


def copy_file(source: str | Path, path: str | Path) -> Path:
    """Copy *source* to *path* atomically; return *path*."""
    source = Path(source)
    with atomic_path(path, needed=source.stat().st_size) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)


def pid_alive(pid: int) -> bool:
    """Whether process *pid* runs on this machine (a lock's or a temporary file's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temps(folder: str | Path, pattern: str = ".*.partial*") -> list[Path]:
    """Delete temporary files matching *pattern* under *folder* whose writer is no longer running
    (its process id is in the name, :func:`temp_name`); return them."""
    removed = []
    for tmp in Path(folder).glob(pattern):
        parts = tmp.name.split(".")
        pid = next((parts[i - 1] for i, p in enumerate(parts) if p == "partial" and i), "")
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            _remove(tmp)
            removed.append(tmp)
    return removed
