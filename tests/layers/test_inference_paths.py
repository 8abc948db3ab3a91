"""Inference's two projections compute the same function: x_t W inside each step (narrow
layers on TensorFlow and JAX, `recurrent.PER_STEP_MAX_UNITS`) and x W for all steps before
the loop (wider layers, torch, training), for every cell, mask pattern and direction."""

import keras
import numpy as np
import pytest

import keras_gated
from keras_gated.layers import recurrent

B, T, D, U = 3, 5, 4, 6
MASKS = {"none": None, "right": [5, 3, 1], "left": [-4, -5, -2]}


def mask_of(lengths):
    if lengths is None:
        return None
    m = np.zeros((B, T), bool)
    for b, n in enumerate(lengths):
        m[b, :n] = n > 0
        m[b, T + n :] = n < 0
    return m


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("pattern", list(MASKS))
@pytest.mark.parametrize(
    "make",
    [
        lambda **k: keras_gated.SimpleRNN(U, **k),
        lambda **k: keras_gated.LSTM(U, **k),
        lambda **k: keras_gated.GRU(U, **k),
        lambda **k: keras_gated.GRU(U, reset_after=False, **k),
        lambda **k: keras_gated.LSTM(U, peephole=True, layer_norm=True, **k),
    ],
    ids=["rnn", "lstm", "gru", "gru-v1", "lstm-peephole-ln"],
)
def test_per_step_projection_equals_the_hoisted_one(make, pattern, go_backwards, monkeypatch):
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    mask = mask_of(MASKS[pattern])
    layer = make(return_sequences=True, return_state=True, go_backwards=go_backwards)
    layer(x)
    monkeypatch.setattr(recurrent, "PER_STEP_MAX_UNITS", U)
    per_step = [keras.ops.convert_to_numpy(t) for t in layer(x, mask=mask)]
    monkeypatch.setattr(recurrent, "PER_STEP_MAX_UNITS", 0)
    hoisted = [keras.ops.convert_to_numpy(t) for t in layer(x, mask=mask)]
    for a, b in zip(per_step, hoisted, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
