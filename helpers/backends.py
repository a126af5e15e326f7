"""Keras on any backend: which one runs, its devices, training on several of them, gradients.

The series' models are Keras 3 code and run on TensorFlow, JAX or PyTorch, chosen by
``KERAS_BACKEND`` (or ``vgenre --backend``) before Keras is first imported. The few things that
differ between backends live here, each with one branch per backend:

* :func:`quiet_start` - imports Keras and its backend with their start-up chatter filtered out;
* :func:`describe`, :func:`list_devices` - the backend, its version and the devices Keras sees
  (notebook 00, summaries);
* :func:`training_scope` - several GPUs: ``keras.distribution.DataParallel`` on JAX,
  ``tf.distribute.MirroredStrategy`` on TensorFlow, one device otherwise;
* :func:`tensorboard_available` - TensorBoard logs need TensorFlow's summary writer;
* :func:`input_gradient` - the gradient of a model's top score with respect to its input (saliency).

>>> describe()["backend"] in ("tensorflow", "jax", "torch")
True
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from typing import Iterator

import numpy as np

_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


# Lines TensorFlow and XLA write straight to file descriptor 2 while they start, before their
# logging is set up (so TF_CPP_MIN_LOG_LEVEL cannot hide them): informational, or about CUDA on a
# machine without it. Anything else written meanwhile is passed on.
START_UP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|cudart_stub\.cc|"
    r"cpu_feature_guard\.cc|To enable the following instructions|rebuild TensorFlow with the appropriate|"
    r"failed call to cuInit|Unable to register cu(FFT|DNN|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|external/local_xla/xla/stream_executor/cuda|oneDNN supports DT_\w+ only on platforms with")


def start_up_lines(text: str) -> str:
    """*text* without the start-up noise lines of :data:`START_UP_NOISE`."""
    return "".join(line for line in text.splitlines(keepends=True) if not START_UP_NOISE.search(line))


@contextlib.contextmanager
def _filtered_fd2() -> Iterator[None]:
    """Send what is written to file descriptor 2 to a file meanwhile, then pass on all but the noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2: nothing to filter
        yield
        return
    try:
        capture = tempfile.TemporaryFile(mode="w+b")
    except OSError:  # no room for a temporary file: start unfiltered
        os.close(saved)
        yield
        return
    with capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = start_up_lines(capture.read().decode("utf-8", "replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


def quiet_start() -> None:
    """Import Keras and its backend without the start-up lines TensorFlow prints (oneDNN, CPU
    instructions, "failed call to cuInit" on machines without CUDA).

    On TensorFlow it also lets the GPUs' memory grow as needed instead of taking it all at the first
    operation, so the kernels of several open notebooks can share a GPU; JAX and PyTorch are only
    imported (they touch no device here).

    Call it before anything imports Keras (:func:`helpers.start_run` and the ``vgenre`` command do);
    afterwards it does nothing. Errors and warnings that are not start-up chatter still show.
    """
    if "keras" in sys.modules:
        return
    if "--xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):  # JAX on a GPU (seed_everything)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()
    # TensorFlow's own INFO and WARNING logs: read once, as it starts; the environment is left as it was
    before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _filtered_fd2():
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                for gpu in tf.config.list_physical_devices("GPU"):  # take GPU memory as needed, not all of it
                    with contextlib.suppress(RuntimeError, ValueError):  # kernels of other notebooks share it
                        tf.config.experimental.set_memory_growth(gpu, True)
                tf.constant(0.0)  # CUDA is set up (or fails to be, on a CPU machine) here
                # without AVX-512, oneDNN logs once per process, as an error, that it leaves boolean
                # tensors to Eigen: a boolean transpose (as a masked LSTM makes) logs it here, filtered
                tf.transpose(tf.constant([[True]]))
    finally:
        if before is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and the backend, and ask the backend for deterministic operations.

    With it, the same seed on the same machine and backend gives the same model and the same
    metrics: TensorFlow's op determinism on GPUs (``tf.config.experimental.enable_op_determinism``,
    which also orders tf.data), PyTorch's deterministic algorithms (warning where an operation has none),
    XLA's deterministic GPU operations for JAX (set before JAX starts, see :func:`quiet_start`;
    JAX on a CPU is deterministic already). Other machines, library versions or backends may still
    round differently; README, section Reproducibility.
    """
    import keras

    keras.utils.set_random_seed(seed)
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        # on a CPU TensorFlow's kernels are deterministic already, and op determinism makes tf.data
        # print an error line per model (an unknown attribute, TF 2.20-2.21); GPUs need it
        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.enable_op_determinism()
    elif name == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def backend_name() -> str:
    """The Keras backend of this process (``tensorflow``, ``jax``, ``torch`` or ``numpy``)."""
    import keras

    return keras.backend.backend()


def describe() -> dict:
    """The backend, the versions of Keras and of the backend's framework, and the devices Keras sees."""
    import keras

    name = backend_name()
    try:
        framework = version(_PACKAGES.get(name, name))
    except PackageNotFoundError:
        framework = "unknown"
    devices = list_devices()
    return {"backend": name, "keras": keras.__version__, "framework_version": framework, "devices": devices,
            "accelerators": [d for d in devices if not d.lower().startswith("cpu")]}


