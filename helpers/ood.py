"""How far a clip lies from the clips a model was trained on: the out-of-distribution score.

A model answers one of six genres for any input, however unlike its training clips. This module
measures how unlike. Each window of a clip becomes one vector per kind of input the model reads:
``video``, the mean InceptionV3 pool feature over the window's real frames; ``picture``, the mean
of a few cheap statistics of each frame's 32x32 thumbnail (:func:`picture_statistics`: brightness,
contrast and saturation per colour, edges, flat areas, motion, grey-level quantiles); and
``audio``, its mean log-mel vector.

Why ``picture`` beside ``video``: the backbone's features place real footage among the synthetic
clips (measured with the randomly initialised backbone of the offline profiles: a street scene,
a cyclist, a talking head and an animated film all lay as close to the training clips as these
lie to each other), while plain picture statistics keep them apart: a real scene has more
contrast, texture and varied saturation than any rendered clip (data/README.md gives the numbers). Each
statistic is measured in units of its spread over the training clips (at least
:data:`PICTURE_SCALE_FLOOR`, so a statistic that never varies in training cannot make a clip
unfamiliar by a hair). The training clips (one window each, as in training) fix a PCA space of at most
:data:`N_COMPONENTS` dimensions per kind, plus one more coordinate: the vector's distance to that
space (what the components leave out), so a clip that differs in directions the training clips do
not vary in is not projected onto them and called familiar. A clip's *distance* is the mean
Euclidean distance from its vectors to their :data:`K_NEIGHBOURS` nearest training clips, in those
coordinates.

The yardstick is the training clips' own distances to their nearest neighbours, each taken among
the training clips of *other* groups (films): a new clip comes from a film the model never saw,
so a training clip's neighbours from its own film would make the yardstick too short. The score
is the clip's distance divided by the 99th percentile of those distances (:data:`QUANTILE`): at
or below 1 the clip lies as close to the training clips as they lie to each other, above 1 it is
farther than 99% of them (*not familiar*: do not trust the label). A clip's score is the larger
of its video and audio scores; each is the average over its windows, weighted by their real
frames as the probabilities are.

Everything is kept in ``ood.npz`` in the model folder (plain arrays, no pickles), written by
:func:`helpers.pipeline.ensure_models` from the run's cached features.

>>> rng = np.random.default_rng(0)
>>> ref = fit_reference({"video": rng.normal(size=(40, 8))}, groups=np.arange(40) // 2)
>>> near, far = ref.distances({"video": np.stack([np.zeros(8), np.full(8, 10.0)])})["video"] / ref.thresholds["video"]
>>> bool(near < 1 < far)  # a clip like the training ones, and one far from all of them
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OOD_FILE = "ood.npz"
"""The file in a model folder that describes its training clips for the out-of-distribution score."""

K_NEIGHBOURS = 5
N_COMPONENTS = 32
QUANTILE = 0.99
PICTURE_SCALE_FLOOR = 0.02
"""The smallest spread a picture statistic is measured in (its values lie in 0..1)."""
STANDARDISED = ("picture",)
"""Spaces whose dimensions are measured in units of their spread over the training clips."""
FORMAT = 3
"""The layout of ``ood.npz``; a file of another layout is treated as missing (and rewritten by the series)."""


PICTURE_STATISTICS = ("mean red", "mean green", "mean blue", "contrast red", "contrast green", "contrast blue",
                      "saturation", "saturation spread", "edges", "edge spread", "flat share", "texture",
                      "motion", "grey 2%", "grey 25%", "grey median", "grey 75%", "grey 98%")
"""The names of the columns of :func:`picture_statistics`."""


def picture_statistics(thumbs: np.ndarray) -> np.ndarray:
    """Cheap statistics of each frame's thumbnail ``[n, h, w, 3]`` uint8: ``[n, 18]`` float32 in 0..1.

    Per colour the mean and the spread over the picture (contrast); the mean and spread of the
    saturation; the mean and spread of the grey-level steps between neighbouring pixels (edges),
    the share of nearly flat steps, the mean Laplacian (texture); the mean change from the previous
    frame (motion, 0 for the first); five quantiles of the grey level. Names:
    :data:`PICTURE_STATISTICS`.

    >>> picture_statistics(np.full((2, 32, 32, 3), 255, np.uint8))[0, :3]
    array([1., 1., 1.], dtype=float32)
    """
    x = np.asarray(thumbs, np.float32) / 255.0
    n = len(x)
    grey = x.mean(-1)
    top, bottom = x.max(-1), x.min(-1)
    saturation = (top - bottom) / np.maximum(top, 1e-3)
    steps = np.concatenate([np.abs(np.diff(grey, axis=2)).reshape(n, -1), np.abs(np.diff(grey, axis=1)).reshape(n, -1)], 1)
    laplacian = np.abs(4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1] - grey[:, 1:-1, :-2]
                       - grey[:, 1:-1, 2:]).reshape(n, -1)
    motion = np.concatenate([np.zeros((min(n, 1),) + grey.shape[1:], np.float32), np.abs(np.diff(grey, axis=0))])
    columns = [x.mean((1, 2)), x.std((1, 2)), saturation.mean((1, 2))[:, None], saturation.std((1, 2))[:, None],
               steps.mean(1)[:, None], steps.std(1)[:, None], (steps < 0.01).mean(1)[:, None],
               laplacian.mean(1)[:, None], motion.reshape(n, -1).mean(1)[:, None],
               np.quantile(grey.reshape(n, -1), [0.02, 0.25, 0.5, 0.75, 0.98], axis=1).T]
    return np.concatenate(columns, 1).astype(np.float32)


def window_means(features: np.ndarray, seq_len: int, *, starts: list[int] | None = None) -> np.ndarray:
    """Mean of per-frame *features* ``[n, D]`` over each window's real frames ``[w, D]``.

    Windows as the model gets them (:func:`helpers.frames.make_sequences`): one window
    (``policy="pad"``) when *starts* is None, as in training, else the sliding windows at *starts*.
    """
    from helpers.frames import make_sequences

    policy = "pad" if starts is None else "sliding"
    windows, mask = make_sequences(np.asarray(features, np.float32), seq_len, policy=policy, starts=starts)
    return (windows * mask[..., None]).sum(1) / np.maximum(1, mask.sum(1, keepdims=True))


def spaces_of(method: str) -> tuple[str, ...]:
    """The kinds of input the score describes for *method*: ``video`` and ``picture`` for any model
    that looks at frames (pool features, softmax features or thumbnails), ``audio`` for one that listens."""
    from helpers.models import get_method

    inputs = set(get_method(method).inputs)
    sees = bool(inputs & {"video", "thumbs"})
    return tuple(s for s, uses in (("video", sees), ("picture", sees), ("audio", "audio" in inputs)) if uses)


@dataclass
class OODReference:
    """The training clips of one model, per kind of input, in a reduced space.

    Per space: ``mean`` and ``components`` of the PCA, the training clips' coordinates ``train``,
    ``thresholds[space]``, the :data:`QUANTILE` of their leave-one-group-out neighbour distances, and
    ``scale[space]``, the unit of each dimension (ones, except for :data:`STANDARDISED` spaces).
    ``about`` holds what the training data was (``data``: a sentence; ``n_train``).
    """

    mean: dict[str, np.ndarray]
    components: dict[str, np.ndarray]
    train: dict[str, np.ndarray]
    thresholds: dict[str, float]
    k: int = K_NEIGHBOURS
    about: dict = field(default_factory=dict)
    scale: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def spaces(self) -> tuple[str, ...]:
        """The kinds of input described (``video``, ``audio``)."""
        return tuple(self.train)

    def project(self, space: str, x: np.ndarray) -> np.ndarray:
        """Vectors ``[n, D]`` of *space* in its PCA coordinates and their distance to the PCA space ``[n, c + 1]``."""
        return _coordinates(x, self.mean[space], self.components[space], self.scale.get(space))

    def distances(self, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Mean distance of each vector to its ``k`` nearest training clips, per space in *vectors*."""
        from sklearn.neighbors import NearestNeighbors

        out = {}
        for space, x in vectors.items():
            train = self.train[space]
            nn = NearestNeighbors(n_neighbors=min(self.k, len(train))).fit(train)
            out[space] = nn.kneighbors(self.project(space, x))[0].mean(1)
        return out

    def save(self, folder: str | Path) -> Path:
        """Write ``ood.npz`` into *folder* atomically (:func:`helpers.fileio.save_npz`); return its path."""
        folder = Path(folder)
        arrays = {"format": np.array(FORMAT), "k": np.array(self.k), "spaces": np.array(self.spaces),
                  "about_data": np.array(str(self.about.get("data", ""))),
                  "about_n_train": np.array(int(self.about.get("n_train", 0)))}
        for s in self.spaces:
            arrays |= {f"{s}_mean": self.mean[s], f"{s}_components": self.components[s],
                       f"{s}_train": self.train[s], f"{s}_threshold": np.array(self.thresholds[s]),
                       f"{s}_scale": np.asarray(self.scale.get(s, np.ones_like(self.mean[s])))}
        from helpers.fileio import save_npz

        return save_npz(folder / OOD_FILE, **arrays)


