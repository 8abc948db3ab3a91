"""Zoneout (cells/zoneout.py, (Z1)-(Z3) in cells/lstm.py and gru.py) on `LSTM` and `GRU`:
inference is the expectation (the float64 oracle), training keeps each unit's previous value
exactly with probability p, masks fresh at every step unless `zoneout_variational`, fixed
masks reproduce the oracle's (Z1) forward and backward, and no fast path takes the cell."""

import keras
import numpy as np
import pytest

import keras_gated
from keras_gated.layers import fused
from tests import backend_ops
from tests.cells.helpers import (
    CONTAINERS,
    LAYERS,
    MASK,
    assert_all_close,
    assert_config_round_trips,
    assert_gradients_match_finite_differences,
    built,
    f32,
    gradient_precision,
    make,
    whole_sequence_kernel_takes,
)
from tests.oracles import numpy_rnn
from tests.oracles.harness import B, Case, D, T, U, as_list, assign_weights, to_numpy

# A kept fraction over n Bernoulli(p) draws has standard deviation sqrt(p (1 - p) / n), at
# most 0.004 for the n >= 16384 draws below: 0.02 is five of them.
ATOL_RATE = 0.02

RATES = {"gru": {"zoneout": 0.3}, "lstm": {"zoneout": 0.2, "cell_zoneout": 0.4}}
KINDS = pytest.mark.parametrize("kind", ["gru", "lstm"])


def data(seed, kind, batch=B, steps=T, input_dim=D, units=U):
    """x (B, T, D), random non-zero states, random float64 weights (GRU: reset_after)."""
    rng = np.random.default_rng(seed)
    gates = 3 if kind == "gru" else 4
    x = rng.normal(size=(batch, steps, input_dim))
    states = [rng.uniform(-0.8, 0.8, (batch, units)) for _ in range(1 if kind == "gru" else 2)]
    weights = {
        "kernel": rng.uniform(-0.6, 0.6, (input_dim, gates * units)),
        "recurrent_kernel": rng.uniform(-0.6, 0.6, (units, gates * units)),
        "bias": rng.uniform(-0.6, 0.6, (2, 3 * units) if kind == "gru" else (4 * units,)),
    }
    return rng, x, states, weights


def oracle(kind, x, states, w, mask=None, keep=None):
    """The oracle at the rates of RATES[kind]: inference, or (Z1) with `keep` {state:
    (B, T, U)}."""
    keep = keep or {}
    if kind == "gru":
        out, final, _ = numpy_rnn.gru(
            x,
            states[0],
            w["kernel"],
            w["recurrent_kernel"],
            w["bias"],
            mask=mask,
            keep=keep.get("h"),
            **RATES[kind],
        )
        return out, final
    out, final, _ = numpy_rnn.lstm(
        x,
        *states,
        w["kernel"],
        w["recurrent_kernel"],
        w["bias"],
        mask=mask,
        keep_h=keep.get("h"),
        keep_c=keep.get("c"),
        **RATES[kind],
    )
    return out, final


# --- inference: the expectation -------------------------------------------------------------


@KINDS
@pytest.mark.parametrize("container", CONTAINERS)
def test_inference_is_the_expectation(container, kind):
    """s_t = p s_{t-1} + (1 - p) s'_t (the oracle), deterministic, and not the plain cell."""
    _, x, states, w = data(1, kind)
    kw = dict(return_sequences=True, return_state=True)
    layer = built(make(container, Case.of(kind, **RATES[kind]), U, **kw), x, states, w)
    out, final = oracle(kind, x, states, w)
    for _ in range(2):
        assert_all_close(
            as_list(layer(f32(x), initial_state=[f32(s) for s in states])), [out, *final]
        )
    plain = LAYERS[kind](U, **kw)
    built(plain, x, states, w)
    assert not np.allclose(
        to_numpy(plain(f32(x), initial_state=[f32(s) for s in states])[0]), out, atol=0.01
    )


@KINDS
def test_inference_with_a_mask_backwards_matches_the_oracle(kind):
    _, x, states, w = data(2, kind)
    layer = built(
        LAYERS[kind](U, **RATES[kind], return_sequences=True, return_state=True, go_backwards=True),
        x,
        states,
        w,
    )
    out, final = oracle(kind, x[:, ::-1], states, w, mask=MASK[:, ::-1])
    got = layer(
        f32(x), initial_state=[f32(s) for s in states], mask=keras.ops.convert_to_tensor(MASK)
    )
    assert_all_close(as_list(got), [out, *final])


