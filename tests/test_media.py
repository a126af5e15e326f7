"""Opening media in one place: every failure names the file and the reason; the damaged-stream rule."""
from __future__ import annotations

import logging
import math
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

import helpers.audio
import helpers.frames
import helpers.media
from conftest import write_clip
from helpers.audio import decode_audio, load_audio
from helpers.curate import probe_video
from helpers.frames import decode_video, sample_frames
from helpers.media import MIN_DECODED_SHARE, MediaError, check_decoded, decoded_share, open_media


def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A good 4 s clip with its index up front (so a cut file still opens), and cuts of it."""
    root = tmp_path_factory.mktemp("media")
    source = write_clip(root / "source.mp4", seconds=4.0)
    good = root / "good.mp4"
    _ffmpeg("-i", str(source), "-c", "copy", "-movflags", "+faststart", str(good))
    data = good.read_bytes()
    cuts = {"third": root / "third.mp4", "most": root / "most.mp4"}
    cuts["third"].write_bytes(data[: len(data) // 3])
    cuts["most"].write_bytes(data[: int(len(data) * 0.97)])
    audio_only = root / "audio only.mp4"
    _ffmpeg("-i", str(good), "-vn", "-c:a", "copy", str(audio_only))
    return {"good": good, "audio_only": audio_only, "silent": write_clip(root / "silent.mp4", audio_rate=None), **cuts}


@pytest.fixture()
def bad_files(tmp_path, clips) -> dict[str, tuple[Path, str, str]]:
    """name: (path, need, reason the MediaError must give)."""
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video at all")
    return {
        "missing": (tmp_path / "missing.mp4", "video", "file not found"),
        "folder": (tmp_path / "folder.mp4", "video", "is a folder named like a .mp4 file, not a media file"),
        "empty": (tmp_path / "empty.mp4", "video", "file is empty (0 bytes)"),
        "text": (tmp_path / "notes.mp4", "any", "not a readable media file (InvalidDataError: "),
        "audio only": (clips["audio_only"], "video", "has no video stream"),
        "no audio": (clips["silent"], "audio", "has no audio stream"),
    }


@pytest.mark.parametrize("name", ["missing", "folder", "empty", "text", "audio only", "no audio"])
def test_open_failures_name_the_file_and_the_reason(bad_files, name):
    path, need, reason = bad_files[name]
    with pytest.raises(MediaError) as err:
        open_media(path, need=need)
    assert str(err.value).startswith(f"{path}: {reason}")
    assert err.value.path == path and err.value.reason.startswith(reason)


def test_open_checks_need_and_returns_an_open_container(clips):
    with open_media(clips["audio_only"], need="any") as container:
        assert container.streams.audio and not container.streams.video
    with open_media(clips["good"], need="audio") as container:
        assert container.streams.video and container.streams.audio
    with pytest.raises(ValueError, match="need must be one of"):
        open_media(clips["good"], need="subtitles")


def test_decoded_share_rule():
    assert decoded_share(2.5, 5.0) == 0.5
    assert decoded_share(5.04, 5.0) == 1.0 and decoded_share(1.0, None) == 1.0 and decoded_share(1.0, 0.0) == 1.0
    assert check_decoded("a.mp4", "video", 4.6, 5.0) == pytest.approx(0.92)
    with pytest.raises(MediaError) as err:
        check_decoded(Path("dir/a.mp4"), "video", 2.5, 5.3)
    assert str(err.value) == f"{Path('dir/a.mp4')}: video decodes only 2.5 s of 5.3 s (47%, below the 90% needed)"
    assert MIN_DECODED_SHARE == 0.9


def test_good_clip_decodes_whole(clips):
    video = decode_video(clips["good"], [(4.0, None), (2.0, (32, 40))])
    assert video.duration == pytest.approx(4.0) and video.decoded_seconds == pytest.approx(4.0)
    assert video.share == pytest.approx(1.0)
    assert [len(f) for f, _ in video.samples] == [16, 8] and video.samples[1][0].shape[1:] == (32, 40, 3)
    audio = decode_audio(clips["good"], 16000)
    assert audio.sr == 16000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.share == pytest.approx(1.0) and audio.decoded_seconds == len(audio.samples) / 16000
    assert decode_audio(clips["silent"]) is None and load_audio(clips["silent"]) is None


def test_file_cut_to_a_third_is_refused_saying_how_much_decoded(clips):
    path = clips["third"]
    for read, what in ((lambda: sample_frames(path), "video"), (lambda: load_audio(path), "audio")):
        with pytest.raises(MediaError) as err:
            read()
        message = str(err.value)
        assert message.startswith(f"{path}: {what} decodes only ") and "of 4.0 s" in message
        assert "below the 90% needed" in message
        share = int(message.split("(")[1].split("%")[0])
        assert 20 <= share <= 45  # about a third of the bytes, about a third of the clip


def test_file_missing_its_last_bytes_is_kept_with_its_share(clips):
    video = decode_video(clips["most"], [(4.0, None)])
    audio = decode_audio(clips["most"], 16000)
    for part in (video, audio):
        assert MIN_DECODED_SHARE <= part.share < 1.0
        assert part.decoded_seconds == pytest.approx(part.share * part.duration)
    frames, times = video.samples[0]
    assert len(frames) == len(times) == math.ceil(video.decoded_seconds * 4 - 1e-6)  # up to where it decoded
    assert sample_frames(clips["most"])[0].shape == frames.shape
    assert probe_video(clips["most"])["status"] == "ok"
    assert probe_video(clips["most"])["decoded_share"] == pytest.approx(video.share, abs=1e-3)


class _BadPacket:
    """A packet of a damaged stream: decoding it raises *error*."""

    def __init__(self, error: Exception, stream):
        self._error, self.stream = error, stream

    def decode(self):
        raise self._error


class _BreakingContainer:
    """A real container whose packets from number *after* on fail to decode with *error*, as a
    damaged stream's do (the final empty packet, which flushes the decoder, stays real)."""

    def __init__(self, container, after: int, error: Exception, until: int | None = None):
        self._container, self._after, self._error, self._until = container, after, error, until

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._container.close()

    def demux(self, *streams):
        counts: dict[int, int] = {}  # packets seen so far, per stream
        for packet in self._container.demux(*streams):
            k = counts[packet.stream.index] = counts.get(packet.stream.index, -1) + 1
            damaged = packet.size and k >= self._after and (self._until is None or k < self._until)
            yield _BadPacket(self._error, packet.stream) if damaged else packet


