"""The classic comparison on tiny sizes: the sigma_1 law, clipping, and the written files."""

import csv
import json
import os

import numpy as np
import pytest

from keras_gated.diagnostics import DemoConfig, recall_batch, run_demo, write_demo
from tests.diagnostics.pictures import assert_png

TINY = DemoConfig(
    seq_len=8,
    units=8,
    batch_size=16,
    eval_size=32,
    train_steps=10,
    clip_steps=4,
    sigmas=(0.8, 1.25),
)
# float32 backward products over T steps; the linear cases are exact up to this.
RTOL_RATE = 1e-4
# ||delta w|| / lr from float32 weights w ~ 0.1..1 and updates ~ lr * clipnorm / sqrt(#weights)
RTOL_UPDATE = 1e-3


@pytest.fixture(scope="module")
def results():
    return run_demo(TINY)


def test_recall_task_puts_the_label_first():
    x, y = recall_batch(np.random.default_rng(0), 5, seq_len=7, num_classes=3, vocab_size=6)
    assert x.shape == (5, 7) and y.shape == (5,)
    np.testing.assert_array_equal(x[:, 0], y)
    assert np.all((x[:, 1:] >= 3) & (x[:, 1:] < 6)) and np.all((y >= 0) & (y < 3))
    with pytest.raises(ValueError):
        recall_batch(np.random.default_rng(0), 5, seq_len=1)


@pytest.mark.parametrize("case", ["vanishing", "exploding"])
def test_vanilla_rnn_follows_its_largest_singular_value(results, case):
    cases = [c for c in results["vanishing_exploding"] if c["case"] == case]
    assert {c["activation"] for c in cases} == {"linear", "tanh"}
    for c in cases:
        norms, rates, sigma = c["norms"], c["rates"], c["sigma1"]
        assert norms.shape == (TINY.seq_len,) and np.all(np.isfinite(norms)) and np.all(norms > 0)
        # every backward step multiplies the norm by at most sigma_1 (|act'| <= 1) ...
        assert np.all(rates <= sigma * (1 + RTOL_RATE)), (c["activation"], rates)
        # ... and the predicted curve sigma_1^k bounds the measured one
        assert np.all(norms <= c["predicted"] * (1 + RTOL_RATE) ** TINY.seq_len)
        if c["activation"] == "linear":  # orthogonal U * sigma: all singular values are sigma
            np.testing.assert_allclose(rates, sigma, rtol=RTOL_RATE)
    linear = next(c for c in cases if c["activation"] == "linear")
    first, last = linear["norms"][0], linear["norms"][-1]  # t = 1 is the furthest back
    assert (first < last) if case == "vanishing" else (first > last)


def test_clipped_exploding_update_has_the_clip_norm(results):
    clip = results["clipping"]
    clipped, unclipped = clip["clipped"], clip["unclipped"]
    assert clipped["grad_norm"][0] == pytest.approx(unclipped["grad_norm"][0])  # same start
    assert unclipped["grad_norm"][0] > clip["clipnorm"]  # it does explode: clipping acts
    # the unclipped update is the raw gradient
    assert unclipped["update_norm"][0] == pytest.approx(unclipped["grad_norm"][0], rel=RTOL_UPDATE)
    assert len(clipped["update_norm"]) == TINY.clip_steps
    for raw, update in zip(clipped["grad_norm"], clipped["update_norm"]):
        assert np.isfinite(update)
        if raw > clip["clipnorm"]:
            assert update == pytest.approx(clip["clipnorm"], rel=RTOL_UPDATE)
        else:
            assert update == pytest.approx(raw, rel=RTOL_UPDATE, abs=1e-6)


def test_comparison_covers_every_cell_at_init_and_trained(results):
    assert list(results["comparison"]) == ["rnn", "lstm", "gru"]
    for cell, entry in results["comparison"].items():
        for stage in ("init", "trained"):
            assert set(entry[stage]) == ({"h", "c"} if cell == "lstm" else {"h"})
            for norms in entry[stage].values():
                assert norms.shape == (TINY.seq_len,) and np.all(np.isfinite(norms))
        assert 0.0 <= entry["score_trained"] <= 1.0  # accuracy on the recall task


def test_write_demo_files(results, tmp_path):
    written = write_demo(results, str(tmp_path))
    assert all(os.path.exists(p) for p in written)
    for name in ("gradient_comparison.png", "vanishing_exploding.png"):
        assert_png(os.path.join(tmp_path, name))
    with open(tmp_path / "vanishing_exploding.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * TINY.seq_len
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["config"]["seq_len"] == TINY.seq_len
    rates = {(c["case"], c["activation"]): c["mean_rate"] for c in summary["vanishing_exploding"]}
    assert rates[("exploding", "linear")] == pytest.approx(1.25, rel=RTOL_RATE)
    assert set(summary["comparison"]["lstm"]) >= {
        "init_h",
        "init_c",
        "trained_h",
        "trained_c",
        "accuracy_trained",
        "init_description",
    }
