"""The mechanics of notebook 05's ablations: shuffled steps move real steps only, and every per-step
input alike; balanced fusion gives both senses the same width."""
import numpy as np

from helpers.course.lstm_training import balanced_fusion_model, shuffle_steps


def _inputs():
    rng = np.random.default_rng(0)
    mask = np.ones((5, 8), bool)
    mask[1, 5:] = False  # a short clip: padding at the end
    mask[3, 2:] = False
    x = {"video": rng.normal(size=(5, 8, 4)).astype("float32"), "audio": rng.normal(size=(5, 8, 3)).astype("float32"),
         "thumbs": rng.integers(0, 255, (5, 8, 2, 2, 3)).astype("uint8"), "mask": mask}
    for k in ("video", "audio", "thumbs"):
        x[k][~mask] = 0
    return x


def test_shuffled_steps_are_the_real_steps_in_another_order_and_padding_stays():
    x = _inputs()
    s = shuffle_steps(x, seed=1)
    assert np.array_equal(s["mask"], x["mask"])
    for i, real in enumerate(x["mask"]):
        for k in ("video", "audio", "thumbs"):
            assert np.array_equal(s[k][i, ~real], x[k][i, ~real])  # padded steps untouched
            # the same set of real steps
            got = sorted(map(bytes, s[k][i, real])); want = sorted(map(bytes, x[k][i, real]))
            assert got == want
        # every per-step input moved alike: step t of the copy is one original step in all inputs
        for t in np.flatnonzero(real):
            src = [u for u in np.flatnonzero(real) if np.array_equal(x["video"][i, u], s["video"][i, t])]
            assert len(src) == 1 and np.array_equal(x["audio"][i, src[0]], s["audio"][i, t])
    assert any(not np.array_equal(s["video"][i], x["video"][i]) for i in range(5))  # something moved
    assert not np.shares_memory(s["video"], x["video"])  # a copy: the inputs are left as they were


def test_balanced_fusion_gives_both_senses_the_same_width():
    model = balanced_fusion_model(8, 20, 5, units=4, dense_units=4, dropout=0.0, width=5)
    widths = {name: model.get_layer(name).output.shape[-1] for name in ("video_projection", "audio_projection")}
    assert widths == {"video_projection": 5, "audio_projection": 5}
    assert model.get_layer("video_and_audio").output.shape[-1] == 10
