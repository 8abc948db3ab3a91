"""`IndRNNCell` and `IndRNN` against the float64 oracle (`numpy_rnn.indrnn`), finite differences
and the properties of cells/indrnn.py: u is a vector (U,), clipped to |u| <= recurrent_max_abs
after every update, and the fused training path equals the reference path."""

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

# Fused against reference path, both float32: rounding of reordered sums, O(1e-7) of scale.
TOL_FUSED = 1e-6

ACTIVATIONS = ("relu", "tanh")


def data(seed, batch=B, steps=T, input_dim=D, units=U):
    """x (B, T, D), [h0], and random float64 weights: u in (-1, 1), so both signs recur."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, input_dim))
    h0 = rng.uniform(-0.8, 0.8, (batch, units))
    weights = {
        "kernel": rng.uniform(-0.6, 0.6, (input_dim, units)),
        "recurrent_kernel": rng.uniform(-0.95, 0.95, (units,)),
        "bias": rng.uniform(-0.6, 0.6, (units,)),
    }
    return rng, x, [h0], weights


def oracle(x, states, weights, activation, mask=None):
    return numpy_rnn.indrnn(
        x,
        states[0],
        weights["kernel"],
        weights["recurrent_kernel"],
        weights["bias"],
        activation=activation,
        mask=mask,
    )


# --- the oracle ---------------------------------------------------------------------------


def test_oracle_is_simple_rnn_with_a_diagonal_recurrent_matrix():
    _, x, states, w = data(0)
    for activation in ACTIVATIONS:
        got = oracle(x, states, w, activation, mask=MASK)
        want = numpy_rnn.simple_rnn(
            x,
            states[0],
            w["kernel"],
            np.diag(w["recurrent_kernel"]),
            w["bias"],
            activation=activation,
            mask=MASK,
        )
        np.testing.assert_allclose(got[0], want[0], atol=1e-12, rtol=0)
        np.testing.assert_allclose(got[1][0], want[1][0], atol=1e-12, rtol=0)


# --- equal to the oracle --------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("container", CONTAINERS)
def test_matches_numpy_oracle(container, activation):
    _, x, states, w = data(1)
    kw = dict(return_sequences=True, return_state=True)
    case = Case.of("indrnn", activation=activation)
    layer = built(make(container, case, U, **kw), x, states, w)
    out, final = oracle(x, states, w, activation)
    assert_all_close(as_list(layer(f32(x), initial_state=[f32(states[0])])), [out, *final])


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
def test_mask_matches_numpy_oracle(go_backwards):
    """Masked steps hold h and repeat the output; outputs in processing order, as Keras's."""
    _, x, states, w = data(2)
    layer = built(
        keras_gated.IndRNN(
            U,
            activation="relu",
            return_sequences=True,
            return_state=True,
            go_backwards=go_backwards,
        ),
        x,
        states,
        w,
    )
    order = (lambda a: a[:, ::-1]) if go_backwards else (lambda a: a)
    out, final = oracle(order(x), states, w, "relu", mask=order(MASK))
    got = layer(f32(x), initial_state=[f32(states[0])], mask=keras.ops.convert_to_tensor(MASK))
    assert_all_close(as_list(got), [out, *final])
    unmasked, _ = oracle(order(x), states, w, "relu")
    assert not np.allclose(unmasked, out)  # the mask mattered


def test_two_halves_with_carried_state_equal_the_whole():
    _, x, states, w = data(3)
    layer = built(keras_gated.IndRNN(U, return_sequences=True, return_state=True), x, states, w)
    x, h0 = f32(x), f32(states[0])
    whole, h = as_list(layer(x, initial_state=[h0]))
    first, mid = as_list(layer(x[:, :2], initial_state=[h0]))
    second, end = as_list(layer(x[:, 2:], initial_state=[mid]))
    assert_all_close([np.concatenate([first, second], 1), end], [whole, h], atol=1e-6)


