"""What the backbone's weights buy, and what a preprocessing slip costs (notebook 04).

Three ways to get per-frame features, compared on one split with the same head and the same
``lstm_pool`` recipe:

* ``random``: InceptionV3 with seeded random weights, frozen (what an offline run has);
* ``imagenet_frozen``: ImageNet weights, frozen (the paper's bottlenecks);
* ``imagenet_finetuned``: ImageNet weights with the blocks from ``mixed9`` on retrained on the
  training frames (:func:`helpers.backbone.fine_tune_top_blocks`).

:func:`plan_rows` says which of them a run can compute (the ImageNet rows need the weights file) and,
for the others, how to get what they need. :class:`WashedBackbone` reproduces a common preprocessing
slip: frames scaled to [0, 1] before a network that expects [-1, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.config import Profile, get_profile, settings_key

log = logging.getLogger(__name__)

ROWS: dict[str, str] = {
    "random": "random weights, frozen",
    "imagenet_frozen": "ImageNet weights, frozen",
    "imagenet_finetuned": "ImageNet weights, fine-tuned from mixed9",
}
"""The rows of the comparison, in order, with the words the notebook prints."""


@dataclass(frozen=True)
class RowPlan:
    """One row of the comparison: whether this run can compute it, and if not, why not."""

    name: str
    label: str
    runnable: bool
    why_not: str = ""


def plan_rows(status) -> list[RowPlan]:
    """The rows a run with backbone weights *status* (:class:`helpers.weights.WeightsStatus`) can compute.

    The random row always runs. The ImageNet rows need pretrained weights: without them each says
    where to put the file.
    """
    from helpers.weights import WEIGHTS_FILE, WEIGHTS_URL, keras_cache_path

    missing = (f"needs ImageNet weights: download {WEIGHTS_URL} to {keras_cache_path()} "
               f"(Keras' cache) or set VGENRE_WEIGHTS=/path/to/{WEIGHTS_FILE}, then rerun this notebook")
    plans = []
    for name, label in ROWS.items():
        ok = name == "random" or status.pretrained
        plans.append(RowPlan(name, label, ok, "" if ok else missing))
    return plans


def random_backbone(profile: str | Profile, like):
    """The seeded random InceptionV3 of *profile*, the same size and precision as backbone *like*.

    When *like* is already the random one it is returned as it is (no second network in memory).
    """
    from helpers.backbone import Backbone
    from helpers.weights import random_status

    prof = get_profile(profile)
    status = random_status(prof.name)
    if like.status.weights_id == status.weights_id:
        return like
    return Backbone(like.input_size, status, like.precision)


def wash(frames: np.ndarray) -> np.ndarray:
    """uint8 frames as the network sees them when they were scaled to [0, 1] instead of [-1, 1].

    The extractor's first layer computes ``u / 127.5 - 1``; for it to output ``x / 255`` (the
    slip) its input must be ``u = 127.5 + x / 2``: every pixel moved to the upper half of the range,
    a washed-out, half-contrast picture. Rounded to uint8 (an error of at most half a level).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"wash takes uint8 RGB frames (0-255), got {frames.dtype}")
    return np.round(127.5 + frames.astype(np.float32) / 2).astype(np.uint8)


