"""Worker processes for the CPU side of feature extraction and for generating the synthetic set.

Decoding a clip (demuxing, H.264, resizing, audio resampling, the log-mel spectrogram) is CPU
work that Python threads cannot spread over cores. :func:`process_pool` gives a pool of worker
processes, each kept to *threads* threads for BLAS, OpenMP, numba, OpenCV and FFmpeg, so that N
workers use about N cores and leave the rest to the network in the main process.

Workers are started with ``spawn`` (never ``fork``: the main process may already run TensorFlow,
JAX or PyTorch threads, which a fork would copy half-way) and import only the decoding modules (no
Keras). No pool outlives its work: :class:`JobPool` (feature extraction) is shut down, its
processes joined, when its ``with`` block ends; a pool of :func:`process_pool` (the synthetic
set, benchmarks) shuts itself down once it has been idle for :data:`IDLE_SECONDS`, and starts
again on the next job; :func:`close_pools` stops them at once.

A worker that cannot start (its initialiser fails: a package or shared library missing in a
fresh process) does not fail each job as if the job had crashed it: jobs run through
:func:`run_job` raise one :class:`~helpers.errors.WorkerStartError` naming the cause.

Workers die with their parent, however it ends (``kill -9`` included): each watches its parent's
process id and exits when the parent is gone, and on Linux the kernel also kills it at once
(``PR_SET_PDEATHSIG``) when the pool was started from the main thread (the signal follows the
thread that started the worker, so a pool started from another thread relies on the watch alone).
With the workers gone, multiprocessing's resource tracker ends too.
"""
from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
import time
import warnings
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from helpers.errors import SettingError, WorkerStartError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

_POOLS: dict[tuple[int, int], "SharedPool"] = {}
_LIMITS = []  # keeps the threadpoolctl limit of a worker alive
_START_FAILURE: list[str] = []  # in a worker whose initialiser failed: why

IDLE_SECONDS = 2.0
"""How long a pool of :func:`process_pool` waits for the next job before it shuts down."""


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


def start_worker(threads: int, parent: int | None = None, deathsig: bool = False) -> None:
    """The initialiser of every pool here: :func:`init_worker`, and if that fails, the reason kept
    for :func:`run_job` to report (the worker stays up, so the parent hears why)."""
    try:
        init_worker(threads, parent, deathsig)
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        _START_FAILURE.append(f"{type(exc).__name__}: {exc}")


def run_job(target, /, *args, **kwargs):
    """Run *target* with *args* in this worker: a function, or its name (``"module:function"``).

    A named function is imported here, not unpickled, so that a module that fails to import in
    the worker is reported as such rather than as a worker that died while reading its job.

    Raises
    ------
    helpers.errors.WorkerStartError
        When this worker's initialiser failed or *target*'s module cannot be imported here.
    """
    if _START_FAILURE:
        raise WorkerStartError(_START_FAILURE[0])
    if callable(target):
        return target(*args, **kwargs)
    module, name = target.split(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise WorkerStartError(f"{type(exc).__name__}: {exc} (importing {module})") from None
    return fn(*args, **kwargs)


def worker_ready() -> bool:
    """A job that does nothing: whether a fresh worker can run anything at all."""
    return True


def _spawn_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker, initargs=worker_initargs(threads))


def usable_workers(workers: int | None, *, stacklevel: int = 2) -> int:
    """The number of worker processes to use for *workers* (None: :func:`default_workers`); 0 when
    this script cannot start workers (:func:`main_is_importable`, with a warning saying why)."""
    workers = default_workers() if workers is None else workers
    if workers:
        safe, why = main_is_importable()
        if not safe:
            warnings.warn(why, stacklevel=stacklevel + 1)
            return 0
    return workers


