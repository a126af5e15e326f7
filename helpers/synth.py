"""Deterministic synthetic genre clips, written as real MP4 files (H.264 video, AAC audio).

Nothing can be downloaded in CI or on an offline laptop, so the series ships a generator of
"films" in the six genres. The cues are designed so that every lesson of the series can be
measured (see ``data/README.md``, the dataset card):

* single frames confuse two pairs: Action/Sports share palettes and busy motion, Horror/Science
  Fiction share dark cool palettes and sparse bright specks; what separates them happens *over
  time* (Action cuts every second, Sports pans smoothly; Horror flickers, Science Fiction glides);
* audio separates those pairs (drums and blasts against crowd and whistles; drones and stingers
  against high synth pads) but confuses Animation with Romance (both melodies drawn from one pool
  of instruments, tempi and registers), which video separates easily;
* clips are cut from films: a film fixes palette, texture, shapes, key, tempo and instrument for
  all its clips, so a random split lets a model recognise films rather than genres;
* the profile's ``difficulty`` hides cues in some clips (another genre's look, no score), so no
  method reaches a ceiling and fusion has conflicts and gaps to handle (:func:`borrowed_cues`);
* hard cases (split ``hard``) mirror the paper's two failures: a horror scene with fast action-like
  motion, and a romance scene in low light.

Usage (a few minutes on a CPU)::

    from helpers.synth import generate_dataset
    manifest = generate_dataset("smoke", "data/generated/synth-smoke")
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from helpers.config import GENRES, Profile, get_profile
from helpers.errors import VgenreError
from helpers.fileio import atomic_path
from helpers.manifest import MANIFEST_NAME, write_manifest

# Visual style of each genre. Pairs share palettes ("hue" ranges) on purpose.
_FAST_HUES, _DARK_HUES = (0.0, 0.38), (0.48, 0.80)
VISUAL = {
    "Action": dict(hues=_FAST_HUES, value=(0.40, 0.62), sat=(0.45, 0.75), n_obj=(4, 7), speed=(0.05, 0.09),
                   shake=4.0, shot=(0.6, 1.2), pan=0.0, flashes=0, specks=0, outline=False, blur=0),
    "Sports": dict(hues=_FAST_HUES, value=(0.40, 0.62), sat=(0.45, 0.75), n_obj=(4, 7), speed=(0.05, 0.09),
                   shake=0.5, shot=None, pan=0.012, flashes=0, specks=0, outline=False, blur=0),
    "Horror": dict(hues=_DARK_HUES, value=(0.10, 0.22), sat=(0.30, 0.60), n_obj=(1, 2), speed=(0.004, 0.012),
                   shake=0.3, shot=None, pan=0.0, flashes=3, specks=60, speck_motion="fall", outline=False, blur=0),
    "ScienceFiction": dict(hues=_DARK_HUES, value=(0.10, 0.22), sat=(0.30, 0.60), n_obj=(1, 2),
                           speed=(0.004, 0.012), shake=0.0, shot=None, pan=0.004, flashes=0, specks=60,
                           speck_motion="radial", outline=False, blur=0),
    "Animation": dict(hues=(0.0, 1.0), value=(0.75, 0.95), sat=(0.80, 1.00), n_obj=(3, 5), speed=(0.02, 0.04),
                      shake=0.0, shot=(1.5, 3.0), pan=0.0, flashes=0, specks=0, outline=True, blur=0),
    "Romance": dict(hues=(0.88, 1.06), value=(0.55, 0.75), sat=(0.20, 0.40), n_obj=(1, 2), speed=(0.004, 0.012),
                    shake=0.0, shot=(3.0, 6.0), pan=0.002, flashes=0, specks=0, outline=False, blur=7),
}
# Audio style of each genre. Animation and Romance draw from one pool on purpose.
_MELODY = dict(kind="melody", tempo=(90, 130), register=(250.0, 700.0))
AUDIO = {
    "Action": dict(kind="drums", tempo=(140, 175), register=(45.0, 70.0)),
    "Sports": dict(kind="crowd", tempo=(60, 100), register=(2400.0, 3400.0)),
    "Horror": dict(kind="drone", tempo=(40, 60), register=(40.0, 70.0)),
    "ScienceFiction": dict(kind="pads", tempo=(60, 90), register=(700.0, 1500.0)),
    "Animation": _MELODY,
    "Romance": _MELODY,
}
HARD_CASES = {
    # The paper's ghost walking up a tree, called Action: a Horror film (drone, stingers) shot and lit
    # like Action (palette, brightness, fast objects, shake, cuts).
    "horror_fast_motion": dict(genre="Horror", look="Action", flashes=0),
    # The paper's dimly lit romance, called Horror: a Romance film (soft shapes, blur, melody) at
    # Horror's brightness, with two flickers of candle light.
    "romance_low_light": dict(genre="Romance", look="Romance", value=(0.10, 0.22), flashes=2),
}


class SynthError(VgenreError, ValueError):
    """A synthetic-data parameter that is not allowed."""


@dataclass(frozen=True)
class Film:
    """Everything a film fixes for all of its clips: the group of a grouped split."""

    genre: str
    film_id: str
    seed: int
    hue: float
    sat: float
    value: float
    tex_scale: int
    shape: str
    tempo: float
    base_freq: float
    instrument: str


def _rng(*keys) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_film(genre: str, index: int, seed: int = 0) -> Film:
    """Draw the style of film number *index* of *genre* (deterministic in *seed*)."""
    if genre not in GENRES:
        raise SynthError(f"unknown genre {genre!r}; choose one of {GENRES}")
    v, a = VISUAL[genre], AUDIO[genre]
    rng = _rng("film", genre, index, seed)
    return Film(
        genre=genre, film_id=f"{genre.lower()}_{index:02d}", seed=int(rng.integers(2**31)),
        hue=float(rng.uniform(*v["hues"])) % 1.0, sat=float(rng.uniform(*v["sat"])),
        value=float(rng.uniform(*v["value"])), tex_scale=int(rng.choice([4, 6, 8, 12])),
        shape=str(rng.choice(["circle", "rect"])), tempo=float(rng.uniform(*a["tempo"])),
        base_freq=float(rng.uniform(*a["register"])), instrument=str(rng.choice(["pluck", "soft"])),
    )


def borrowed_cues(film: Film, clip_index: int, difficulty: float) -> tuple[str, str]:
    """What clip *clip_index* of *film* hides: ``(look, sound)``, each "" when the clip is plain.

    With probability *difficulty* the clip is shot like another genre (*look* names it, drawn
    uniformly from the other five: its palette, brightness, motion, cuts and flashes), as a dark
    comedy or a quiet action scene is. Independently, with the same probability, the clip has no
    score (*sound* is ``"none"``): only room tone and murmured speech, the same for every genre,
    as in a dialogue scene. Such clips keep their label. A model that reads one modality loses
    about a share *difficulty* of the clips; one that reads both can fall back on the other
    modality when the score is missing, but cannot tell which of two disagreeing cues to trust.
    Deterministic in the film and the clip; a larger *difficulty* keeps every smaller one's
    choices and adds more.
    """
    if not 0 <= difficulty < 1:
        raise SynthError(f"difficulty must be in [0, 1), got {difficulty}")
    rng = _rng("borrow", film.film_id, film.seed, clip_index)
    others = [g for g in GENRES if g != film.genre]
    u_look, u_sound = rng.random(2)
    look = others[int(rng.integers(len(others)))]
    return (look if u_look < difficulty else "", "none" if u_sound < difficulty else "")


def _hsv_image(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    hsv = np.stack([(h % 1.0) * 180.0, s * 255.0, v * 255.0], axis=-1).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)


def _texture(rng: np.random.Generator, shape: tuple[int, int], scale: int, film: Film, hue: float,
             value: float) -> np.ndarray:
    h, w = shape
    small = rng.random((max(2, h // scale), max(2, w // scale), 2)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    hue_map = hue + 0.06 * (big[..., 0] - 0.5)
    val_map = value * (0.7 + 0.6 * big[..., 1])
    return _hsv_image(hue_map, np.full((h, w), film.sat, np.float32), val_map.clip(0, 1))


def render_frames(film: Film, clip_index: int, profile: Profile, *, look: str | None = None,
                  value_override: tuple[float, float] | None = None, flashes_override: int | None = None
                  ) -> tuple[np.ndarray, list[float]]:
    """Render the frames of one clip as uint8 RGB ``[n, h, w, 3]``; also return the flash times.

    The hard cases borrow another genre's *look* (palette, brightness, motion and cuts), override
    the brightness range (*value_override*) or the number of flashes (*flashes_override*).
    """
    v = VISUAL[look or film.genre]
    rng = _rng("clip", film.film_id, film.seed, clip_index)
    h, w = profile.frame_size
    fps = profile.source_fps
    n = max(1, int(round(profile.clip_seconds * fps)))
    borrowed = look not in (None, film.genre)
    value = film.value if value_override is None and not borrowed else float(rng.uniform(*(value_override or v["value"])))
    hue = float(rng.uniform(*v["hues"])) % 1.0 if borrowed else film.hue
    margin = 16
    pan_px = v["pan"] * w * n
    tex_shape = (h + 2 * margin, int(w + 2 * margin + pan_px) + 1)
    # shots: Action cuts often, others rarely or never
    cuts = [0]
    if v["shot"] is not None:
        t = 0.0
        while True:
            t += rng.uniform(*v["shot"])
            if t >= profile.clip_seconds:
                break
            cuts.append(int(t * fps))
    n_flashes = v["flashes"] if flashes_override is None else flashes_override
    flashes = sorted(rng.uniform(0.5, max(0.6, profile.clip_seconds - 0.5), size=n_flashes).tolist())
    flash_frames = np.zeros(n, np.float32)
    for ft in flashes:
        i0 = int(ft * fps)
        flash_frames[i0:i0 + max(1, int(0.4 * fps))] = 1.0
    grain = [rng.normal(0, 6, (h, w, 3)).astype(np.float32) for _ in range(3)]
    n_obj = int(rng.integers(v["n_obj"][0], v["n_obj"][1] + 1))
    n_specks = v["specks"]
    speck_xy = rng.random((n_specks, 2)).astype(np.float32)
    frames = np.empty((n, h, w, 3), np.uint8)
    background = pos = vel = colours = None
    for i in range(n):
        if i in cuts:
            cut = len(cuts) > 1  # a new shot: new colour, light and layout
            shot_hue = hue + (rng.uniform(-0.1, 0.1) if cut else 0.0)
            shot_value = min(1.0, value * (rng.uniform(0.7, 1.3) if cut else 1.0))
            background = _texture(rng, tex_shape, film.tex_scale, film, shot_hue, shot_value)
            pos = rng.random((n_obj, 2)) * [w, h]
            speed = rng.uniform(*v["speed"], size=(n_obj, 1)) * w
            angle = rng.uniform(0, 2 * np.pi, size=(n_obj, 1))
            vel = np.hstack([np.cos(angle), np.sin(angle)]) * speed
            colours = [_hsv_image(np.array([[shot_hue + rng.uniform(0.3, 0.7)]]), np.array([[film.sat]]),
                                  np.array([[min(1.0, value * 1.6 + 0.1)]]))[0, 0].tolist() for _ in range(n_obj)]
        sx, sy = (rng.normal(0, v["shake"], 2) if v["shake"] else (0.0, 0.0))
        x0 = int(np.clip(margin + sx + v["pan"] * w * i, 0, tex_shape[1] - w))
        y0 = int(np.clip(margin + sy, 0, tex_shape[0] - h))
        frame = background[y0:y0 + h, x0:x0 + w].copy()
        if n_specks:
            if v.get("speck_motion") == "fall":
                xy = (speck_xy + [0.0, 0.01 * i]) % 1.0
            else:  # radial glide away from the centre, wrapping round at the borders
                xy = (0.5 + (speck_xy - 0.5) * (1.0 + 0.02 * i)) % 1.0
            px = (xy * [w - 1, h - 1]).astype(int)
            frame[px[:, 1], px[:, 0]] = 235.0
        pos = pos + vel
        for k in range(2):  # bounce off the borders
            lim = w if k == 0 else h
            out = (pos[:, k] < 0) | (pos[:, k] > lim)
            vel[out, k] *= -1
            pos[:, k] = pos[:, k].clip(0, lim)
        size = max(3, int(0.07 * min(h, w)))
        for (x, y), col in zip(pos.astype(int), colours):
            if film.shape == "circle":
                cv2.circle(frame, (int(x), int(y)), size, col, -1)
                if v["outline"]:
                    cv2.circle(frame, (int(x), int(y)), size, (0, 0, 0), 2)
            else:
                cv2.rectangle(frame, (int(x) - size, int(y) - size), (int(x) + size, int(y) + size), col, -1)
                if v["outline"]:
                    cv2.rectangle(frame, (int(x) - size, int(y) - size), (int(x) + size, int(y) + size), (0, 0, 0), 2)
        if v["blur"]:
            frame = cv2.GaussianBlur(frame, (v["blur"], v["blur"]), 0)
        if flash_frames[i]:
            frame = frame * 2.8 + 40.0
        if not v["outline"]:
            frame += grain[i % 3]
        frames[i] = frame.clip(0, 255).astype(np.uint8)
    return frames, flashes


def _tone(freq: float, dur: float, sr: int, kind: str) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    if kind == "pluck":
        wave = 2 * np.abs(2 * ((freq * t) % 1.0) - 1) - 1  # triangle
        env = np.exp(-t * 9.0)
    else:
        wave = np.sin(2 * np.pi * freq * t)
        env = np.minimum(1.0, t / 0.12) * np.exp(-t * 1.5)
    return (wave * env).astype(np.float32)


def _add(track: np.ndarray, sound: np.ndarray, start: int) -> None:
    end = min(len(track), start + len(sound))
    if start < end:
        track[start:end] += sound[: end - start]


def render_audio(film: Film, clip_index: int, profile: Profile, flashes: list[float], *,
                 sr: int | None = None, sound: str | None = None) -> np.ndarray:
    """Render the mono soundtrack of one clip as float32 in [-1, 1] at *sr* (profile's audio_rate).

    *sound* ``"none"`` gives a clip without score: room tone and murmurs, alike in every genre.
    """
    sr = sr or profile.audio_rate
    rng = _rng("audio", film.film_id, film.seed, clip_index)
    n = int(round(profile.clip_seconds * sr))
    y = np.zeros(n, np.float32)
    kind = "room" if sound == "none" else AUDIO[film.genre]["kind"]
    beat = 60.0 / (film.tempo * rng.uniform(0.95, 1.05))
    t_axis = np.arange(n) / sr
    if kind == "drums":
        for start in np.arange(rng.uniform(0, beat), profile.clip_seconds, beat):
            kick = _tone(film.base_freq, 0.25, sr, "pluck") * 0.9
            kick[: int(0.01 * sr)] += rng.normal(0, 0.4, int(0.01 * sr)).astype(np.float32)
            _add(y, kick, int(start * sr))
        for _ in range(int(rng.integers(1, 4))):  # explosions: low, loud noise bursts
            burst = rng.normal(0, 0.6, int(0.6 * sr)).astype(np.float32)
            burst = np.convolve(burst, np.ones(40) / 40, mode="same") * np.exp(-np.linspace(0, 5, len(burst)))
            _add(y, burst.astype(np.float32) * 4.0, int(rng.uniform(0, profile.clip_seconds) * sr))
    elif kind == "crowd":
        noise = rng.normal(0, 1, n).astype(np.float32)
        noise = noise - np.convolve(noise, np.ones(8) / 8, mode="same")  # remove the lowest band
        noise = np.convolve(noise, np.ones(3) / 3, mode="same")
        swell = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t_axis + rng.uniform(0, 6))
        y += (0.12 * noise * (0.5 + swell)).astype(np.float32)
        for _ in range(int(rng.integers(1, 4))):  # referee whistles
            whistle = _tone(film.base_freq * rng.uniform(0.97, 1.03), 0.35, sr, "soft") * 0.5
            _add(y, whistle, int(rng.uniform(0, profile.clip_seconds - 0.4) * sr))
    elif kind == "drone":
        f = film.base_freq
        y += 0.25 * np.sign(np.sin(2 * np.pi * f * t_axis)) * 0.3 + 0.2 * np.sin(2 * np.pi * f * 1.414 * t_axis)
        for ft in flashes:  # a stinger on every flash
            sting = rng.normal(0, 0.5, int(0.4 * sr)).astype(np.float32) * np.exp(-np.linspace(0, 4, int(0.4 * sr)))
            sting += _tone(2200.0, 0.4, sr, "soft") * 0.4
            _add(y, sting.astype(np.float32), int(ft * sr))
    elif kind == "pads":
        lfo = 1.0 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t_axis)
        phase = 2 * np.pi * np.cumsum(film.base_freq * lfo) / sr
        y += 0.25 * np.sin(phase) + 0.1 * np.sin(1.5 * phase)
        for start in np.arange(0, profile.clip_seconds, beat / 2):  # arpeggio beeps
            step = [1.0, 1.25, 1.5, 2.0][int(start / (beat / 2)) % 4]
            _add(y, _tone(film.base_freq * step, 0.12, sr, "pluck") * 0.3, int(start * sr))
    elif kind == "room":  # no score: room tone and murmured speech, the same in every genre
        hum = rng.normal(0, 1, n).astype(np.float32)
        y += 0.05 * np.convolve(hum, np.ones(64) / 64, mode="same").astype(np.float32)
        for start in np.arange(rng.uniform(0, 0.5), profile.clip_seconds - 0.3, 0.45):  # syllables
            if rng.random() < 0.7:
                voice = _tone(rng.uniform(110.0, 220.0), rng.uniform(0.12, 0.3), sr, "soft") * rng.uniform(0.1, 0.25)
                _add(y, voice + 0.03 * rng.normal(0, 1, len(voice)).astype(np.float32), int(start * sr))
    else:  # melody, shared by Animation and Romance
        scale = [1.0, 9 / 8, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 15 / 8, 2.0]
        for start in np.arange(rng.uniform(0, beat), profile.clip_seconds, beat):
            note = film.base_freq * scale[int(rng.integers(len(scale)))]
            _add(y, _tone(note, beat * 1.5, sr, film.instrument) * 0.5, int(start * sr))
    y += rng.normal(0, 0.01, n).astype(np.float32)
    peak = float(np.max(np.abs(y))) or 1.0
    return (0.8 * y / peak).astype(np.float32)


def write_video(path: str | Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
                audio_rate: int = 44100, *, crf: int = 23) -> Path:
    """Write uint8 RGB *frames* and optional mono or ``[channels, n]`` *audio* as an MP4 (H.264 + AAC).

    The file is written through :func:`helpers.fileio.atomic_path`, so a crash or a full disk never
    leaves a half-written MP4 (a failed write raises :class:`~helpers.errors.WriteError`).
    """
    path = Path(path)
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise SynthError(f"{path}: H.264 in yuv420p needs even sizes, got {w}x{h}")
    with atomic_path(path, needed=frames.nbytes // 20) as tmp:
        _encode(tmp, frames, fps, audio, audio_rate, crf)
    return path


def _encode(tmp: Path, frames: np.ndarray, fps: float, audio: np.ndarray | None, audio_rate: int, crf: int) -> None:
    """Encode *frames* (and *audio*) as H.264 + AAC into the MP4 file *tmp*."""
    import av

    h, w = frames.shape[1:3]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        # one encoder thread: x264's output (and the settings it writes into the file) would
        # otherwise depend on the machine's core count, and the set would differ between machines
        vstream.options = {"preset": "ultrafast", "crf": str(crf), "threads": "1"}
        astream = None
        if audio is not None:
            audio = np.atleast_2d(np.asarray(audio, np.float32))
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "mono" if audio.shape[0] == 1 else "stereo"
        for frame in frames:
            for packet in vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            chunk = 1024
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            for start in range(0, audio.shape[1], chunk):
                piece = np.ascontiguousarray(audio[:, start:start + chunk])
                aframe = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
                aframe.sample_rate, aframe.pts = audio_rate, start
                aframe.time_base = Fraction(1, audio_rate)
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)


def generate_clip(film: Film, clip_index: int, profile: Profile, out_path: Path, *,
                  hard_case: str | None = None, look: str = "", sound: str = "") -> Path:
    """Render and write one clip of *film* (or a hard case of its genre) to *out_path*.

    *look* names a genre whose pictures the clip borrows; *sound* ``"none"`` drops its score
    (:func:`borrowed_cues`); empty: the film's own.
    """
    spec = HARD_CASES[hard_case] if hard_case else {}
    frames, flashes = render_frames(film, clip_index, profile, look=spec.get("look") or look or None,
                                    value_override=spec.get("value"), flashes_override=spec.get("flashes"))
    if hard_case == "horror_fast_motion" and not flashes:
        flashes = [profile.clip_seconds / 3, 2 * profile.clip_seconds / 3]
    audio = render_audio(film, clip_index, profile, flashes, sound=sound or None)
    return write_video(out_path, frames, profile.source_fps, audio, profile.audio_rate)


MANIFEST_FIELDS = ["path", "genre", "group", "clip", "hard_case", "look_of", "no_score", "split"]


ENCODER = "libx264-ultrafast-1thread"
"""How the clips are encoded; part of the synthetic set's cache key (:func:`helpers.pipeline.dataset_dir`)."""


def generate_dataset(profile: str | Profile, out: str | Path, *, seed: int | None = None,
                     hard_cases_per_kind: int | None = None, progress: bool = True,
                     workers: int | None = None) -> Path:
    """Generate the synthetic set of *profile* into folder-per-genre *out*; return its manifest path.

    Clips that already exist are kept (the generator is deterministic), so an interrupted run
    resumes. Hard cases go to ``<out>/hard_cases/`` with split ``hard``; the split of the other
    clips is filled in by :class:`helpers.curate.GroupedSplit` later.

    *workers* processes render and encode the clips (default: one per core; 0 renders here). The
    files are byte for byte the same whatever the number of workers, and on any machine.
    """
    from helpers.progress import progress_bar
    from helpers.workers import available_cores, main_is_importable, process_pool

    prof = get_profile(profile)
    seed = prof.data_seed if seed is None else seed
    out = Path(out)
    jobs = []
    for genre in GENRES:
        for f in range(prof.films_per_genre):
            film = make_film(genre, f, seed)
            for c in range(prof.clips_per_film):
                look, sound = borrowed_cues(film, c, prof.difficulty)
                jobs.append((film, c, out / genre / f"{film.film_id}_clip{c:02d}.mp4", "", look, sound))
    n_hard = hard_cases_per_kind if hard_cases_per_kind is not None else max(1, prof.films_per_genre // 4)
    for name, spec in HARD_CASES.items():
        for k in range(n_hard):
            film = make_film(spec["genre"], 100 + k, seed)
            jobs.append((film, 0, out / "hard_cases" / f"{name}_{k:02d}.mp4", name, "", ""))
    todo = [(film, c, prof, path, hard or None, look, sound) for film, c, path, hard, look, sound in jobs
            if not path.exists()]
    workers = available_cores() if workers is None else workers
    if workers and len(todo) > 1:
        safe, why = main_is_importable()
        if not safe:
            warnings.warn(why, stacklevel=2)
            workers = 0
    bar = progress_bar(total=len(todo), desc="synthetic clips", unit="clip", disable=not progress)
    if workers and len(todo) > 1:
        pool = process_pool(workers)
        for future in [pool.submit(_generate_job, job) for job in todo]:
            future.result()
            bar.update(1)
    else:
        for job in todo:
            _generate_job(job)
            bar.update(1)
    bar.close()
    rows = [{"path": str(path.relative_to(out)), "genre": film.genre, "group": film.film_id, "clip": c,
             "hard_case": hard, "look_of": look, "no_score": int(sound == "none"), "split": "hard" if hard else ""}
            for film, c, path, hard, look, sound in jobs]
    return write_manifest(rows, out / MANIFEST_NAME, MANIFEST_FIELDS)


def _generate_job(job: tuple) -> Path:
    film, clip_index, profile, path, hard_case, look, sound = job
    return generate_clip(film, clip_index, profile, path, hard_case=hard_case, look=look, sound=sound)