def load_reference(folder: str | Path) -> OODReference | None:
    """The ``ood.npz`` of a model folder, or None when the folder has none (saved before it existed)."""
    file = Path(folder) / OOD_FILE
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as z:
        if "format" not in z.files or int(z["format"]) != FORMAT:
            return None  # written by an earlier version: treated as missing
        spaces = [str(s) for s in z["spaces"]]
        return OODReference({s: z[f"{s}_mean"] for s in spaces}, {s: z[f"{s}_components"] for s in spaces},
                            {s: z[f"{s}_train"] for s in spaces}, {s: float(z[f"{s}_threshold"]) for s in spaces},
                            int(z["k"]), {"data": str(z["about_data"]), "n_train": int(z["about_n_train"])},
                            {s: z[f"{s}_scale"] for s in spaces})


def _coordinates(x: np.ndarray, mean: np.ndarray, components: np.ndarray, scale: np.ndarray | None = None
                 ) -> np.ndarray:
    """PCA coordinates of the rows of *x* (in units of *scale*), and as a last column each row's
    distance to the PCA space."""
    centred = np.asarray(x, np.float64) - mean
    if scale is not None:
        centred = centred / scale
    coords = centred @ components.T
    off = np.linalg.norm(centred - coords @ components, axis=1, keepdims=True)
    return np.hstack([coords, off])


