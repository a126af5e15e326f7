"""ipywidgets explorers for the notebooks: a flipbook, the fps quiz, a spectrogram explorer, an upload.

They work with ipywidgets 7 (Colab) and 8 (JupyterLab 4).

They need a live Jupyter kernel to react; under papermill they render once and do nothing more,
so every notebook also computes the same numbers without them.

Each one also leaves what it showed first in the notebook: a picture (``image/png``) and a
sentence (``text/plain``) beside the live widget, so a notebook read without a kernel (GitHub,
nbviewer, a text viewer) shows the frames, the spectrogram or the upload's state instead of
``HBox(children=(VBox(...``. JupyterLab keeps showing the live widget.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Callable

import numpy as np

from helpers.config import GENRES


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@functools.cache
def _box_with_picture(kind: str):
    """``ipywidgets.VBox`` or ``HBox`` that adds to its display what ``self.static()`` returns:
    ``{"image/png": bytes, "text/plain": str}`` of its present state."""
    import ipywidgets as widgets

    base = getattr(widgets, kind)

    class Box(base):
        static: Callable[[], dict] | None = None

        def _repr_mimebundle_(self, **kwargs):
            parent = getattr(super(), "_repr_mimebundle_", None)
            data = dict(parent(**kwargs) if parent else {
                "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                             "model_id": self.model_id}})
            return {**data, **(self.static() if self.static else {})}

        if hasattr(base, "_ipython_display_"):  # ipywidgets 7 displays itself: go through the bundle instead
            def _ipython_display_(self, **kwargs):
                raise NotImplementedError

    Box.__name__ = Box.__qualname__ = f"{kind}WithPicture"
    return Box


def _box(kind: str, children, static: Callable[[], dict], **kwargs):
    box = _box_with_picture(kind)(children, **kwargs)
    box.static = static
    return box


def _sheet(rows: list[tuple[str, np.ndarray]], *, most: int = 12) -> bytes:
    """A contact sheet (PNG): one row of frames per ``(label, frames)``, at most *most* per row,
    spread evenly over the row's frames."""
    import matplotlib.pyplot as plt

    cols = min(most, max(len(f) for _, f in rows))
    h, w = rows[0][1].shape[1:3]
    fig, axes = plt.subplots(len(rows), cols, squeeze=False,
                             figsize=(1.3 * cols * w / max(h, w) + 0.9, 1.3 * len(rows) * h / max(h, w) + 0.2))
    for (label, frames), row in zip(rows, axes):
        picks = np.unique(np.linspace(0, len(frames) - 1, min(cols, len(frames))).round().astype(int))
        for ax, k in zip(row, range(cols)):
            ax.axis("off")
            if k < len(picks):
                ax.imshow(frames[picks[k]])
        row[0].text(-0.08, 0.5, label, transform=row[0].transAxes, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.9 / fig.get_figwidth(), right=0.99, top=0.98, bottom=0.02, wspace=0.04, hspace=0.08)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _frames_note(frames: np.ndarray, fps: float, most: int = 12) -> str:
    shown = "all shown" if len(frames) <= most else f"{most} shown, evenly spaced"
    return f"{len(frames)} frames at {fps:g} fps over {len(frames) / fps:.3g} s, {shown}"


SLIDER_WIDTH = "270px"
"""The width of every slider of the flipbooks and the explorer. Fixed, so a slider never shrinks to
nothing beside its neighbours (it did at 1366 px with Lab's file browser open); rows of controls
wrap instead."""


def _fixed_layout(width: str | None = None):
    """A layout that keeps its natural (or the given) width inside a flex row."""
    import ipywidgets as widgets

    return widgets.Layout(width=width, flex="0 0 auto") if width else widgets.Layout(flex="0 0 auto")


