"""The package's one error root, as librosa has ``ParameterError`` under ``LibrosaError``.

Every error about what a user gave (a file, a folder, a setting) or about where files go (a full
disk, a read-only folder) is a :class:`VgenreError`; the command line catches the root and prints
its message in one line. The older classes keep their ``ValueError`` / ``RuntimeError`` base, so
code that caught those still works.

=====================================  ===============================================
class                                  what went wrong
=====================================  ===============================================
:class:`VgenreError`                   the root: catch this
:class:`SettingError`                  a setting (option, environment variable) with an invalid value
:class:`WriteError`                    a file could not be written (no space, read-only, permission)
:class:`WorkerStartError`              worker processes cannot start (a module they need fails to import)
``helpers.config.ConfigError``         a profile or option value
``helpers.media.MediaError``           a media file that cannot be used
``helpers.manifest.ManifestError``     a manifest that cannot be read
``helpers.curate.CurationError``       a tree or genre map that cannot be curated
``helpers.synth.SynthError``           the synthetic set cannot be generated
``helpers.train.ModelFolderError``     a model folder that cannot be loaded
``helpers.weights.WeightsError``       InceptionV3 weights that cannot be found or read
=====================================  ===============================================

>>> issubclass(SettingError, VgenreError) and issubclass(SettingError, ValueError)
True
"""
from __future__ import annotations


class VgenreError(Exception):
    """The root of the package's errors: a message for a person, naming the thing and the fix."""


class SettingError(VgenreError, ValueError):
    """A setting (command-line option or environment variable) with a value that cannot be used."""


class WriteError(VgenreError, OSError):
    """A file that could not be written; ``path`` is the file, ``reason`` what the system said.

    Nothing of the file is left behind (:mod:`helpers.fileio` removes its temporary file).
    ``errno`` is the system's error number (``errno.ENOSPC`` for a full disk).
    """

    def __init__(self, path, reason: str, errno: int | None = None):
        super().__init__(errno, reason)
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.reason}"

    def __reduce__(self):  # whole across processes (a worker that writes)
        return type(self), (self.path, self.reason, self.errno)

    @property
    def disk_full(self) -> bool:
        """Whether the file system is full (a batch stops: the next file would fail too)."""
        import errno as errno_codes

        return self.errno in (errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EFBIG)


class WorkerStartError(VgenreError, RuntimeError):
    """Worker processes that cannot start, so no job can run in them; ``cause`` says why.

    This is a problem of the setup (a package that fails to import in a fresh process, a
    missing shared library), not of the clips or scenes given to the workers: one error for the
    whole batch, naming the cause, rather than one failure recorded against every job.

    >>> str(WorkerStartError("ImportError: libGL.so.1: cannot open shared object file"))[:52]
    'worker processes cannot start: ImportError: libGL.so'
    """

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause

    def __str__(self) -> str:
        return (f"worker processes cannot start: {self.cause}. This is a problem of the installation, not of "
                "the input files: fix it, or pass workers=0 (--workers 0) to work in this process")

    def __reduce__(self):  # whole across processes (raised in a worker)
        return type(self), (self.cause,)
