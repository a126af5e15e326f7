"""The widgets build and react under the installed ipywidgets (8 here, 7.7 in the Colab-versions run)."""
from __future__ import annotations

import numpy as np

from helpers import widgets as w


def _frames(n=4):
    return np.random.default_rng(0).integers(0, 255, (n, 24, 32, 3), dtype=np.uint8)


def test_flipbook_slider_changes_the_image():
    box = w.flipbook(_frames(), 4.0, description="clip")
    slider = box.children[1].children[1]
    image = box.children[2]
    first = image.value
    slider.value = 2
    assert image.value != first


def test_quiz_counts_answers():
    quiz = w.genre_quiz([(_frames(), "Action"), (_frames(), "Horror")])
    buttons, score = quiz.children[0].children, quiz.children[1]
    next(b for b in buttons if b.description == "Action").click()
    next(b for b in buttons if b.description == "Action").click()
    assert score.value.startswith("score: 1 / 2")


def test_spectrogram_explorer_redraws():
    y = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    box = w.spectrogram_explorer(y, 16000)
    image, before = box.children[1], box.children[1].value
    box.children[0].children[2].value = 32  # n_mels
    assert image.value != before


def test_uploaded_files_reads_both_ipywidgets_formats():
    v8 = ({"name": "a.mp4", "type": "video/mp4", "size": 3, "content": memoryview(b"abc")},)
    v7 = {"a.mp4": {"metadata": {"name": "a.mp4", "size": 3}, "content": b"abc"}}
    assert w.uploaded_files(v8) == w.uploaded_files(v7) == [("a.mp4", b"abc")]


def test_video_upload_saves_and_confirms_in_the_notebook(tmp_path):
    import ipywidgets

    seen = []
    box = w.video_upload(tmp_path / "uploads", seen.append)
    picker, status = box.children
    assert "no file chosen" in status.value
    change = ({"name": "../clip.mp4", "type": "video/mp4", "size": 3, "content": memoryview(b"abc")},)
    if ipywidgets.__version__.startswith("7"):
        change = {"../clip.mp4": {"metadata": {"name": "../clip.mp4"}, "content": b"abc"}}
    for observer in picker._trait_notifiers["value"]["change"]:
        observer({"new": change, "name": "value", "owner": picker, "type": "change"})
    assert seen == [tmp_path / "uploads" / "clip.mp4"] and seen[0].read_bytes() == b"abc"
    assert "saved" in status.value and "clip.mp4" in status.value


def test_every_widget_leaves_a_picture_and_a_sentence_for_readers_without_a_kernel():
    """Displayed, each widget also carries what it shows as image/png (frames, spectrogram) and a
    sentence as text/plain, so GitHub or nbviewer show that instead of ``HBox(children=...``; the
    widget view stays in the bundle for JupyterLab."""
    import tempfile

    from IPython.core.formatters import DisplayFormatter

    frames = _frames(16)
    y = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    boxes = {"flipbooks": w.fps_flipbooks({1.0: frames[:4], 4.0: frames}), "quiz": w.genre_quiz([(frames, "Action")]),
             "explorer": w.spectrogram_explorer(y, 16000),
             "upload": w.video_upload(tempfile.mkdtemp(), lambda path: None)}
    for name, box in boxes.items():
        data = DisplayFormatter().format(box)[0]
        assert "application/vnd.jupyter.widget-view+json" in data, name
        assert "children=" not in data["text/plain"], (name, data["text/plain"])
        if name != "upload":
            assert data["image/png"].startswith(b"\x89PNG"), name
    assert "4 frames at 1 fps" in DisplayFormatter().format(boxes["flipbooks"])[0]["text/plain"]
    assert "no file chosen" in DisplayFormatter().format(boxes["upload"])[0]["text/plain"]