def list_devices() -> list[str]:
    """The devices Keras trains on: its accelerators when it has any, else the CPU.

    ``keras.distribution.list_devices`` on TensorFlow and JAX; Keras has no distribution backend
    for PyTorch, so there the devices come from ``torch.cuda``.
    """
    import keras

    if backend_name() == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu:0"]
    return list(keras.distribution.list_devices())


def accelerators() -> list[str]:
    """The GPU (or TPU) devices Keras sees; empty on a CPU-only machine."""
    return describe()["accelerators"]


def bfloat16_supported() -> bool:
    """Whether the accelerator Keras runs on computes in bfloat16 natively (never on the CPU).

    NVIDIA GPUs from compute capability 8.0 (A100, H100, H200, RTX 30xx on) and TPUs do; on older
    GPUs and CPUs bfloat16 is emulated and slower than float32.
    """
    name = backend_name()
    if name == "torch":
        import torch

        return bool(torch.cuda.is_available()) and all(  # native only: is_bf16_supported() counts emulation
            torch.cuda.get_device_capability(i) >= (8, 0) for i in range(torch.cuda.device_count()))
    if name == "jax":
        import jax

        devices = jax.devices()
        return bool(devices) and all(d.platform == "tpu" or (d.platform == "gpu" and _capability(
            getattr(d, "compute_capability", "0")) >= (8, 0)) for d in devices)
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return bool(gpus) and all(tuple(tf.config.experimental.get_device_details(g).get(
            "compute_capability", (0, 0))) >= (8, 0) for g in gpus)
    return False


def _capability(text: str) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return (int(major or 0), int(minor or 0))


@contextlib.contextmanager
def training_scope() -> Iterator[None]:
    """Build, compile and fit inside this block to use every accelerator of the machine.

    With more than one: data parallelism through ``keras.distribution.DataParallel`` on JAX and
    ``tf.distribute.MirroredStrategy`` on TensorFlow (its own mechanism there); PyTorch and single
    devices train as they are.
    """
    import keras

    name, devices = backend_name(), accelerators()
    if len(devices) < 2:
        yield
    elif name == "jax":
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)
    elif name == "tensorflow":
        import tensorflow as tf

        with tf.distribute.MirroredStrategy().scope():
            yield
    else:
        yield


def tensorboard_available() -> bool:
    """Keras' TensorBoard callback writes through TensorFlow's summary API, which needs the
    ``tensorboard`` package too: True when both really import.

    An import, not a look-up (``find_spec``): a TensorFlow that is installed but cannot be imported
    (a broken wheel, a missing shared library) must not make a JAX or PyTorch run fail at its
    training cell; without TensorBoard, training keeps its CSV log. The answer is remembered.
    """
    global _TENSORBOARD
    if _TENSORBOARD is None:
        try:
            import tensorboard  # noqa: F401
            import tensorflow  # noqa: F401
            _TENSORBOARD = True
        except Exception:  # ImportError, or whatever a broken build raises while loading
            _TENSORBOARD = False
    return _TENSORBOARD


_TENSORBOARD: bool | None = None


def input_gradient(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gradient of *model*'s largest output (per example) with respect to its input *x*.

    Returns ``(gradient, outputs)`` as numpy arrays; the gradient has the shape of *x*. Used for
    saliency maps: how much each input pixel moves the top genre's probability.
    """
    import keras

    x = np.asarray(x, np.float32)
    name = backend_name()
    if name == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = model(xt, training=False)
            top = tf.reduce_sum(tf.reduce_max(out, axis=-1))
        grad = tape.gradient(top, xt)
    elif name == "jax":
        import jax
        import jax.numpy as jnp

        def top(v):
            out = model(v, training=False)
            return jnp.sum(jnp.max(out, axis=-1)), out

        grad, out = jax.grad(top, has_aux=True)(jnp.asarray(x))
    elif name == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True, device=keras.ops.convert_to_tensor(x).device)
        out = model(xt, training=False)
        out.max(dim=-1).values.sum().backward()
        grad = xt.grad
    else:
        raise NotImplementedError(f"gradients are not available on the {name!r} backend")
    return keras.ops.convert_to_numpy(grad), keras.ops.convert_to_numpy(out)
