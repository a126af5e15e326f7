"""Audio extraction, mel scales, MFCC step by step against librosa, frame alignment, bad inputs."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf

from conftest import write_clip
from helpers.audio import (extract_wav, frame_audio_features, hz_to_mel, load_audio, load_audio_info, mel_filterbank,
                           mel_to_hz, mfcc, mfcc_steps)
from helpers.media import MediaError


def test_htk_and_slaney_known_values():
    assert hz_to_mel(700.0, htk=True) == pytest.approx(2595 * np.log10(2))
    assert hz_to_mel(1000.0, htk=True) == pytest.approx(999.99, abs=0.02)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(200.0 / 3) == pytest.approx(1.0)
    f = np.linspace(0, 11025, 50)
    for htk in (True, False):
        assert np.allclose(hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk))
        assert np.allclose(mel_to_hz(hz_to_mel(f, htk=htk), htk=htk), f)


@pytest.mark.parametrize("htk", [True, False])
def test_filterbank_matches_librosa(htk):
    ours = mel_filterbank(22050, 1024, 40, htk=htk)
    assert np.allclose(ours, librosa.filters.mel(sr=22050, n_fft=1024, n_mels=40, htk=htk), atol=1e-7)


@pytest.mark.parametrize("htk", [True, False])
def test_mfcc_steps_match_librosa(htk):
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    y = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    steps = mfcc_steps(y, 22050, n_mfcc=13, n_fft=1024, hop_length=256, n_mels=40, htk=htk)
    reference = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=13, n_fft=1024, hop_length=256, n_mels=40, htk=htk)
    assert steps["mfcc"].shape == reference.shape
    assert np.abs(steps["mfcc"] - reference).max() < 1e-3  # dB; float32 against float64 arithmetic
    assert np.allclose(mfcc(y, 22050, n_mfcc=13, n_fft=1024, hop_length=256, n_mels=40, htk=htk), reference, atol=1e-4)


@pytest.mark.parametrize("rate, channels", [(44100, 1), (48000, 2), (22050, 1)])
def test_load_audio_mono_at_requested_rate(tmp_path, rate, channels):
    path = write_clip(tmp_path / f"a_{rate}_{channels}.mp4", seconds=1.0, audio_rate=rate, channels=channels)
    info = load_audio_info(path)
    assert info["sample_rate"] == rate and info["channels"] == channels
    y = load_audio(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) < 0.08 * 16000  # AAC adds priming samples at the edges


def test_clip_without_audio_gives_none_and_a_flag(tmp_path):
    path = write_clip(tmp_path / "silent.mp4", audio_rate=None)
    assert load_audio(path) is None
    feats, has_audio = frame_audio_features(None, 22050, np.arange(4) / 4, 4.0, n_mels=16)
    assert feats.shape == (4, 16) and not has_audio and not feats.any()
    with pytest.raises(MediaError, match="has no audio stream"):
        extract_wav(path, tmp_path / "out.wav")


def test_extract_wav_with_registry_ffmpeg(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=1.0, audio_rate=44100)
    wav = extract_wav(path, tmp_path / "a.wav", sr=22050)
    y, sr = sf.read(wav)
    assert sr == 22050 and y.ndim == 1 and abs(len(y) - 22050) < 2000
    assert not list(tmp_path.glob("*.partial*"))


def test_aligned_features_one_vector_per_frame():
    sr, fps = 22050, 4.0
    y = np.concatenate([np.zeros(sr), 0.5 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)]).astype(np.float32)
    times = np.arange(8) / fps
    feats, has_audio = frame_audio_features(y, sr, times, fps, n_mels=32)
    assert feats.shape == (8, 32) and has_audio
    assert feats[6].max() > feats[1].max() + 40  # the tone starts at 1 s
    assert np.argmax(feats[6]) == np.argmax(feats[7])  # and stays in one mel band


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"garbage", "not a readable media file")])
def test_bad_inputs_name_the_file(tmp_path, content, reason):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=reason) as err:
        load_audio(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("seconds", [0.05, 0.2, 3.0])
def test_streaming_log_mel_equals_the_whole_signal_at_once(seconds):
    """Fed in uneven pieces (as a decoder hands them over), the streaming spectrogram has the
    same columns as the one of the whole signal: what keeps `vgenre predict` bounded on long files."""
    from helpers.audio import StreamingLogMel, log_mel_spectrogram

    sr = 22050
    rng = np.random.default_rng(1)
    y = (0.3 * rng.normal(size=int(seconds * sr))).astype(np.float32)
    mel = StreamingLogMel(sr, n_fft=2048, hop_length=512, n_mels=64)
    cuts = np.sort(rng.integers(0, len(y), size=12))
    for piece in np.split(y, cuts):
        mel.add(piece)
    whole = log_mel_spectrogram(y, sr, n_fft=2048, hop_length=512, n_mels=64)
    streamed = mel.finish()
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-3


@pytest.mark.parametrize("seconds", [None, 0.5, 3.0, -1.0])
def test_streaming_log_mel_sized_from_a_duration_or_not(seconds):
    """Sized up front from a declared duration (right, too short, missing or nonsense) or grown as the
    samples come: the same spectrogram; and no samples at all give librosa's single column."""
    from helpers.audio import StreamingLogMel, log_mel_spectrogram

    sr = 16000
    y = (0.2 * np.random.default_rng(2).normal(size=3 * sr)).astype(np.float32)
    mel = StreamingLogMel(sr, n_fft=1024, hop_length=256, n_mels=32, block=8, seconds=seconds)
    for piece in np.array_split(y, 97):
        mel.add(piece)
    assert np.abs(mel.finish() - log_mel_spectrogram(y, sr, n_fft=1024, hop_length=256, n_mels=32)).max() < 1e-3
    assert StreamingLogMel(sr, n_fft=1024, hop_length=256, n_mels=32, seconds=seconds).finish().shape == (32, 1)


def test_the_steps_helpers_run_are_notebook_03s_saved_cells():
    """One source: helpers.audio runs the functions notebook 03 shows, not a copy of its own."""
    import helpers.audio as audio
    from helpers.course import mel_spectrograms as course

    for name in ("hz_to_mel", "mel_to_hz", "mel_filterbank", "mfcc_steps", "log_mel_spectrogram", "mfcc"):
        assert getattr(audio, name) is getattr(course, name), name
        assert getattr(course, name).__module__ == "helpers.course.mel_spectrograms", name


def test_each_step_matches_librosa_or_scipy():
    """Each of the five steps against the same step computed another way."""
    import scipy.fft

    from helpers.course.mel_spectrograms import dct_matrix, power_spectrum, to_decibels, windowed_frames

    rng = np.random.default_rng(1)
    y = rng.normal(size=5000)
    power = power_spectrum(windowed_frames(y, n_fft=512, hop_length=128))
    reference = np.abs(librosa.stft(y, n_fft=512, hop_length=128, pad_mode="constant")) ** 2
    assert power.shape == reference.shape and np.allclose(power, reference, rtol=1e-9, atol=1e-9)
    x = rng.normal(size=(12, 7))
    assert np.allclose(dct_matrix(12) @ x, scipy.fft.dct(x, type=2, norm="ortho", axis=0))
    p = np.abs(rng.normal(size=(8, 20))) ** 4
    assert np.allclose(to_decibels(p), librosa.power_to_db(p, ref=1.0, amin=1e-10, top_db=80.0))