def neighbour_distances(z: np.ndarray, groups, k: int = K_NEIGHBOURS) -> np.ndarray:
    """Each row's mean distance to its *k* nearest rows of other *groups* (its own group left out)."""
    from sklearn.neighbors import NearestNeighbors

    groups = np.asarray(groups)
    largest = int(np.unique(groups, return_counts=True)[1].max())
    dist, idx = NearestNeighbors(n_neighbors=min(len(z), k + largest)).fit(z).kneighbors(z)
    out = np.empty(len(z))
    for i in range(len(z)):
        others = dist[i][groups[idx[i]] != groups[i]][:k]
        out[i] = others.mean() if len(others) else np.nan
    return out


def fit_reference(vectors: dict[str, np.ndarray], groups=None, *, k: int = K_NEIGHBOURS,
                  n_components: int = N_COMPONENTS, about: dict | None = None) -> OODReference:
    """Describe training clips: one vector per clip ``[n, D]`` per space, and each clip's group.

    Without *groups* each clip is its own group (plain leave-one-out).

    Raises
    ------
    ValueError
        With fewer than two groups (no clip would have a neighbour from another group).
    """
    from sklearn.decomposition import PCA

    n = len(next(iter(vectors.values())))
    groups = np.arange(n) if groups is None or not any(str(g) for g in groups) else np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise ValueError(f"the out-of-distribution score needs training clips from two groups at least, got {n} "
                         f"clips of {len(np.unique(groups))} group")
    mean, components, train, thresholds, scale = {}, {}, {}, {}, {}
    for space, x in vectors.items():
        x = np.asarray(x, np.float64)
        scale[space] = (np.maximum(x.std(0), PICTURE_SCALE_FLOOR) if space in STANDARDISED
                        else np.ones(x.shape[1]))
        pca = PCA(n_components=min(n_components, n - 1, x.shape[1]), random_state=0).fit(x / scale[space])
        mean[space], components[space] = pca.mean_ * scale[space], pca.components_
        train[space] = _coordinates(x, mean[space], components[space], scale[space])
        loo = neighbour_distances(train[space], groups, k)
        thresholds[space] = float(max(np.nanquantile(loo, QUANTILE), 1e-12))
    return OODReference(mean, components, train, thresholds, k, {"n_train": n, **(about or {})}, scale)