class JobPool:
    """Worker processes for one job, shut down (their processes joined) when the ``with`` block ends
    (after an exception, without waiting for the jobs already running).

    *workers* processes of *threads* threads each (:func:`init_worker`); with *workers* 0, one
    thread of this process. Jobs are named functions (:func:`run_job`). A pool that lost a worker
    (a crash in native code) is replaced by a fresh one at the next :meth:`submit`.
    """

    def __init__(self, workers: int, threads: int = 1):
        if workers < 0:
            raise SettingError(f"a pool needs 0 worker processes (a thread) or more, got {workers}")
        self.workers, self.threads = workers, threads
        self._pool: Executor | None = None

    def submit(self, target: str, *args) -> Future:
        """Start ``target(*args)`` (:func:`run_job`); its future."""
        for attempt in range(2):
            if self._pool is None or getattr(self._pool, "_broken", False):
                if self._pool is not None:
                    self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = (ThreadPoolExecutor(1) if self.workers == 0
                              else _spawn_pool(self.workers, self.threads))
            try:
                return self._pool.submit(run_job, target, *args)
            except BrokenProcessPool:  # broke between the check and the call: once more with a fresh one
                if attempt:
                    raise
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
        raise AssertionError("unreachable")

    def close(self, wait: bool = True) -> None:
        """Cancel the jobs not started and stop the workers, waiting for them to end (with *wait*;
        without, the jobs running finish and their workers then end on their own)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> "JobPool":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)  # an error or Ctrl-C returns at once, not after the running jobs


def run_alone(target: str, *args):
    """``target(*args)`` in a worker process of its own, ended afterwards: for a job that crashed a
    pool, so that a second crash is that job's alone.

    Raises
    ------
    concurrent.futures.process.BrokenProcessPool
        When the job crashes this process too.
    helpers.errors.WorkerStartError
        When a fresh worker cannot even run a job that does nothing: the crash was not the job's.
    """
    with JobPool(1) as pool:
        try:
            return pool.submit(target, *args).result()
        except BrokenProcessPool:
            pass
    with JobPool(1) as pool:
        try:
            pool.submit("helpers.workers:worker_ready").result()
        except BrokenProcessPool:
            raise WorkerStartError("a fresh worker process ended before it could run a job that does nothing "
                                   "(the messages it printed above say why)") from None
    raise BrokenProcessPool(f"{target} crashed its worker process")


class SharedPool(Executor):
    """A process pool shared by the calls of this process that shuts itself down when idle.

    Jobs run through :func:`run_job`, so a worker that could not start raises one
    :class:`~helpers.errors.WorkerStartError` naming why.

    The processes start at the first :meth:`submit`; once no job has been waiting or running for
    :data:`IDLE_SECONDS` they are stopped, and the next :meth:`submit` starts new ones. A pool
    whose worker died (a crash in native code) is replaced by a fresh one.
    """

    def __init__(self, workers: int, threads: int = 1):
        self.workers, self.threads = workers, threads
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0
        self._timer: threading.Timer | None = None

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pool is None or getattr(self._pool, "_broken", False):
                self._pool = _spawn_pool(self.workers, self.threads)
            future = self._pool.submit(run_job, fn, *args, **kwargs)
            self._busy += 1
        future.add_done_callback(self._one_done)
        return future

    def _one_done(self, _future: Future) -> None:
        with self._lock:
            self._busy -= 1
            if self._busy == 0 and self._pool is not None:
                self._timer = threading.Timer(IDLE_SECONDS, self._close_if_idle)
                self._timer.daemon = True
                self._timer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            if self._busy or self._pool is None:
                return
            pool, self._pool, self._timer = self._pool, None, None
        pool.shutdown(wait=True)

    @property
    def running(self) -> bool:
        """Whether worker processes are up (started and not shut down for idleness)."""
        return self._pool is not None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            pool, self._pool, self._timer = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def process_pool(workers: int, threads: int = 1) -> Executor:
    """A pool of *workers* processes of *threads* threads each, shared by the calls of this process
    (:class:`SharedPool`: it shuts down after :data:`IDLE_SECONDS` without work).

    The workers end with this process (:func:`die_with_parent`).

    Raises
    ------
    helpers.errors.SettingError
        When *workers* is below 1.
    """
    if workers < 1:
        raise SettingError(f"a pool needs at least 1 worker process, got {workers}")
    key = (workers, threads)
    if key not in _POOLS:
        _POOLS[key] = SharedPool(workers, threads)
    return _POOLS[key]


def close_pools() -> None:
    """Stop every worker process of :func:`process_pool` now (also done at exit)."""
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