# --- training: (Z1) -------------------------------------------------------------------------


def fixed_masks(kind, rng, steps=T, batch=B, units=U):
    """0/1 masks {state: (T, B, U)} at the rates of RATES[kind], as the layer draws them."""
    rates = {"h": RATES[kind]["zoneout"], "c": RATES[kind].get("cell_zoneout", 0.0)}
    return {
        s: (rng.uniform(size=(steps, batch, units)) < p).astype("float32")
        for s, p in rates.items()
        if p > 0
    }


@KINDS
def test_training_with_fixed_masks_matches_the_oracle(kind, monkeypatch):
    """The layer's loop applies mask t at step t (here backwards: x and masks flip together):
    (Z1) as the oracle computes it, kept units exactly their previous values."""
    rng, x, states, w = data(3, kind)
    layer = built(
        LAYERS[kind](U, **RATES[kind], return_sequences=True, return_state=True, go_backwards=True),
        x,
        states,
        w,
    )
    masks = fixed_masks(kind, rng)
    monkeypatch.setattr(
        layer.cell,
        "draw_zoneout_masks",
        lambda shape: {k: keras.ops.convert_to_tensor(m) for k, m in masks.items()},
    )
    got = as_list(layer(f32(x), initial_state=[f32(s) for s in states], training=True))
    keep = {k: np.transpose(m, (1, 0, 2))[:, ::-1] for k, m in masks.items()}  # (B, T, U)
    out, final = oracle(kind, x[:, ::-1], states, w, keep=keep)
    assert_all_close(got, [out, *final])
    previous = np.concatenate([f32(states[0])[:, None], got[0][:, :-1]], axis=1)
    kept = keep["h"].astype(bool)
    np.testing.assert_array_equal(got[0][kept], previous[kept])


def kept_fraction(outputs, h0):
    """(B, T, U) bool: where h_t equals h_{t-1} exactly."""
    previous = np.concatenate([h0[:, None], outputs[:, :-1]], axis=1)
    return outputs == previous


@pytest.mark.parametrize("variational", [False, True], ids=["per_step", "variational"])
def test_masks_keep_units_at_the_rate_fresh_or_per_sequence(variational):
    """With p = 0.3 about 30% of (b, t, u) keep h_{t-1} exactly; per step the kept units
    change from step to step, variational they are the same at every step."""
    rng = np.random.default_rng(4)
    batch, steps, units, p = 64, 16, 16, 0.3
    x = f32(rng.normal(size=(batch, steps, D)))
    h0 = f32(rng.uniform(-0.8, 0.8, (batch, units)))
    layer = keras_gated.GRU(
        units, zoneout=p, zoneout_variational=variational, seed=1, return_sequences=True
    )
    kept = kept_fraction(to_numpy(layer(x, initial_state=[h0], training=True)), h0)
    assert abs(kept.mean() - p) < ATOL_RATE, kept.mean()
    same_every_step = np.all(kept == kept[:, :1], axis=1)  # (B, U)
    if variational:
        assert same_every_step.all()
    else:
        assert same_every_step.mean() < 0.01  # p^16 + (1 - p)^16 ~ 0.003 by chance


