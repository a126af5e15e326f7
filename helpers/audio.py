"""Audio of a clip: extraction, log-mel spectrograms, MFCCs step by step, per-frame alignment.

The paper converted each clip's audio to WAV with ffmpeg and then to a mel spectrogram; it lists
five steps for MFCCs. The method itself (the mel scale, the five steps in numpy, the log-mel and
MFCCs through librosa) is written in notebook 03's ``# @save`` cells and imported here from
:mod:`helpers.course.mel_spectrograms` (one source, :mod:`helpers.cells`); this module adds what
does not teach: decoding, the WAV file, streaming and the alignment to sampled frames.

Usage (a file of your own)::

    y = load_audio("clip.mp4", sr=22050)
    S_db = log_mel_spectrogram(y, sr=22050)
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from helpers.course.mel_spectrograms import (hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_to_hz,  # noqa: F401
                                             mfcc, mfcc_steps)
from helpers.media import MediaError, StreamDecoder, check_decoded, open_media, stream_duration


@dataclass(frozen=True)
class DecodedAudio:
    """What :func:`decode_audio` got from one clip.

    Attributes
    ----------
    samples : float32 ``[n]``, mono
    sr : sample rate of *samples* in Hz
    duration : seconds the file declares for its audio, or None when it declares none
    decoded_seconds : ``len(samples) / sr``
    share : ``decoded_seconds / duration`` in ``[0, 1]`` (1.0 when the duration is unknown); never
        below :data:`helpers.media.MIN_DECODED_SHARE`, since a track decoding less is refused
    skipped_packets : damaged packets FFmpeg could not decode, skipped
    """

    samples: np.ndarray
    sr: int
    duration: float | None
    decoded_seconds: float
    share: float
    skipped_packets: int = 0


def decode_audio(path: str | Path, sr: int = 22050) -> DecodedAudio | None:
    """Decode the first audio track of *path* as mono float32 at *sr* Hz, and say how much decoded.

    Packets FFmpeg cannot decode are skipped (``skipped_packets``). A track is kept when what
    decoded covers :data:`helpers.media.MIN_DECODED_SHARE` of its declared duration.

    Returns
    -------
    DecodedAudio, or None when the file has no audio track

    Raises
    ------
    MediaError
        When the file is missing, empty, not a media file, its audio cannot be decoded or decodes
        less than the minimum share (the message names the file and says how much decoded).

    Usage (a file of your own)::

        clip = decode_audio("clip.mp4", sr=16000)
        clip.samples.shape, clip.share   # ((160512,), 1.0) for 10 s of sound that all decodes
    """
    path = Path(path)
    with open_media(path, need="any") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        decoder, sink = StreamDecoder(path, container, stream, what="audio"), AudioSink(sr)
        for frame in decoder:
            sink.add(frame)
        return sink.result(path, decoder, stream_duration(container, stream))


class AudioSink:
    """Audio frames resampled, as they come, to mono float32 at *sr* Hz: one resampling per clip.

    :func:`decode_audio` feeds it from the audio stream alone; :func:`helpers.frames.decode_video`
    feeds it while it reads the video, so a clip's file is read once for both.

    With a *consumer*, the samples are handed to it as they come and not kept (a long file's
    audio is then never in memory whole); :meth:`result` then returns no samples.
    """

    def __init__(self, sr: int, consumer=None):
        self.sr, self.chunks, self.consumer, self.n = sr, [], consumer, 0
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)

    def add(self, frame: av.AudioFrame | None) -> None:
        """Resample one decoded *frame* (None flushes the resampler)."""
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1)
            self.n += len(samples)
            if self.consumer is not None:
                self.consumer(samples)
            else:
                self.chunks.append(samples)

    def result(self, path: Path, decoder: StreamDecoder, duration: float | None) -> DecodedAudio:
        """The samples, checked against the damaged-stream rule (raises :class:`MediaError`)."""
        self.add(None)
        y = np.concatenate(self.chunks).astype(np.float32) if self.chunks else np.zeros(0, np.float32)
        share = check_decoded(path, "audio", self.n / self.sr, duration)
        return DecodedAudio(y, self.sr, duration, self.n / self.sr, share, decoder.skipped)


def load_audio(path: str | Path, sr: int = 22050) -> np.ndarray | None:
    """Decode the first audio track of *path* as mono float32 at *sr* Hz.

    Returns ``None`` when the file has no audio track: a documented result, not an error, since
    clips without sound are common and the models handle them with an explicit flag.
    :func:`decode_audio` also says how much of a damaged track decoded.

    Raises
    ------
    MediaError
        When the file is missing, empty, not a media file or its audio cannot be decoded.
    """
    decoded = decode_audio(path, sr)
    return None if decoded is None else decoded.samples


def extract_wav(path: str | Path, out: str | Path, sr: int = 22050) -> Path:
    """Write the audio of *path* as a mono 16-bit WAV with ffmpeg, the paper's route.

    The ffmpeg binary comes from the ``imageio-ffmpeg`` package, so no system ffmpeg is needed.
    The WAV is written under a temporary name and renamed when complete.

    Raises
    ------
    MediaError
        When the file cannot be opened, has no audio stream, or ffmpeg fails on it.
    """
    import imageio_ffmpeg

    path, out = Path(path), Path(out)
    open_media(path, need="audio").close()
    tmp = out.with_name(f".{out.stem}.partial.wav")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(path),
           "-vn", "-ac", "1", "-ar", str(sr), "-c:a", "pcm_s16le", str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise MediaError(path, f"ffmpeg could not extract audio: {result.stderr.strip()[:300]}")
    tmp.replace(out)
    return out


def load_audio_info(path: str | Path) -> dict | None:
    """Sample rate, channel count and codec of the first audio track, or None without audio.

    Raises
    ------
    MediaError
        When the file cannot be opened as media.
    """
    with open_media(path, need="any") as container:
        if not container.streams.audio:
            return None
        s = container.streams.audio[0]
        return {"sample_rate": s.rate, "channels": s.channels, "codec": s.codec_context.name}


def frame_audio_features(y: np.ndarray | None, sr: int, timestamps: np.ndarray, fps: float, *,
                         n_fft: int = 2048, hop_length: int = 512, n_mels: int = 64
                         ) -> tuple[np.ndarray, bool]:
    """One log-mel vector per sampled video frame: the mean over ``[t, t + 1/fps)``.

    The spectrogram is computed once for the whole clip, then averaged per frame step. A clip
    without audio (*y* is None or empty) gives zeros and ``has_audio=False``, a flag the models use.

    Returns
    -------
    features : float32 ``[len(timestamps), n_mels]`` in dB
    has_audio : bool
    """
    if y is None or len(y) < hop_length:
        return np.zeros((len(timestamps), n_mels), np.float32), False
    S_db = log_mel_spectrogram(y, sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return step_means(S_db, sr, timestamps, fps, hop_length=hop_length), True


def step_means(S_db: np.ndarray, sr: int, timestamps: np.ndarray, fps: float, *, hop_length: int = 512
               ) -> np.ndarray:
    """The mean spectrogram column over ``[t, t + 1/fps)`` for each time *t*: ``[len(timestamps), n_mels]``."""
    timestamps = np.asarray(timestamps, np.float64)
    n_mels, cols = S_db.shape
    start = np.clip((timestamps * sr / hop_length).round().astype(int), 0, cols - 1)
    stop = np.clip(((timestamps + 1.0 / fps) * sr / hop_length).round().astype(int), start + 1, cols)
    out = np.empty((len(timestamps), n_mels), np.float32)
    for k in range(0, len(timestamps), 2048):  # blocks of steps: a long soundtrack's sums stay small
        a, b = start[k:k + 2048], stop[k:k + 2048]
        lo, hi = int(a.min()), int(b.max())
        csum = np.concatenate([np.zeros((n_mels, 1)), np.cumsum(S_db[:, lo:hi], axis=1, dtype=np.float64)], axis=1)
        out[k:k + 2048] = ((csum[:, b - lo] - csum[:, a - lo]) / (b - a)).T
    return out


class StreamingLogMel:
    """The log-mel spectrogram of :func:`log_mel_spectrogram`, computed as the samples come.

    Feed samples in order with :meth:`add`; :meth:`finish` returns the ``[n_mels, frames]``
    spectrogram, the same columns as for the whole signal at once (centred frames, zero padding
    at both ends). Samples wait until *block* frames can be computed at once (one short STFT per
    block, about 3 s of sound by default), and the columns go into one growing array: a two-hour
    soundtrack at 22 050 Hz is 635 MB of float32 samples and its STFT several GB; its log-mel is
    80 MB, and that is about all this holds (given the duration as *seconds*, the array is sized once).
    """

    def __init__(self, sr: int, *, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 64, block: int = 128,
                 seconds: float | None = None):
        import librosa

        self.sr, self.n_fft, self.hop, self.n_mels, self.block = sr, n_fft, hop_length, n_mels, block
        self.filters = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
        self.pending = [np.zeros(n_fft // 2, np.float32)]  # the zero padding before the first frame
        self.waiting = n_fft // 2  # samples in pending
        self.n, self.done = 0, 0
        # room for *seconds* of sound (the declared duration) up front: no regrowth, no copy at the end
        self.columns = np.empty((n_mels, int(seconds * sr) // hop_length + 2 if seconds and seconds > 0 else 4096),
                                np.float32)

    def add(self, samples: np.ndarray) -> None:
        """Take the next *samples*; compute the frames of a full block once there is one."""
        self.n += len(samples)
        self.pending.append(np.asarray(samples, np.float32))
        self.waiting += len(samples)
        if self.waiting >= (self.block - 1) * self.hop + self.n_fft:
            self._frames()

    def _frames(self) -> None:
        import librosa

        buffer = np.concatenate(self.pending)
        if len(buffer) < self.n_fft:
            self.pending, self.waiting = [buffer], len(buffer)
            return
        k = (len(buffer) - self.n_fft) // self.hop + 1  # whole frames in the buffer
        S = np.abs(librosa.stft(buffer[: (k - 1) * self.hop + self.n_fft], n_fft=self.n_fft, hop_length=self.hop,
                                center=False)) ** 2
        cols = librosa.power_to_db(self.filters @ S, ref=1.0, top_db=None)
        if self.done + k > self.columns.shape[1]:  # grow by doubling: amortised, no list of pieces
            grown = np.empty((self.n_mels, max(2 * self.columns.shape[1], self.done + k)), np.float32)
            grown[:, :self.done] = self.columns[:, :self.done]
            self.columns = grown
        self.columns[:, self.done:self.done + k] = cols
        self.done += k
        rest = buffer[k * self.hop:].copy()  # a copy: the block's buffer is freed
        self.pending, self.waiting = [rest], len(rest)

    def finish(self) -> np.ndarray:
        """The spectrogram of everything added: ``1 + n // hop_length`` columns, as librosa gives."""
        total = 1 + self.n // self.hop
        self._frames()
        if self.done < total:  # the last frames reach into the zero padding after the signal
            need = (total - self.done - 1) * self.hop + self.n_fft - self.waiting
            self.pending.append(np.zeros(max(0, need), np.float32))
            self._frames()
        return self.columns[:, :total]
