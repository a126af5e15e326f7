"""Worker processes for the CPU side of feature extraction and for generating the synthetic set.

Decoding a clip (demuxing, H.264, resizing, audio resampling, the log-mel spectrogram) is CPU
work that Python threads cannot spread over cores. :func:`process_pool` gives a pool of worker
processes, each kept to *threads* threads for BLAS, OpenMP, numba, OpenCV and FFmpeg, so that N
workers use about N cores and leave the rest to the network in the main process.

Workers are started with ``spawn`` (never ``fork``: the main process may already run TensorFlow,
JAX or PyTorch threads, which a fork would copy half-way), import only the decoding modules (no
Keras), and stay alive for the next call in the same process; :func:`close_pools` stops them.

Workers die with their parent, however it ends (``kill -9`` included): each watches its parent's
process id and exits when the parent is gone, and on Linux the kernel also kills it at once
(``PR_SET_PDEATHSIG``) when the pool was started from the main thread (the signal follows the
thread that started the worker, so a pool started from another thread relies on the watch alone).
With the workers gone, multiprocessing's resource tracker ends too.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}
_LIMITS = []  # keeps the threadpoolctl limit of a worker alive


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers() -> int:
    """Decoding processes by default: one core per worker, one core left for the network; at least one."""
    return max(1, available_cores() - 1)


def main_is_importable() -> tuple[bool, str]:
    """Whether worker processes can start here, and if not, why.

    A spawned worker imports the main module again. A notebook kernel, ``python -m``, ``vgenre``
    and pytest are safe; a script run as ``python my_script.py`` is safe only when its work sits
    under ``if __name__ == "__main__":``, otherwise every worker would run the whole script again.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True, ""
    path = getattr(main, "__file__", None)
    if path is None:  # an interactive interpreter
        return True, ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return True, ""
    if "__name__" in text and "__main__" in text:
        return True, ""
    return False, (f"{path} has no `if __name__ == \"__main__\":` block, which worker processes need; "
                   f"decoding in this process instead (put the script's work under that block to use "
                   f"{default_workers()} decoding processes)")


PARENT_POLL_SECONDS = 0.5
"""How often a worker checks that its parent still runs."""


def die_with_parent(parent: int, *, deathsig: bool = False) -> None:
    """Make this process end when process *parent* ends: a daemon thread that checks every
    :data:`PARENT_POLL_SECONDS`, and with *deathsig* on Linux the kernel's ``PR_SET_PDEATHSIG``."""
    if deathsig and sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watch below suffices
            pass
    if os.getppid() != parent:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="vgenre-parent-watch", daemon=True).start()


def init_worker(threads: int, parent: int | None = None, deathsig: bool = False) -> None:
    """Run first in each worker: end with the *parent* process (:func:`die_with_parent`), and keep
    every native library of this process to *threads* threads.

    Environment variables reach the libraries this process has not loaded yet (numba, BLAS);
    threadpoolctl limits those already loaded; OpenCV and FFmpeg are told directly. Ctrl-C (and
    Jupyter's interrupt or shutdown, sent to the kernel's whole process group) is left to the main
    process, which cancels the pool's work; otherwise each worker would die printing a traceback.
    """
    import signal

    if parent is not None:
        die_with_parent(parent, deathsig=deathsig)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        _LIMITS.append(threadpool_limits(threads))
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    import cv2

    from helpers import media

    cv2.setNumThreads(threads)
    media.DECODER_THREADS = threads


def worker_initargs(threads: int) -> tuple:
    """The arguments of :func:`init_worker` for workers started from this thread of this process."""
    return threads, os.getpid(), threading.current_thread() is threading.main_thread()


def process_pool(workers: int, threads: int = 1) -> Executor:
    """A pool of *workers* processes of *threads* threads each, shared by the calls of this process.

    A pool whose worker died (a crash in native code) is replaced by a fresh one. The workers end
    with this process (:func:`die_with_parent`).

    Raises
    ------
    helpers.errors.SettingError
        When *workers* is below 1.
    """
    if workers < 1:
        from helpers.errors import SettingError

        raise SettingError(f"a pool needs at least 1 worker process, got {workers}")
    key = (workers, threads)
    pool = _POOLS.get(key)
    if pool is None or getattr(pool, "_broken", False):
        import multiprocessing

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=worker_initargs(threads))
        _POOLS[key] = pool
    return pool


def close_pools() -> None:
    """Stop every worker process this process started (also done at exit)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(close_pools)


def thread_settings() -> dict:
    """The thread limits of this process (what :func:`init_worker` set in a worker), for checks."""
    import cv2

    from helpers import media

    try:
        from threadpoolctl import threadpool_info

        blas = {f"{i['internal_api']}:{Path(i['filepath']).name}": i["num_threads"] for i in threadpool_info()}
    except ImportError:  # pragma: no cover
        blas = {}
    return {"ffmpeg": media.DECODER_THREADS, "opencv": cv2.getNumThreads(), "blas": blas,
            **{name: os.environ.get(name) for name in THREAD_VARIABLES},
            "modules": sorted({m.split(".")[0] for m in sys.modules})}