def test_lstm_cell_zoneout_keeps_c_at_its_rate():
    """One step, p_c = 0.5, p_h = 0.1: c_1 = c_0 exactly on about half the units, h_1 = h_0 on
    about a tenth."""
    rng = np.random.default_rng(5)
    batch, units = 512, 32
    x = f32(rng.normal(size=(batch, 1, D)))
    h0, c0 = (f32(rng.uniform(-0.8, 0.8, (batch, units))) for _ in range(2))
    layer = keras_gated.LSTM(units, zoneout=0.1, cell_zoneout=0.5, return_state=True)
    _, h1, c1 = as_list(layer(x, initial_state=[h0, c0], training=True))
    assert abs((c1 == c0).mean() - 0.5) < ATOL_RATE and abs((h1 == h0).mean() - 0.1) < ATOL_RATE


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,training", [("gru", False), ("lstm", True)])
def test_gradients_match_finite_differences_of_the_oracle(kind, training, monkeypatch):
    """Autodiff at inference ((Z2)/(Z3)) and with fixed training masks ((Z1)-(Z2)) against
    central differences of the float64 oracle."""
    batch, steps, input_dim, units = 2, 3, 2, 3
    rng, x, states, w = data(6, kind, batch, steps, input_dim, units)
    masks = fixed_masks(kind, rng, steps, batch, units) if training else {}
    keep = {k: np.transpose(m, (1, 0, 2)) for k, m in masks.items()}
    r_out = rng.normal(size=(batch, steps, units))
    r_h = rng.normal(size=(batch, units))

    def oracle_loss(weights):
        out, final = oracle(kind, x, states, weights, keep=keep)
        return np.sum(out * r_out) + np.sum(final[0] * r_h)

    with gradient_precision() as (dtype, atol_loss, atol_grad):
        layer = LAYERS[kind](units, **RATES[kind], return_sequences=True, return_state=True)
        xt = keras.ops.convert_to_tensor(x, dtype)
        st = [keras.ops.convert_to_tensor(s, dtype) for s in states]
        layer(xt, initial_state=st)
        assign_weights(layer, w)
        monkeypatch.setattr(
            layer.cell,
            "draw_zoneout_masks",
            lambda shape: {k: keras.ops.convert_to_tensor(m, dtype) for k, m in masks.items()},
        )

        def loss_fn():
            out, h, *_ = layer(xt, initial_state=st, training=training)
            return backend_ops.readout([out, h], [r_out, r_h])

        loss, grads = backend_ops.value_and_grads(loss_fn, layer.trainable_weights)
    assert_gradients_match_finite_differences(
        loss, grads, layer.trainable_weights, w, oracle_loss, atol_loss, atol_grad
    )


# --- paths, containers, arguments -------------------------------------------------------------


def test_the_fused_path_and_no_whole_sequence_kernel_takes_a_zoneout_cell():
    """cuDNN and ATen have no zoneout; the fused path's mask rule does (its equality with the
    reference path: tests/layers/test_fused*.py)."""
    for cell in (
        keras_gated.GRUCell(U, zoneout=0.1),
        keras_gated.GRUCell(U, zoneout=0.1, reset_after=False),
        keras_gated.LSTMCell(U, cell_zoneout=0.1),
        keras_gated.LSTMCell(U, zoneout=0.1),
    ):
        assert not cell.is_plain() and fused.applies(cell)
        assert not whole_sequence_kernel_takes(cell)
    assert not fused.applies(keras_gated.GRUCell(U, zoneout=0.1, layer_norm=True))
    assert keras_gated.LSTMCell(U, zoneout_variational=True).is_plain()  # no rate: plain


def test_cell_in_keras_rnn_trains_with_variational_masks_everywhere():
    """Inside `keras.layers.RNN` the variational masks are drawn before Keras's loop (with the
    dropout masks); fresh masks at every step need a loop that can draw, not JAX's."""
    rng = np.random.default_rng(7)
    x = f32(rng.normal(size=(16, T, D)))
    h0 = f32(rng.uniform(-0.8, 0.8, (16, U)))
    rnn = keras.layers.RNN(
        keras_gated.GRUCell(U, zoneout=0.5, zoneout_variational=True), return_sequences=True
    )
    kept = kept_fraction(to_numpy(rnn(x, initial_state=[h0], training=True)), h0)
    assert 0.2 < kept.mean() < 0.8 and np.all(kept == kept[:, :1])
    per_step = keras.layers.RNN(keras_gated.GRUCell(U, zoneout=0.5), return_sequences=True)
    if backend_ops.backend() == "jax":
        with pytest.raises(ValueError, match="zoneout_variational=True"):
            per_step(x, initial_state=[h0], training=True)
    else:
        kept = kept_fraction(to_numpy(per_step(x, initial_state=[h0], training=True)), h0)
        assert 0.2 < kept.mean() < 0.8 and not np.all(kept == kept[:, :1])


def test_rates_are_checked_and_configs_round_trip():
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="zoneout"):
            keras_gated.GRUCell(U, zoneout=bad)
        with pytest.raises(ValueError, match="cell_zoneout"):
            keras_gated.LSTMCell(U, cell_zoneout=bad)
    objects = [
        keras_gated.GRUCell(U, zoneout=0.1, zoneout_variational=True),
        keras_gated.LSTMCell(U, zoneout=0.2, cell_zoneout=0.3),
        keras_gated.GRU(U, zoneout=0.1, go_backwards=True),
        keras_gated.LSTM(U, cell_zoneout=0.3, zoneout_variational=True),
    ]
    for obj in objects:
        assert_config_round_trips(obj)
    assert keras_gated.LSTM.from_config(objects[3].get_config()).cell.zoneout_variational