def test_cell_recurrent_mask_multiplies_h_prev():
    _, x, states, w = data(4)
    cell = keras_gated.IndRNNCell(U, activation="tanh")
    cell.build((B, D))
    assign_weights(cell, w)
    m = keras.ops.convert_to_tensor(
        np.random.default_rng(0).choice([0.0, 2.0], size=(B, U)).astype("float32")
    )
    h_prev = keras.ops.convert_to_tensor(f32(states[0]))
    xw = cell.project_inputs(f32(x[:, 0]))
    h_masked, _ = cell.step(xw, [h_prev], recurrent_mask=m)
    h_times_m, _ = cell.step(xw, [h_prev * m])
    np.testing.assert_allclose(to_numpy(h_masked), to_numpy(h_times_m), atol=1e-6, rtol=0)


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["reference", "fused"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_gradients_match_finite_differences_of_the_oracle(path, masked):
    """Autodiff (reference path: training=False) and the fused path's hand-written backward
    (training=True, no dropout) equal central differences of the float64 oracle."""
    batch, steps, input_dim, units = 2, 3, 2, 3
    rng, x, states, w = data(5, batch, steps, input_dim, units)
    mask = FD_MASK if masked else None
    r_out = rng.normal(size=(batch, steps, units))
    r_h = rng.normal(size=(batch, units))

    def oracle_loss(weights):
        out, (h,) = oracle(x, states, weights, "tanh", mask=mask)
        return np.sum(out * r_out) + np.sum(h * r_h)

    calls = []
    with gradient_precision() as (dtype, atol_loss, atol_grad):
        layer = keras_gated.IndRNN(
            units, activation="tanh", return_sequences=True, return_state=True
        )
        xt = keras.ops.convert_to_tensor(x, dtype)
        st = [keras.ops.convert_to_tensor(states[0], dtype)]
        kw = {} if mask is None else {"mask": keras.ops.convert_to_tensor(mask)}
        layer(xt, initial_state=st)
        assign_weights(layer, w)
        original = fused.fused_recurrence

        def counting(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        fused.fused_recurrence = counting
        try:

            def loss_fn():
                out, h = layer(xt, initial_state=st, training=path == "fused", **kw)
                return backend_ops.readout([out, h], [r_out, r_h])

            loss, grads = backend_ops.value_and_grads(loss_fn, layer.trainable_weights)
        finally:
            fused.fused_recurrence = original
    assert bool(calls) == (path == "fused")
    assert_gradients_match_finite_differences(
        loss, grads, layer.trainable_weights, w, oracle_loss, atol_loss, atol_grad
    )


def test_fused_path_equals_reference_path_with_dropout_and_mask(monkeypatch):
    """Input, recurrent and weight dropout (the same masks: same seeds, the same calls) and a
    mask, ReLU: outputs, final state and the gradients of every weight, x and h0."""
    rng, x, states, w = data(6)
    x, h0, mask = f32(x), f32(states[0]), keras.ops.convert_to_tensor(MASK)
    r_out, r_h = rng.normal(size=(B, T, U)), rng.normal(size=(B, U))
    results = []
    for forced in (False, True):
        layer = built(
            keras_gated.IndRNN(
                U,
                activation="relu",
                dropout=0.3,
                recurrent_dropout=0.4,
                weight_dropout=0.2,
                seed=3,
                return_sequences=True,
                return_state=True,
            ),
            x,
            states,
            w,
        )
        xv, hv = keras.Variable(x), keras.Variable(h0)
        with monkeypatch.context() as patch:
            if forced:
                patch.setattr(fused, "applies", lambda cell: False)

            def call(layer=layer, xv=xv, hv=hv):  # each call draws the next masks
                return layer(xv.value, initial_state=[hv.value], mask=mask, training=True)

            outs = as_list(call())
            _, grads = backend_ops.value_and_grads(
                lambda: backend_ops.readout(call(), [r_out, r_h]),
                [*layer.trainable_weights, xv, hv],
            )
        results.append([*outs, *grads])
    for k, (got, want) in enumerate(zip(*results)):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, atol=TOL_FUSED * scale, rtol=0, err_msg=f"{k}")
    assert all(np.abs(want).max() > 1e-3 for want in results[1])


def test_no_whole_sequence_kernel_takes_it():
    """cuDNN's and ATen's kernels multiply by a full (U, U) matrix: never an IndRNN's path.
    The fused path (its own backward, I1-I2) takes it."""
    cell = keras_gated.IndRNNCell(U)
    assert fused.applies(cell)
    assert not whole_sequence_kernel_takes(cell)


# --- the clip (2), the weight shapes, the config -------------------------------------------


def test_clip_holds_after_a_training_step():
    """An SGD step large enough to push u past u_max leaves u in [-u_max, u_max] (and, with a
    `recurrent_constraint`, the clip comes after it)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, T, D)).astype("float32")
    y = rng.normal(size=(8, U)).astype("float32") * 10.0
    for constraint, low in ((None, -0.5), ("non_neg", 0.0)):
        layer = keras_gated.IndRNN(
            U,
            recurrent_max_abs=0.5,
            recurrent_constraint=constraint,
            recurrent_initializer=keras.initializers.Constant(0.45),
        )
        model = keras.Sequential([keras.Input((T, D)), layer])
        model.compile(keras.optimizers.SGD(10.0), "mse")
        model.train_on_batch(x, y)
        u = to_numpy(layer.cell.recurrent_kernel)
        assert u.shape == (U,)
        assert np.all(u <= 0.5) and np.all(u >= low), u
        assert np.any(np.isclose(np.abs(u), 0.5)) and np.any(u != 0.45), u  # the step moved u


def test_default_initializer_draws_u_inside_the_clip():
    for max_abs, high in ((1.0, 1.0), (0.2, 0.2), (None, 1.0)):
        cell = keras_gated.IndRNNCell(256, recurrent_max_abs=max_abs)
        cell.build((None, D))
        u = to_numpy(cell.recurrent_kernel)
        assert u.shape == (256,) and u.min() >= 0.0 and u.max() <= high and u.max() > 0.8 * high


def test_recurrent_max_abs_is_checked():
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="recurrent_max_abs"):
            keras_gated.IndRNNCell(U, recurrent_max_abs=bad)


def test_config_round_trip():
    cell = keras_gated.IndRNNCell(
        U,
        activation="relu",
        recurrent_max_abs=None,
        recurrent_constraint="non_neg",
        dropout=0.1,
        seed=2,
    )
    layer = keras_gated.IndRNN(
        U,
        recurrent_max_abs=2 ** (1 / 100),
        recurrent_dropout=0.2,
        weight_dropout=0.1,
        go_backwards=True,
        stateful=False,
    )
    assert layer.recurrent_max_abs == 2 ** (1 / 100)
    for obj in (cell, layer):
        assert_config_round_trips(obj)
    assert keras_gated.IndRNN.from_config(layer.get_config()).cell.recurrent_max_abs == (
        2 ** (1 / 100)
    )
