"""Figures of the series: confusion matrices, training curves, reliability, timelines, spectrograms.

Each function draws on a matplotlib axis (a new figure when none is given) and returns the
figure; notebooks save figures through their run context (``ctx.save_fig``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.config import GENRES


def show_image(img: np.ndarray, title: str = "", *, ax=None, width: float = 10.0):
    """Show one RGB image (a contact sheet, a frame) without axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(width, width * img.shape[0] / img.shape[1] + 0.4))
    ax.imshow(img)
    ax.set_title(title)
    ax.axis("off")
    return ax.figure


def plot_confusion(cm: np.ndarray, title: str = "confusion matrix", *, ax=None):
    """A confusion matrix with genre names and counts (scikit-learn's display)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay(cm, display_labels=list(GENRES)).plot(ax=ax, colorbar=False, xticks_rotation=45)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")  # whole names, ending under their column
    ax.set_title(title)
    return ax.figure


def plot_history(log: str | Path | dict, title: str = "", *, ax=None):
    """Training and validation loss and accuracy per epoch: from a CSVLogger file or a dict of lists
    (``history.history``)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    log = pd.read_csv(log) if isinstance(log, (str, Path)) else pd.DataFrame(log)
    epochs = np.arange(1, len(log) + 1)
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    for k in ("loss", "val_loss"):
        ax[0].plot(epochs, log[k], label=k)
    for k in ("accuracy", "val_accuracy"):
        ax[1].plot(epochs, log[k], label=k)
    ax[0].set(xlabel="epoch", title=f"{title} loss")
    ax[1].set(xlabel="epoch", title=f"{title} accuracy", ylim=(0, 1.02))
    for a in ax:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, however few
        a.legend()
    return ax[0].figure


def live_curves(title: str = "", *, every: int = 1):
    """A Keras callback that draws the loss and accuracy curves while a model trains, in one picture
    that it redraws after every *every* epochs (in a notebook; elsewhere it does nothing). The saved
    notebook keeps the last drawing: the whole run."""
    import keras

    class LiveCurves(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.log, self.handle = {}, None

        def on_epoch_end(self, epoch, logs=None):
            for k, v in (logs or {}).items():
                self.log.setdefault(k, []).append(float(v))
            if (epoch + 1) % every == 0:
                self._draw()

        def on_train_end(self, logs=None):
            self._draw()

        def _draw(self):
            import matplotlib.pyplot as plt

            try:
                from IPython import get_ipython
                from IPython.display import display
            except ImportError:
                return
            if get_ipython() is None or not self.log.get("val_loss"):
                return
            fig = plot_history(self.log, title)
            fig.tight_layout()
            if self.handle is None:
                self.handle = display(fig, display_id=True)
            else:
                self.handle.update(fig)
            plt.close(fig)

    return LiveCurves()


def plot_reliability(rel: dict, title: str = "reliability", *, ax=None):
    """Accuracy against confidence per bin; the diagonal is a perfectly calibrated model."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(rel["confidence"], rel["accuracy"], "o-")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
           title=f"{title} (ECE {rel['ece']:.3f})")
    return ax.figure


def plot_timeline(windows: list[dict], title: str = "", *, ax=None):
    """Coloured bars, one per window, labelled with the predicted genre."""
    import matplotlib.pyplot as plt

    colours = dict(zip(GENRES, plt.cm.tab10.colors))
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.4))
    for k, w in enumerate(windows):
        ax.barh(k % 2, w["end"] - w["start"], left=w["start"], color=colours[w["genre"]], edgecolor="k")
        ax.text((w["start"] + w["end"]) / 2, k % 2, w["genre"], ha="center", va="center", fontsize=8)
    ax.set(xlabel="time (s)", yticks=[], title=title)
    return ax.figure


def plot_spectrogram(S_db: np.ndarray, sr: int, hop_length: int, title: str = "", *, ax=None):
    """A log-mel (or any) spectrogram in dB against time."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    im = ax.imshow(S_db, origin="lower", aspect="auto", cmap="magma",
                   extent=[0, S_db.shape[1] * hop_length / sr, 0, S_db.shape[0]])
    ax.set(xlabel="time (s)", ylabel="band", title=title)
    ax.figure.colorbar(im, ax=ax, label="dB")
    return ax.figure


def model_graph(model) -> dict[str, list[str]]:
    """Each layer of a functional Keras *model* and the layers it reads from, from the model's config."""
    def tensors(obj, found):
        if isinstance(obj, dict):
            if obj.get("class_name") == "__keras_tensor__":
                found.append(obj["config"]["keras_history"][0])
            for value in obj.values():
                tensors(value, found)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                tensors(value, found)
        return found

    return {layer["name"]: list(dict.fromkeys(tensors(layer.get("inbound_nodes", []), [])))
            for layer in model.get_config()["layers"]}


def draw_model(model, *, ax=None, title: str = ""):
    """A drawing of a functional Keras *model*: one box per layer (name, kind, output shape), arrows
    from the layers it reads. ``keras.utils.plot_model`` draws the same with Graphviz installed; this
    one needs only matplotlib."""
    import matplotlib.pyplot as plt

    graph = model_graph(model)
    depth: dict[str, int] = {}
    for name in graph:  # the config lists layers in an order where parents come first
        depth[name] = 1 + max((depth[p] for p in graph[name]), default=-1)
    rows: dict[int, list[str]] = {}
    for name, d in depth.items():
        rows.setdefault(d, []).append(name)
    widest = max(len(r) for r in rows.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2 * widest, 0.75 * len(rows) + 0.5))
    pos = {name: ((i + 0.5) / len(row) * widest, -d) for d, row in rows.items() for i, name in enumerate(row)}
    for name, parents in graph.items():
        for p in parents:
            ax.annotate("", xy=pos[name], xytext=pos[p], arrowprops=dict(arrowstyle="->", color="0.5",
                        shrinkA=11, shrinkB=11))
    for name, (x, y) in pos.items():
        layer = model.get_layer(name)
        shape = tuple(layer.output.shape[1:]) if hasattr(layer.output, "shape") else ""
        ax.text(x, y, f"{name}: {layer.__class__.__name__}\n{shape}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="#e8f0fa" if graph[name] else "#fdebd0", ec="0.4"))
    ax.set(xlim=(0, widest), ylim=(-len(rows) + 0.4, 0.6), title=title or model.name)
    ax.axis("off")
    return ax.figure
