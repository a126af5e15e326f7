"""Frame sampling at N fps, sequences and masks, bad inputs."""
from __future__ import annotations

import math
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_clip
from helpers.frames import contact_sheet, make_sequences, sample_frames, sample_frames_multi
from helpers.media import MediaError
from helpers.synth import write_video


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(src_fps=st.sampled_from([24.0, 25.0, 30000 / 1001, 30.0, 60.0]), n_frames=st.integers(1, 70),
       fps=st.sampled_from([1.0, 2.0, 4.0, 6.0, 8.0]))
def test_counts_and_timestamps_for_any_source_rate(tmp_path, src_fps, n_frames, fps):
    frames = np.zeros((n_frames, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(n_frames, dtype=np.uint8)[:, None, None] * 3  # frame index in the red channel
    path = write_video(tmp_path / f"c_{src_fps:.2f}_{n_frames}.mp4", frames, src_fps, crf=0)
    out, times = sample_frames(path, fps=fps)
    duration = n_frames / Fraction(src_fps).limit_denominator(1001)
    assert len(out) == math.ceil(float(duration) * fps - 1e-6)
    assert np.allclose(times, np.arange(len(out)) / fps)
    shown = np.rint(out[:, 0, 0, 0] / 3.0)  # the frame on screen at each sample time
    expected = np.floor(times * float(Fraction(src_fps).limit_denominator(1001)) + 1e-6)
    assert np.abs(shown - expected).max() <= 1


def test_short_clip_gives_its_first_frame(tmp_path):
    path = write_clip(tmp_path / "short.mp4", seconds=0.2, fps=24.0)
    frames, times = sample_frames(path, fps=4.0)
    assert frames.shape[0] == 1 and times.tolist() == [0.0]


def test_variable_frame_rate(tmp_path):
    path = tmp_path / "vfr.mp4"
    pts_ms = [0, 40, 80, 300, 340, 900, 1000, 1450]  # irregular gaps
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), k * 30, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    frames, times = sample_frames(path, fps=4.0)
    assert times.tolist()[:6] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    levels = np.rint(frames[:, 16, 16, 0] / 30.0).astype(int).tolist()
    assert levels[:6] == [0, 2, 4, 4, 6, 6]  # the latest frame whose time is not after 0, 0.25, ..., 1.25 s


def test_resize_odd_sizes_and_rotation(tmp_path):
    import imageio_ffmpeg

    frames = np.zeros((12, 48, 80, 3), np.uint8)
    frames[:, :24] = 255  # top half white
    src = write_video(tmp_path / "wide.mp4", frames, 12.0)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-display_rotation", "90",
                    "-i", str(src), "-c", "copy", str(rotated)], check=True)
    out, _ = sample_frames(rotated, fps=2.0)
    assert out.shape[1:3] == (80, 48)  # portrait after applying rotation metadata
    odd, _ = sample_frames(src, fps=2.0, size=(31, 57))
    assert odd.shape[1:] == (31, 57, 3) and odd.dtype == np.uint8


def test_several_requests_decode_once_and_match_single_calls(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "c.mp4", seconds=2.0)
    calls = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: calls.append(a) or real_open(*a, **k))
    both = sample_frames_multi(path, [(2.0, (40, 40)), (4.0, None)])
    assert len(calls) == 1
    monkeypatch.setattr(av, "open", real_open)
    single = sample_frames(path, 4.0)
    assert np.array_equal(both[1][0], single[0]) and len(both[0][0]) == 4


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"hello", "not a readable media file")])
def test_bad_inputs_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad clip.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=reason) as err:
        sample_frames(path)
    assert str(path) in str(err.value)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        sample_frames(tmp_path / "nope.mp4")
    path = write_clip(tmp_path / "c.mp4")
    with pytest.raises(ValueError, match="fps must be positive"):
        sample_frames(path, fps=0)


def test_sequences_pad_and_mask():
    feats = np.arange(10, dtype=np.float32)[:, None]
    windows, mask = make_sequences(feats, 16)
    assert windows.shape == (1, 16, 1) and mask.sum() == 10 and not windows[0, 10:].any()
    long, mask = make_sequences(np.arange(100)[:, None], 40)
    assert long.shape == (1, 40, 1) and mask.all() and long[0, 0, 0] == 0 and long[0, -1, 0] == 99


def test_sliding_windows_cover_the_clip():
    windows, mask = make_sequences(np.arange(50)[:, None], 20, policy="sliding", stride=10)
    assert windows.shape[0] == 4 and windows[-1, 0, 0] == 30 and mask[-1].sum() == 20
    covered = {int(v) for w, m in zip(windows, mask) for v in w[m][:, 0]}
    assert covered == set(range(50))
    with pytest.raises(ValueError, match="policy"):
        make_sequences(np.zeros((3, 1)), 4, policy="other")


def test_contact_sheet_shape():
    sheet = contact_sheet(np.zeros((10, 20, 30, 3), np.uint8), cols=4, timestamps=np.arange(10) / 4)
    assert sheet.shape == (60, 120, 3)


def test_the_sampling_rule_is_notebook_02s_saved_cell(monkeypatch, tmp_path):
    """One source: decode_video picks its samples with the samples_due that notebook 02 shows."""
    import helpers.frames
    from helpers.course.frame_rate_experiments import samples_due

    assert helpers.frames.samples_due is samples_due
    calls = []
    monkeypatch.setattr(helpers.frames, "samples_due", lambda *a: calls.append(a) or samples_due(*a))
    path = write_clip(tmp_path / "c.mp4", seconds=1.0, fps=24)
    _, times = helpers.frames.sample_frames(path, fps=4.0)
    assert calls and len(times) == 4


@pytest.mark.parametrize("source_fps", [24.0, 25.0, 30000 / 1001, 60.0])
def test_samples_due_takes_the_frame_on_screen(source_fps):
    """Each sample time k / fps takes the latest frame that started at or before it; a duration d
    gives ceil(d * fps) samples, whatever the source rate."""
    from helpers.course.frame_rate_experiments import samples_due

    n_frames, fps = int(3 * source_fps), 4.0
    picked, k = [], 0
    for i in range(n_frames):
        due = samples_due(k, fps, (i + 1) / source_fps)
        picked += [i] * len(due)
        k = due.stop
    times = np.arange(len(picked)) / fps
    assert len(picked) == int(np.ceil(n_frames / source_fps * fps - 1e-9))
    assert np.array_equal(picked, np.floor(times * source_fps + 1e-9).astype(int))
    assert samples_due(5, fps, 1.0) == range(5, 5)  # 1.25 s is after the frame's end: nothing due
    assert samples_due(0, fps, 0.25) == range(0, 1)  # a sample at the very end takes the next frame