def clip_vectors(clips, spaces, seq_len: int) -> dict[str, np.ndarray]:
    """One vector per clip of a :class:`helpers.features.ClipSet` per space, from its one window of
    *seq_len* steps (as in training)."""
    per_clip = {"video": clips.pool, "audio": clips.audio,
                "picture": [picture_statistics(t) for t in clips.thumbs] if "picture" in spaces else None}
    return {s: np.concatenate([window_means(f, seq_len) for f in per_clip[s]]) for s in spaces}


def reference_from_clips(clips, method: str, seq_len: int, *, data: str = "") -> OODReference:
    """The reference of a model of *method* trained on *clips* (the training split's ClipSet)."""
    groups = [m.get("group", "") for m in clips.meta]
    return fit_reference(clip_vectors(clips, spaces_of(method), seq_len), groups, about={"data": data})


def clip_scores(reference: OODReference, clips, seq_len: int) -> np.ndarray:
    """The out-of-distribution score of every clip of a ClipSet (the larger of its spaces' scores),
    e.g. of the test split, whose films the model never saw."""
    dist = reference.distances(clip_vectors(clips, reference.spaces, seq_len))
    return np.max([dist[s] / reference.thresholds[s] for s in reference.spaces], axis=0)


@dataclass
class Familiarity:
    """The out-of-distribution score of one clip: overall (the largest), per space, and its verdict."""

    score: float
    parts: dict[str, float]

    @property
    def familiar(self) -> bool:
        """At or below 1: the clip lies among the training clips."""
        return self.score <= 1.0

    def sentence(self) -> str:
        """One line for people: the score, what 1 means, and whether to trust the label."""
        largest = max(self.parts, key=self.parts.get) if self.parts else ""
        others = ", ".join(f"{s} {v:.2f}" for s, v in self.parts.items() if s != largest)
        verdict = ("familiar, as close to the training clips as they are to each other" if self.familiar
                   else "unlike anything in training: do not trust this label")
        source = f", from the {largest} part" + (f" (the others: {others})" if others else "") if largest else ""
        return f"out-of-distribution score {self.score:.2f}{source}, where above 1 is unfamiliar: {verdict}"


def familiarity(reference: OODReference, vectors: dict[str, np.ndarray], weights: np.ndarray) -> Familiarity:
    """Score one clip from its window vectors per space (those of *reference* it has) and the windows'
    *weights* (their real frames)."""
    dist = reference.distances({s: v for s, v in vectors.items() if s in reference.spaces})
    w = np.asarray(weights, np.float64) / np.sum(weights)
    parts = {s: round(float((d * w).sum() / reference.thresholds[s]), 4) for s, d in dist.items()}
    return Familiarity(max(parts.values()), parts)
