"""Synthetic clips, curation of folder trees and datasets, the grouped split, `vgenre validate`."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from conftest import write_clip
from helpers.config import GENRES, get_profile
from helpers.curate import GroupedSplit, assign_split, manifest_from_dataset, manifest_from_tree, validate_paths
from helpers.manifest import MANIFEST_NAME, ManifestError, clip_path, read_manifest, write_manifest
from helpers.synth import HARD_CASES, make_film, render_audio, render_frames


def test_rendering_is_deterministic():
    prof = get_profile("smoke")
    a, fa = render_frames(make_film("Horror", 1, seed=3), 0, prof)
    b, fb = render_frames(make_film("Horror", 1, seed=3), 0, prof)
    assert np.array_equal(a, b) and fa == fb
    c, _ = render_frames(make_film("Horror", 1, seed=4), 0, prof)
    assert not np.array_equal(a, c)


def test_confusable_pairs_share_single_frame_brightness():
    prof = get_profile("smoke")
    # a typical single frame: the median frame brightness (Horror's flashes are rare, temporal events)
    mean = {g: np.mean([np.median(render_frames(make_film(g, k), 0, prof)[0].mean(axis=(1, 2, 3))) for k in range(4)])
            for g in GENRES}
    assert abs(mean["Horror"] - mean["ScienceFiction"]) < 12 and max(mean["Horror"], mean["ScienceFiction"]) < 70
    assert abs(mean["Action"] - mean["Sports"]) < 25
    assert mean["Animation"] > mean["Horror"] + 60


def test_audio_is_normalised_and_genre_specific():
    prof = get_profile("smoke")
    drone = render_audio(make_film("Horror", 0), 0, prof, [1.0])
    pads = render_audio(make_film("ScienceFiction", 0), 0, prof, [])
    assert drone.dtype == np.float32 and np.abs(drone).max() <= 0.81
    centroid = lambda y: (np.abs(np.fft.rfft(y)) ** 2 * np.arange(len(y) // 2 + 1)).sum() / (np.abs(np.fft.rfft(y)) ** 2).sum()
    assert centroid(pads) > centroid(drone)


def test_the_audio_cues_the_dataset_card_names():
    """data/README.md names, per genre, the cue its soundtrack leaves in notebook 03's measurements: Sports
    the highest centroid, Horror the fewest onsets, Science Fiction the most onsets and the steadiest loudness,
    Action's onsets near its 140-175 bpm. Measured as notebook 03 does, over several films per genre."""
    import librosa

    prof = get_profile("default")
    rows = []
    for genre in GENRES:
        for index in range(4):
            y = render_audio(make_film(genre, index), 0, prof, [2.0, 6.0] if genre == "Horror" else [], sr=22050)
            rms = librosa.feature.rms(y=y)[0]
            rows.append({"genre": genre, "centroid": float(librosa.feature.spectral_centroid(y=y, sr=22050).mean()),
                         "onsets": len(librosa.onset.onset_detect(y=y, sr=22050)) / (len(y) / 22050),
                         "spread": float(rms.std() / (rms.mean() + 1e-9))})
    import pandas as pd

    cues = pd.DataFrame(rows).groupby("genre").mean()
    assert cues.centroid.idxmax() == "Sports", cues.round(2)
    assert cues.onsets.idxmin() == "Horror", cues.round(2)
    assert cues.onsets.idxmax() == "ScienceFiction", cues.round(2)
    assert cues.spread.idxmin() == "ScienceFiction", cues.round(2)
    assert 140 / 60 - 0.3 <= cues.onsets["Action"] <= 175 / 60 + 0.3, cues.round(2)
    assert cues.centroid.rank(ascending=False)["ScienceFiction"] > 2  # mid-register pads, not "high"