def flipbook(frames: np.ndarray, fps: float = 4.0, *, description: str = ""):
    """A player that shows *frames* one after another at *fps*, with a slider to step by hand."""
    import ipywidgets as widgets

    pngs = [_png(f) for f in frames]
    image = widgets.Image(value=pngs[0], format="png", width=min(480, frames.shape[2] * 2))
    play = widgets.Play(value=0, min=0, max=len(pngs) - 1, interval=int(1000 / fps), description=description,
                        layout=_fixed_layout())
    slider = widgets.IntSlider(value=0, min=0, max=len(pngs) - 1, description="frame",
                               style={"description_width": "initial"}, layout=_fixed_layout(SLIDER_WIDTH))
    widgets.jslink((play, "value"), (slider, "value"))
    slider.observe(lambda change: setattr(image, "value", pngs[change["new"]]), names="value")
    controls = widgets.HBox([play, slider], layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
    box = _box("VBox", [widgets.Label(description), controls, image],
               lambda: {"image/png": _sheet([(description, frames)]),
                        "text/plain": f"flipbook: {_frames_note(frames, fps)}"},
               layout=widgets.Layout(flex="0 0 auto", margin="0 8px 8px 0"))
    box.frames, box.fps = frames, fps
    return box


def fps_flipbooks(clip_frames: dict[float, np.ndarray]):
    """Flipbooks of one clip sampled at several rates (the paper's human test), side by side as far
    as the page is wide, then on the next line."""
    import ipywidgets as widgets

    books = [flipbook(f, fps, description=f"{fps:g} fps") for fps, f in clip_frames.items()]
    return _box("HBox", books,
                lambda: {"image/png": _sheet([(f"{b.fps:g} fps", b.frames) for b in books]),
                         "text/plain": "flipbooks of one clip, one row per rate: "
                                       + "; ".join(_frames_note(b.frames, b.fps) for b in books)},
                layout=widgets.Layout(flex_flow="row wrap"))


def genre_quiz(clips: list[tuple[np.ndarray, str]], fps: float = 4.0):
    """Guess-the-genre mode: a flipbook per clip, buttons for the six genres, a running score."""
    import ipywidgets as widgets

    state = {"i": 0, "right": 0}
    out = widgets.Output()
    score = widgets.Label()
    buttons = [widgets.Button(description=g) for g in GENRES]

    def show():
        out.clear_output()
        with out:
            from IPython.display import display

            if state["i"] < len(clips):
                display(flipbook(clips[state["i"]][0], fps, description=f"clip {state['i'] + 1} of {len(clips)}"))
        score.value = f"score: {state['right']} / {state['i']}"

    def answer(button):
        if state["i"] >= len(clips):
            return
        truth = clips[state["i"]][1]
        state["right"] += button.description == truth
        state["i"] += 1
        show()
        score.value += f"   (last clip was {truth})"

    def static() -> dict:
        if state["i"] >= len(clips):
            return {"text/plain": f"genre quiz over: {score.value}"}
        frames = clips[state["i"]][0]
        return {"image/png": _sheet([(f"clip {state['i'] + 1}", frames)]),
                "text/plain": f"genre quiz, clip {state['i'] + 1} of {len(clips)}, {_frames_note(frames, fps)}: "
                              f"which of {', '.join(GENRES)}? {score.value}"}

    for b in buttons:
        b.on_click(answer)
    show()
    return _box("VBox", [widgets.HBox(buttons), score, out], static)


def spectrogram_explorer(y: np.ndarray, sr: int):
    """Sliders for n_fft, hop length and n_mels that redraw the log-mel spectrogram; a player to listen."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Audio

    from helpers.audio import log_mel_spectrogram

    def render(n_fft: int, hop_length: int, n_mels: int) -> bytes:
        S = log_mel_spectrogram(y, sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.imshow(S, origin="lower", aspect="auto", cmap="magma", extent=[0, len(y) / sr, 0, n_mels])
        ax.set(xlabel="time (s)", ylabel="mel band",
               title=f"n_fft={n_fft} hop={hop_length} n_mels={n_mels}: {S.shape[1]} columns")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()

    def slider(options, value, description):
        return widgets.SelectionSlider(options=options, value=value, description=description,
                                       style={"description_width": "initial"}, layout=_fixed_layout(SLIDER_WIDTH))

    sliders = {
        "n_fft": slider([256, 512, 1024, 2048, 4096], 2048, "n_fft"),
        "hop_length": slider([128, 256, 512, 1024], 512, "hop"),
        "n_mels": slider([16, 32, 64, 128], 64, "n_mels"),
    }
    image = widgets.Image(value=render(2048, 512, 64), format="png")

    def redraw(_change=None):
        image.value = render(**{k: w.value for k, w in sliders.items()})

    for w in sliders.values():
        w.observe(redraw, names="value")
    player = widgets.HTML(Audio(y, rate=sr)._repr_html_())
    row = widgets.HBox(list(sliders.values()), layout=widgets.Layout(flex_flow="row wrap"))
    return _box("VBox", [row, image, player],
                lambda: {"image/png": bytes(image.value),
                         "text/plain": "spectrogram explorer: log-mel spectrogram with "
                                       + ", ".join(f"{w.description}={w.value}" for w in sliders.values())
                                       + f" ({len(y) / sr:.1f} s at {sr} Hz)"})


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """``(name, content)`` of each file in a ``FileUpload`` value, from ipywidgets 7 or 8.

    ipywidgets 8 (JupyterLab 4) gives a tuple of dicts with ``name`` and ``content``; ipywidgets 7
    (Colab) gives a dict from file name to ``{"content": ..., "metadata": ...}``.
    """
    if isinstance(value, dict):
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]


def video_upload(folder: Path, on_saved: Callable[[Path], None]):
    """A file picker for one video: saves the chosen file into *folder*, says so under the picker
    and calls ``on_saved(path)``. Works with ipywidgets 7 and 8."""
    import ipywidgets as widgets

    picker = widgets.FileUpload(accept="video/*", multiple=False, description="video")
    status = widgets.Label("no file chosen yet: the cells below use the demo clip")

    def save(change):
        for name, content in uploaded_files(change["new"]):
            target = Path(folder) / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            status.value = f"saved {target} ({len(content) / 1e6:.1f} MB); now run the cells below"
            on_saved(target)

    picker.observe(save, names="value")
    return _box("VBox", [picker, status], lambda: {"text/plain": f"video upload (a file picker): {status.value}"})