def _breaking_open(monkeypatch, module, after: int, error: Exception, until: int | None = None) -> None:
    real = helpers.media.open_media  # not a wrapper left by an earlier call
    monkeypatch.setattr(module, "open_media", lambda *a, **k: _BreakingContainer(real(*a, **k), after, error, until))


def test_ffmpeg_error_mid_stream_keeps_enough_and_refuses_too_little(clips, monkeypatch, caplog):
    damaged = av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
    _breaking_open(monkeypatch, helpers.frames, 92, damaged)  # 96 frames in 4 s at 24 fps
    with caplog.at_level(logging.WARNING, logger="helpers.media"):
        video = decode_video(clips["good"], [(4.0, None)])
    assert video.share == pytest.approx(92 / 96) and len(video.samples[0][0]) == 16
    assert "video: 4 damaged packet(s) skipped (InvalidDataError" in caplog.text
    _breaking_open(monkeypatch, helpers.frames, 40, damaged)
    with pytest.raises(MediaError, match=r"video decodes only 1\.7 s of 4\.0 s \(42%"):
        decode_video(clips["good"], [(4.0, None)])
    _breaking_open(monkeypatch, helpers.frames, 0, damaged)
    with pytest.raises(MediaError, match=r"cannot decode video \(InvalidDataError: Invalid data found"):
        sample_frames(clips["good"])
    _breaking_open(monkeypatch, helpers.audio, 10, damaged)
    with pytest.raises(MediaError, match=r"audio decodes only 0\.\d s of 4\.0 s"):
        load_audio(clips["good"])


def test_other_errors_while_decoding_are_not_hidden(clips, monkeypatch):
    _breaking_open(monkeypatch, helpers.frames, 50, RuntimeError("a bug in the decoder loop"))
    with pytest.raises(RuntimeError, match="a bug in the decoder loop"):
        sample_frames(clips["good"])
    monkeypatch.undo()
    calls = []
    real_to_rgb = helpers.frames._to_rgb

    def failing_to_rgb(frame, size):
        calls.append(size)
        if len(calls) > 3:
            raise RuntimeError("a bug in the frame conversion")
        return real_to_rgb(frame, size)

    monkeypatch.setattr(helpers.frames, "_to_rgb", failing_to_rgb)
    with pytest.raises(RuntimeError, match="a bug in the frame conversion"):
        sample_frames(clips["good"])
    monkeypatch.undo()
    _breaking_open(monkeypatch, helpers.audio, 20, KeyError("a bug in the audio loop"))
    with pytest.raises(KeyError, match="a bug in the audio loop"):
        load_audio(clips["good"])


@pytest.mark.parametrize("name", ["missing", "folder", "empty", "text", "audio only", "third"])
def test_probe_and_sample_frames_give_the_same_reason(bad_files, clips, name):
    path = clips[name] if name in clips else bad_files[name][0]
    with pytest.raises(MediaError) as err:
        sample_frames(path)
    assert str(err.value) == f"{path}: {err.value.reason}"
    assert probe_video(path)["status"] == f"bad: {err.value.reason}"