def test_smoke_set_is_real_h264_aac(smoke_manifest):
    rows = read_manifest(smoke_manifest)
    prof = get_profile("smoke")
    assert len(rows) == prof.n_clips + 2 * max(1, prof.films_per_genre // 4)
    with av.open(str(Path(rows[0]["_root"]) / rows[0]["path"])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
    assert {r["genre"] for r in rows} == set(GENRES)
    assert {r["hard_case"] for r in rows if r["split"] == "hard"} == set(HARD_CASES)
    assert all(r["status"] == "ok" for r in rows)


def test_grouped_split_keeps_films_on_one_side(smoke_manifest):
    df = pd.DataFrame(read_manifest(smoke_manifest))
    df = df[df.split != "hard"]
    assert df.groupby("group").split.nunique().max() == 1
    for part in ("train", "val", "test"):
        assert set(df[df.split == part].genre) == set(GENRES)


def test_grouped_split_ratios_and_seed():
    y = np.repeat(np.arange(6), 40)
    groups = np.array([f"{g}_{i // 2}" for g, i in zip(y, np.tile(np.arange(40), 6))])
    tr, va, te = GroupedSplit(0.1, 0.1, random_state=0).split(np.zeros(len(y)), y, groups)
    assert len(tr) + len(va) + len(te) == len(y)
    assert set(groups[tr]).isdisjoint(groups[te]) and set(groups[va]).isdisjoint(groups[te])
    assert 0.05 < len(te) / len(y) < 0.15 and 0.05 < len(va) / len(y) < 0.15
    again = GroupedSplit(0.1, 0.1, random_state=0).split(np.zeros(len(y)), y, groups)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    other = GroupedSplit(0.1, 0.1, random_state=1).split(np.zeros(len(y)), y, groups)
    assert not np.array_equal(te, other[2])


def test_grouped_split_refuses_a_genre_with_one_group():
    y = np.array([0, 0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="only 1 group"):
        GroupedSplit(0.3, 0.0).split(np.zeros(6), y, np.array(["a", "a", "b", "c", "d", "e"]))
    y, groups = np.repeat(["Action", "Horror"], 6), np.array(list("aabbcc") + list("ddeeff"))
    with pytest.raises(ValueError, match="genre Horror has only 2 group"):
        GroupedSplit(0.1, 0.1).split(np.zeros(12), y, np.where(groups == "f", "e", groups))
    train, val, test = GroupedSplit(0.3, 0.0).split(np.zeros(12), y, np.where(groups == "f", "e", groups))
    assert len(val) == 0 and set(y[train]) == set(y[test]) == {"Action", "Horror"}


def _films(films_per_genre: dict[str, int], clips_per_film=2) -> tuple[np.ndarray, np.ndarray]:
    sizes = clips_per_film if callable(clips_per_film) else (lambda g, f: clips_per_film)
    rows = [(g, f"{g}_{f}") for g, n in films_per_genre.items() for f in range(n) for _ in range(sizes(g, f))]
    return np.array([g for g, _ in rows]), np.array([f for _, f in rows])


def _check_sides(y, groups, sides):
    """Every clip on exactly one side, no group on two sides; the fraction of each genre on each side."""
    assert sorted(np.concatenate(sides).tolist()) == list(range(len(y)))
    for a in range(3):
        for b in range(a + 1, 3):
            assert set(groups[sides[a]]).isdisjoint(groups[sides[b]])
    return {g: [float(np.sum(y[side] == g) / np.sum(y == g)) for side in sides] for g in np.unique(y)}


def test_grouped_split_with_a_genre_of_three_films_warns_and_covers_every_side():
    y, groups = _films({g: (3 if g == "Horror" else 12) for g in GENRES})
    with pytest.warns(UserWarning, match=r"genre Horror has 3 groups: 1 train / 1 val / 1 test \(33/33/33% of clips\) "
                                         r"instead of 80/10/10") as record:
        sides = GroupedSplit(0.1, 0.1, random_state=0).split(np.zeros(len(y)), y, groups)
    assert len(record) == 1 and "Action" not in str(record[0].message)
    fractions = _check_sides(y, groups, sides)
    assert all(set(y[side]) == set(GENRES) for side in sides)
    assert fractions["Action"] == pytest.approx([10 / 12, 1 / 12, 1 / 12])


def test_grouped_split_meets_the_request_with_many_groups():
    y, groups = _films({g: 20 for g in GENRES})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sides = GroupedSplit(0.1, 0.1, random_state=3).split(np.zeros(len(y)), y, groups)
    for g, got in _check_sides(y, groups, sides).items():
        assert np.allclose(got, [0.8, 0.1, 0.1], atol=0.05), (g, got)
    assert np.allclose([len(s) / len(y) for s in sides], [0.8, 0.1, 0.1], atol=0.05)


@pytest.mark.parametrize("seed", range(5))
def test_grouped_split_with_uneven_films_keeps_groups_whole(seed):
    rng = np.random.default_rng(seed)
    n_films = {g: int(rng.integers(8, 30)) for g in GENRES}
    sizes = {(g, f): int(rng.integers(1, 7)) for g, n in n_films.items() for f in range(n)}
    y, groups = _films(n_films, lambda g, f: sizes[g, f])
    groups[y == "Sports"] = np.where(groups[y == "Sports"] == "Sports_0", "Action_0", groups[y == "Sports"])  # shared film
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sides = GroupedSplit(0.1, 0.1, random_state=seed).split(np.zeros(len(y)), y, groups)
        again = GroupedSplit(0.1, 0.1, random_state=np.random.RandomState(seed)).split(np.zeros(len(y)), y, groups)
    _check_sides(y, groups, sides)
    assert all(np.array_equal(a, b) for a, b in zip(sides, again))
    assert all(set(y[side]) == set(GENRES) for side in sides)
    assert np.allclose([len(s) / len(y) for s in sides], [0.8, 0.1, 0.1], atol=0.05)


def test_manifest_round_trip_and_clip_paths(tmp_path):
    rows = [{"path": "Action/a.mp4", "genre": "Action"}, {"path": str(tmp_path / "elsewhere.mp4"), "genre": "Horror"}]
    written = write_manifest(rows, tmp_path / "set" / MANIFEST_NAME)
    assert written == tmp_path / "set" / MANIFEST_NAME and not list(written.parent.glob("*.tmp"))
    back = read_manifest(tmp_path / "set")
    assert [{k: r[k] for k in ("path", "genre")} for r in back] == rows
    assert clip_path(back[0]) == tmp_path / "set" / "Action" / "a.mp4" and clip_path(back[1]) == tmp_path / "elsewhere.mp4"


def test_unreadable_manifests_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "no_path.csv").write_text("file,genre\na.mp4,Action\n")
    for name, reason in (("missing.csv", "manifest not found"), ("empty.csv", "manifest is empty"),
                         ("no_path.csv", "manifest has no 'path' column")):
        with pytest.raises(ManifestError) as err:
            read_manifest(tmp_path / name)
        assert str(err.value).startswith(f"{tmp_path / name}: {reason}")


@pytest.fixture()
def bad_tree(tmp_path) -> Path:
    """A folder-per-genre tree with one good clip and every kind of bad input."""
    root = tmp_path / "tree"
    good = write_clip(root / "Action" / "good clip é.mp4")
    (root / "Action" / "empty.mp4").write_bytes(b"")
    (root / "Horror").mkdir(parents=True)
    (root / "Horror" / "notes.mp4").write_text("not a video at all")
    data = good.read_bytes()
    (root / "Horror" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    write_clip(root / "Romance" / "silent.mp4", audio_rate=None)
    (root / "NotAGenre").mkdir()
    write_clip(root / "NotAGenre" / "ignored.mp4")
    return root


def test_probe_reports_every_bad_input(bad_tree):
    rows = {Path(r["path"]).name: r for r in manifest_from_tree(bad_tree)}
    assert rows["good clip é.mp4"]["status"] == "ok" and rows["good clip é.mp4"]["has_audio"]
    assert rows["empty.mp4"]["status"] == "bad: file is empty (0 bytes)"
    assert rows["notes.mp4"]["status"].startswith("bad: not a readable media file")
    assert rows["truncated.mp4"]["status"].startswith("bad:")
    assert rows["silent.mp4"]["status"] == "ok" and not rows["silent.mp4"]["has_audio"]
    assert "ignored.mp4" not in rows


def test_unreadable_folder_is_recorded(bad_tree, monkeypatch):
    locked = bad_tree / "Sports"
    locked.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    rows = manifest_from_tree(bad_tree)
    assert any(r["path"] == str(locked) and "permission denied" in r["status"] for r in rows)


def test_assign_split_excludes_bad_files_and_keeps_hard_cases():
    rows = [{"path": f"{g}/{k}.mp4", "genre": g, "group": f"{g}{k // 2}", "status": "ok", "split": ""}
            for g in GENRES for k in range(6)]
    rows.append({"path": "Action/broken.mp4", "genre": "Action", "group": "x", "status": "bad: file is empty (0 bytes)",
                 "split": ""})
    rows.append({"path": "hard/h.mp4", "genre": "Horror", "group": "h", "status": "ok", "split": "hard"})
    assign_split(rows, random_state=0)
    assert rows[-2]["split"] == "excluded" and rows[-1]["split"] == "hard"
    assert {r["split"] for r in rows[:-2]} == {"train", "val", "test"}


def test_ucf101_curation_maps_classes_and_groups(tmp_path):
    root = tmp_path / "UCF101"
    for cls, g in (("Punch", 1), ("Punch", 2), ("Basketball", 1), ("ApplyEyeMakeup", 1)):
        write_clip(root / cls / f"v_{cls}_g{g:02d}_c01.avi".replace(".avi", ".mp4"))
    rows = manifest_from_dataset(root, "ucf101")
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["v_Punch_g01_c01.mp4"]["genre"] == "Action"
    assert by_name["v_Basketball_g01_c01.mp4"]["genre"] == "Sports"
    assert not any("ApplyEyeMakeup" in n for n in by_name)
    assert by_name["v_Punch_g01_c01.mp4"]["group"] != by_name["v_Punch_g02_c01.mp4"]["group"]


def test_validate_command_exit_codes(bad_tree, tmp_path):
    bad = subprocess.run([sys.executable, "-m", "helpers", "validate", str(bad_tree)], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr + bad.stdout
    assert "empty.mp4" in bad.stdout and "truncated.mp4" in bad.stdout and "notes.mp4" in bad.stdout
    good_dir = tmp_path / "only_good"
    write_clip(good_dir / "a.mp4")
    ok = subprocess.run([sys.executable, "-m", "helpers", "validate", str(good_dir)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = validate_paths([tmp_path / "nope.mp4"])
    assert missing[0]["status"] == "bad: file not found"


def test_hard_cases_borrow_the_look_that_fooled_the_paper():
    prof = get_profile("smoke")
    brightness = lambda frames: float(np.median(frames.mean(axis=(1, 2, 3))))
    horror = make_film("Horror", 100)
    fast, _ = render_frames(horror, 0, prof, look="Action")
    plain, _ = render_frames(horror, 0, prof)
    assert brightness(fast) > brightness(plain) + 30  # lit like Action, not like Horror
    romance = make_film("Romance", 100)
    dark, flashes = render_frames(romance, 0, prof, value_override=(0.10, 0.22), flashes_override=2)
    assert len(flashes) == 2 and brightness(dark) < brightness(render_frames(romance, 0, prof)[0]) - 40


def test_hmdb51_curation_groups_by_source_film(tmp_path):
    root = tmp_path / "hmdb51"
    for cls, name in (("kiss", "Casablanca_kiss_h_cm_np2_fr_goo_0"), ("kiss", "Casablanca_kiss_h_cm_np2_fr_goo_1"),
                      ("punch", "Matrix_punch_u_cm_np1_ri_med_3"), ("laugh", "Sitcom_laugh_h_nm_np1_fr_goo_0")):
        write_clip(root / cls / f"{name}.mp4", seconds=0.5)
    rows = {Path(r["path"]).stem: r for r in manifest_from_dataset(root, "hmdb51")}
    assert rows["Casablanca_kiss_h_cm_np2_fr_goo_0"]["genre"] == "Romance"
    assert rows["Matrix_punch_u_cm_np1_ri_med_3"]["genre"] == "Action"
    assert rows["Casablanca_kiss_h_cm_np2_fr_goo_0"]["group"] == rows["Casablanca_kiss_h_cm_np2_fr_goo_1"]["group"] == "Casablanca"
    assert not any(k.startswith("Sitcom") for k in rows)  # laugh is not mapped


def test_default_profile_tests_on_at_least_120_clips_of_unseen_films():
    """The default set's split (its holdout) gives test results resting on >= 120 clips of films never
    seen in training or validation."""
    prof = get_profile("default")
    rows = [{"path": f"{g}/{g}_{f:02d}_clip{c}.mp4", "genre": g, "group": f"{g}_{f:02d}", "status": "ok"}
            for g in GENRES for f in range(prof.films_per_genre) for c in range(prof.clips_per_film)]
    assign_split(rows, val_size=prof.holdout[0], test_size=prof.holdout[1], random_state=prof.data_seed)
    test = [r for r in rows if r["split"] == "test"]
    seen = {r["group"] for r in rows if r["split"] in ("train", "val")}
    assert len(test) >= 120 and not seen & {r["group"] for r in test}
    assert {r["genre"] for r in test} == set(GENRES)


def test_difficulty_hides_cues_in_the_requested_share_of_clips():
    from helpers.synth import SynthError, borrowed_cues

    films = [make_film(g, i) for g in GENRES for i in range(40)]
    cues = {d: [borrowed_cues(f, c, d) for f in films for c in range(2)] for d in (0.0, 0.1, 0.3)}
    assert all(c == ("", "") for c in cues[0.0])
    for d in (0.1, 0.3):
        looks = np.mean([bool(look) for look, _ in cues[d]])
        silent = np.mean([sound == "none" for _, sound in cues[d]])
        assert abs(looks - d) < 0.05 and abs(silent - d) < 0.05
    # a harder set keeps every choice of an easier one, and a clip never borrows its own genre's look
    assert all(not e[0] or e[0] == h[0] for e, h in zip(cues[0.1], cues[0.3]))
    assert all(look != f.genre for f, (look, _) in zip([f for f in films for _ in range(2)], cues[0.3]))
    with pytest.raises(SynthError, match="difficulty"):
        borrowed_cues(films[0], 0, 1.0)


def test_a_borrowed_look_and_a_missing_score_carry_no_trace_of_the_genre():
    prof = get_profile("smoke")
    romance, sports = make_film("Romance", 0), make_film("Sports", 0)
    own, _ = render_frames(romance, 0, prof)
    dark, _ = render_frames(romance, 0, prof, look="Horror")
    assert dark.mean() < 0.6 * own.mean()  # shot like Horror: Horror's brightness
    # no score: the soundtrack of a Romance and of a Sports clip have the same spectrum shape
    spectra = []
    for film in (romance, sports):
        y = render_audio(film, 0, prof, [], sound="none")
        spectrum = np.abs(np.fft.rfft(y))
        spectra.append(np.add.reduceat(spectrum, np.linspace(0, len(spectrum), 9, dtype=int)[:-1]) / spectrum.sum())
    scored = np.abs(np.fft.rfft(render_audio(sports, 0, prof, [])))
    scored = np.add.reduceat(scored, np.linspace(0, len(scored), 9, dtype=int)[:-1]) / scored.sum()
    assert np.abs(spectra[0] - spectra[1]).sum() < 0.5 * np.abs(spectra[1] - scored).sum()