class WashedBackbone:
    """*backbone* with the preprocessing slip of :func:`wash` in front (features cached apart)."""

    def __init__(self, backbone):
        self.backbone = backbone
        self.input_size = backbone.input_size
        self.status = backbone.status

    @property
    def key(self) -> dict:
        return {**self.backbone.key, "preprocessing": "scaled to [0, 1], network expects [-1, 1]"}

    def pool_features(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        return self.backbone.pool_features(wash(frames), batch_size=batch_size)


def clips_with(ctx, backbone, *, splits: tuple[str, ...] | None = None, progress: bool = False):
    """The run's clips (only those of *splits*, if given) with features made by *backbone*.

    Feature files are cached under the run's data folder by *backbone*'s key, as the series' own are.
    """
    from helpers.features import cache_dir, extract_features, load_clips
    from helpers.manifest import read_manifest
    from helpers.pipeline import ensure_dataset

    rows = read_manifest(ensure_dataset(ctx, progress=False))
    if splits is not None:
        rows = [r for r in rows if r.get("split") in splits]
    records = extract_features(rows, backbone, ctx.profile, root=cache_dir(ctx.data_dir), progress=progress)
    return load_clips(rows, records)


def training_frames(clips, profile: str | Profile, input_size: int, *, every: int = 4,
                    limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames (one in *every*) of the training clips and their genres, for fine-tuning.

    At most *limit* frames, taken evenly over the clips.
    """
    from helpers.features import decode_clip

    prof = get_profile(profile)
    train = clips.split("train")
    frames, labels = [], []
    for m, y in zip(train.meta, train.y):
        f = decode_clip(Path(m["abspath"]), prof, input_size, audio_optional=True).frames[::every]
        frames.append(f)
        labels.append(np.full(len(f), y))
    x, y = np.concatenate(frames), np.concatenate(labels)
    if limit is not None and len(x) > limit:
        keep = np.linspace(0, len(x) - 1, limit).round().astype(int)
        x, y = x[keep], y[keep]
    return x, y


@dataclass
class RowResult:
    """What one way of making features gives on the test split."""

    name: str
    frame_acc: float
    clip_correct: np.ndarray  # lstm_pool right or wrong per test clip

    @property
    def clip_acc(self) -> float:
        return float(self.clip_correct.mean())


def frame_accuracy(head, clips) -> float:
    """The share of the test clips' frames the retrained *head* labels right."""
    from helpers.course.inceptionv3_transfer_learning import frame_examples
    from helpers.features import softmax_features

    x, y = frame_examples(clips.split("test"))
    probs = softmax_features(head, x)
    return float((probs.argmax(1) == y).mean())


def lstm_correct(model_dir, clips, seq_len: int) -> np.ndarray:
    """Right or wrong per test clip for the model in *model_dir* on *clips*' features."""
    from helpers.features import sequence_inputs
    from helpers.train import load_model_dir

    test = clips.split("test")
    return load_model_dir(model_dir).predict(sequence_inputs(test, seq_len)).argmax(1) == test.y


def train_row(clips, profile: str | Profile, out_dir: str | Path, *, seed: int = 0):
    """The head and ``lstm_pool`` trained on *clips*' features as the series trains its own.

    Returns ``(head, lstm_dir)``; both are written under *out_dir*.
    """
    from helpers.backbone import train_softmax_head
    from helpers.course.inceptionv3_transfer_learning import frame_examples
    from helpers.features import sequence_inputs
    from helpers.train import train_model

    prof = get_profile(profile)
    out_dir = Path(out_dir)
    train, val = clips.split("train"), clips.split("val")
    (x_train, y_train), (x_val, y_val) = frame_examples(train), frame_examples(val)
    head, _ = train_softmax_head(x_train, y_train, x_val, y_val, out_dir / "head", steps=prof.head_steps,
                                 checkpoint_every=prof.head_checkpoint_every, batch_size=prof.head_batch, seed=seed)
    lstm_dir = train_model("lstm_pool", (sequence_inputs(train, prof.seq_len), train.y),
                           (sequence_inputs(val, prof.seq_len), val.y), out_dir / "lstm_pool", profile=prof, seed=seed)
    return head, lstm_dir


def film_neighbours(x: np.ndarray, films: np.ndarray, genres: np.ndarray, clips: np.ndarray, *, k: int = 10) -> dict:
    """How much the *k* nearest neighbours of each frame (rows of *x*) come from its film's *other* clips.

    Frames of the frame's own clip are left out (neighbouring frames of one shot are alike whatever
    the film): the question is whether a frame finds its *sister clip*. Returns the share of the
    remaining neighbours from the same film, from other films of the same genre, and what the
    same-film share would be if a genre's clips were mixed at random between its films: the ratio of
    the first to the last says how strongly frames clump by film beyond their genre. Euclidean
    distance on *x* as given.
    """
    from sklearn.neighbors import NearestNeighbors

    films, genres, clips = np.asarray(films), np.asarray(genres), np.asarray(clips)
    largest_clip = int(np.unique(clips, return_counts=True)[1].max())
    index = NearestNeighbors(n_neighbors=min(len(x), k + largest_clip)).fit(x).kneighbors(x, return_distance=False)
    others = np.array([row[clips[row] != clips[i]][:k] for i, row in enumerate(index)])  # k per frame
    same_film = films[others] == films[:, None]
    same_genre = genres[others] == genres[:, None]
    # a neighbour from another clip of the same genre is from the same film with probability
    # (frames of the film outside the clip) / (frames of the genre outside the clip)
    size = lambda labels: dict(zip(*np.unique(labels, return_counts=True)))
    n_film, n_genre, n_clip = size(films), size(genres), size(clips)
    expected = np.array([(n_film[f] - n_clip[c]) / max(1, n_genre[g] - n_clip[c]) for f, g, c in zip(films, genres, clips)])
    return {"k": k, "same_film": float(same_film.mean()), "same_genre_other_film": float((same_genre & ~same_film).mean()),
            "same_film_if_mixed": float((expected * same_genre.mean(1)).mean())}


def finetune_recipe(profile: str | Profile) -> dict:
    """The fine-tuning settings the notebook uses for *profile* (short on CPU-sized profiles)."""
    prof = get_profile(profile)
    return {"blocks_from": "mixed9", "epochs": 1 if prof.name != "full" else 3, "every": 4,
            "limit": 512 if prof.name == "smoke" else 4096}

