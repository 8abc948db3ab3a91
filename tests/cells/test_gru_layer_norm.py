"""`GRUCell(layer_norm=True)` and `GRU(layer_norm=True)` against the float64 oracle
(`numpy_rnn.gru(..., gamma=)`), finite differences, and the properties of (L1)-(L3) in
cells/gru.py: gamma (2, 3U) starts at 1, a normalised projection ignores the scale of its
matrix, and no fast path (fused, cuDNN, ATen) takes the cell."""

import keras
import numpy as np
import pytest

import keras_gated
from keras_gated.layers import fused
from tests import backend_ops
from tests.cells.helpers import (
    CONTAINERS,
    FD_MASK,
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

# The gradient tolerances are tests/cells/helpers.py's but float32 against the exact gradient:
# LN divides by the spread of U = 3 units, down to O(0.1) here, which scales float32 rounding
# up by as much (measured 1.2e-5 on JAX; 1e-5 without LN).
ATOL_GRAD_F32_VS_EXACT = 3e-5
# A matrix scaled by 10 and by 100 under LN: epsilon (1e-3) against variances of O(1..100)
# and O(100..10^4) moves the outputs by O(1e-4) between the two; an unnormalised projection
# moves them by O(0.1).
ATOL_SCALE_INVARIANT = 1e-3

RESETS = pytest.mark.parametrize("reset_after", [True, False], ids=["after", "before"])


def data(seed, reset_after, batch=B, steps=T, input_dim=D, units=U):
    """x (B, T, D), [h0], and random float64 weights, gamma around 1 with both signs of
    deviation."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, input_dim))
    h0 = rng.uniform(-0.8, 0.8, (batch, units))
    width = 3 * units
    weights = {
        "kernel": rng.uniform(-0.6, 0.6, (input_dim, width)),
        "recurrent_kernel": rng.uniform(-0.6, 0.6, (units, width)),
        "bias": rng.uniform(-0.6, 0.6, (2, width) if reset_after else (width,)),
        "gamma": rng.uniform(0.5, 1.5, (2, width)),
    }
    return rng, x, [h0], weights


def oracle(x, states, weights, reset_after, mask=None):
    out, final, _ = numpy_rnn.gru(
        x,
        states[0],
        weights["kernel"],
        weights["recurrent_kernel"],
        weights["bias"],
        reset_after=reset_after,
        gamma=weights["gamma"],
        mask=mask,
    )
    return out, final


# --- equal to the oracle --------------------------------------------------------------------


@RESETS
@pytest.mark.parametrize("container", CONTAINERS)
def test_matches_numpy_oracle(container, reset_after):
    """At inference and with training=True (no dropout: the projected-input path)."""
    _, x, states, w = data(1, reset_after)
    kw = dict(return_sequences=True, return_state=True)
    case = Case.of("gru", layer_norm=True, reset_after=reset_after)
    layer = built(make(container, case, U, **kw), x, states, w)
    out, final = oracle(x, states, w, reset_after)
    for training in (False, True):
        got = layer(f32(x), initial_state=[f32(states[0])], training=training)
        assert_all_close(as_list(got), [out, *final])
    plain, _, _ = numpy_rnn.gru(
        x, states[0], w["kernel"], w["recurrent_kernel"], w["bias"], reset_after=reset_after
    )
    assert not np.allclose(plain, out, atol=0.05)  # the norm mattered


@pytest.mark.parametrize("reset_after,go_backwards", [(True, True), (False, False)])
def test_mask_matches_numpy_oracle(reset_after, go_backwards):
    """Masked steps hold h and repeat the output; outputs in processing order, as Keras's."""
    _, x, states, w = data(2, reset_after)
    layer = built(
        keras_gated.GRU(
            U,
            layer_norm=True,
            reset_after=reset_after,
            return_sequences=True,
            return_state=True,
            go_backwards=go_backwards,
        ),
        x,
        states,
        w,
    )
    order = (lambda a: a[:, ::-1]) if go_backwards else (lambda a: a)
    out, final = oracle(order(x), states, w, reset_after, mask=order(MASK))
    got = layer(f32(x), initial_state=[f32(states[0])], mask=keras.ops.convert_to_tensor(MASK))
    assert_all_close(as_list(got), [out, *final])


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_after,masked", [(True, False), (False, True)])
def test_gradients_match_finite_differences_of_the_oracle(reset_after, masked):
    """Autodiff of the reference path (the only one: no fused backward for the norm) against
    central differences of the float64 oracle, every weight gamma included."""
    batch, steps, input_dim, units = 2, 3, 2, 3
    rng, x, states, w = data(5, reset_after, batch, steps, input_dim, units)
    mask = FD_MASK if masked else None
    r_out = rng.normal(size=(batch, steps, units))
    r_h = rng.normal(size=(batch, units))

    def oracle_loss(weights):
        out, (h,) = oracle(x, states, weights, reset_after, mask=mask)
        return np.sum(out * r_out) + np.sum(h * r_h)

    with gradient_precision(ATOL_GRAD_F32_VS_EXACT) as (dtype, atol_loss, atol_grad):
        layer = keras_gated.GRU(
            units,
            layer_norm=True,
            reset_after=reset_after,
            return_sequences=True,
            return_state=True,
        )
        xt = keras.ops.convert_to_tensor(x, dtype)
        st = [keras.ops.convert_to_tensor(states[0], dtype)]
        kw = {} if mask is None else {"mask": keras.ops.convert_to_tensor(mask)}
        layer(xt, initial_state=st)
        assign_weights(layer, w)

        def loss_fn():
            out, h = layer(xt, initial_state=st, training=True, **kw)
            return backend_ops.readout([out, h], [r_out, r_h])

        loss, grads = backend_ops.value_and_grads(loss_fn, layer.trainable_weights)
    assert_gradients_match_finite_differences(
        loss, grads, layer.trainable_weights, w, oracle_loss, atol_loss, atol_grad
    )


# --- properties of (L1)-(L3) ------------------------------------------------------------------


@RESETS
def test_normalised_projections_ignore_the_scale_of_their_matrices(reset_after):
    """LN(c x W) = LN(x W) for c > 0 (up to epsilon): W or U scaled by 10 or by 100 gives the
    same outputs, which no unnormalised GRU does."""
    _, x, states, w = data(3, reset_after)
    layer = built(
        keras_gated.GRU(U, layer_norm=True, reset_after=reset_after, return_sequences=True),
        x,
        states,
        w,
    )
    for name in ("kernel", "recurrent_kernel"):
        outputs = []
        for scale in (10.0, 100.0):
            assign_weights(layer, {**w, name: scale * w[name]})
            outputs.append(to_numpy(layer(f32(x), initial_state=[f32(states[0])])))
        np.testing.assert_allclose(*outputs, atol=ATOL_SCALE_INVARIANT, rtol=0, err_msg=name)
    plain = built(
        keras_gated.GRU(U, reset_after=reset_after, return_sequences=True),
        x,
        states,
        {k: v for k, v in w.items() if k != "gamma"},
    )
    before = to_numpy(plain(f32(x), initial_state=[f32(states[0])]))
    plain.cell.kernel.assign(f32(10.0 * w["kernel"]))
    after = to_numpy(plain(f32(x), initial_state=[f32(states[0])]))
    assert np.abs(after - before).max() > 10 * ATOL_SCALE_INVARIANT


def test_gamma_is_two_rows_of_ones_and_the_cell_is_not_plain():
    """gamma (2, 3U) = [gamma^x; gamma^h] starts at 1; the cell is not plain, so neither the
    fused path nor cuDNN nor ATen takes it."""
    for reset_after in (True, False):
        cell = keras_gated.GRUCell(U, layer_norm=True, reset_after=reset_after)
        cell.build((None, D))
        assert to_numpy(cell.gamma).shape == (2, 3 * U)
        np.testing.assert_array_equal(to_numpy(cell.gamma), 1.0)
        assert not cell.is_plain() and not fused.applies(cell)
        assert not whole_sequence_kernel_takes(cell)
    assert keras_gated.GRUCell(U).is_plain()


def test_config_round_trip():
    cell = keras_gated.GRUCell(U, layer_norm=True, reset_after=False, dropout=0.1, seed=2)
    layer = keras_gated.GRU(
        U, layer_norm=True, recurrent_dropout=0.2, weight_dropout=0.1, go_backwards=True
    )
    for obj in (cell, layer):
        assert assert_config_round_trips(obj)["layer_norm"] is True
