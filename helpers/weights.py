"""Where InceptionV3's ImageNet weights come from: the weights policy of DESIGN.md.

In order: a file the user names (an argument, ``--weights`` or ``VGENRE_WEIGHTS``), Keras' cache
(``~/.keras/models``), Keras' download. Offline, ``smoke`` and ``default`` continue with a
*randomly initialised* backbone and say so loudly; ``full`` stops with an error that names the
missing file, where to get it and where to put it. A file found locally is hashed once per
process, and no network probe is made when one is found.

Usage::

    resolve_weights("smoke").source   # 'random' on a machine without the ImageNet file and offline
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from helpers.config import Profile, get_profile
from helpers.errors import VgenreError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/{WEIGHTS_FILE}"
RANDOM_SEED = 1234
"""The seed of the random backbone used when no pretrained weights can be had."""


class WeightsError(VgenreError, RuntimeError):
    """Pretrained weights are required (profile ``full``) but cannot be found or downloaded."""


@dataclass(frozen=True)
class WeightsStatus:
    """Where the backbone's weights come from: ``file``, ``keras-cache``, ``download``,
    ``random`` or ``fine-tuned``; *weights_id* names them in cache keys and model configs."""

    source: str
    path: str | None
    weights_id: str
    message: str

    @property
    def pretrained(self) -> bool:
        """True when the backbone carries ImageNet (or user-supplied) weights."""
        return not self.weights_id.startswith("random")


def keras_cache_path() -> Path:
    """Where Keras keeps downloaded application weights."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / WEIGHTS_FILE


@functools.lru_cache(maxsize=None)
def _file_id_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def file_id(path: str | Path) -> str:
    """A short content hash of a weights file, computed once per process per file version."""
    path = Path(path).resolve()
    st = path.stat()
    return _file_id_cached(str(path), st.st_size, st.st_mtime_ns)


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    if os.environ.get("VGENRE_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def random_status(profile_name: str = "default") -> WeightsStatus:
    """The status of the seeded random backbone, with the loud message the notebooks print."""
    message = (f"NO PRETRAINED WEIGHTS: {WEIGHTS_FILE} is not in {keras_cache_path().parent} and cannot be "
               f"downloaded; profile {profile_name!r} continues with a RANDOMLY INITIALISED InceptionV3 "
               f"(seed {RANDOM_SEED}). Features then reflect colour and texture statistics, not ImageNet objects.")
    return WeightsStatus("random", None, f"random-{RANDOM_SEED}", message)


def describe_weights(weights_id: str) -> str:
    """The backbone weights a model was trained with, in words, from the id its config records.

    >>> describe_weights("random-1234")
    'a randomly initialised InceptionV3, no ImageNet weights (random-1234)'
    """
    kind = ("a randomly initialised InceptionV3, no ImageNet weights" if weights_id.startswith("random")
            else "InceptionV3 with ImageNet weights")
    return f"{kind}{', fine-tuned' if '+ft-' in weights_id else ''} ({weights_id})"


def resolve_weights(profile: str | Profile = "default", weights: str | Path | None = None) -> WeightsStatus:
    """Decide where the ImageNet weights come from, following the policy above.

    Raises
    ------
    WeightsError
        When the profile requires pretrained weights and none can be found or downloaded, or
        when a file named by the user does not exist.
    """
    prof = get_profile(profile)
    named = weights or os.environ.get("VGENRE_WEIGHTS")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            origin = "argument" if weights else "VGENRE_WEIGHTS"
            raise WeightsError(f"weights file {path} (from {origin}) does not exist")
        return WeightsStatus("file", str(path), f"file-{file_id(path)}", f"ImageNet weights from {path}")
    cached = keras_cache_path()
    if cached.is_file():
        return WeightsStatus("keras-cache", str(cached), f"file-{file_id(cached)}",
                             f"ImageNet weights from Keras' cache {cached}")
    if _online():
        try:
            import keras

            path = Path(keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models"))
            return WeightsStatus("download", str(path), f"file-{file_id(path)}", f"ImageNet weights downloaded to {path}")
        except Exception as exc:  # network errors come in many types
            log.warning("download of %s failed: %s", WEIGHTS_URL, exc)
    if prof.require_pretrained:
        raise WeightsError(
            f"profile {prof.name!r} needs ImageNet weights for InceptionV3, and none were found.\n"
            f"  missing file: {WEIGHTS_FILE}\n  get it from:  {WEIGHTS_URL}\n"
            f"  put it at:    {cached}  (Keras' cache), or anywhere and set VGENRE_WEIGHTS=/path/to/it"
        )
    return random_status(prof.name)
