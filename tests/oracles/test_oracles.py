"""Validates the numpy oracles themselves before they judge the library.

Plain SimpleRNN, LSTM and GRU are checked against Keras's built-in layers with copied
random weights; peephole and layer-norm LSTM have no Keras counterpart and are checked by
properties that follow from their equations.
"""

import keras
import numpy as np
import pytest

from tests.oracles import numpy_rnn
from tests.oracles.harness import (
    ATOL_F32,
    BUILTIN_CASES,
    GRU_CASES,
    KIND_CASES,
    B,
    D,
    T,
    U,
    as_list,
    builtin_layer,
    keras_masked_outputs,
    keras_weight_list,
    oracle,
    random_states,
    random_weights,
)

# float64 against float64: only summation-order rounding, O(1e-15) on O(1) values.
ATOL_F64 = 1e-12
# Layer norm is scale invariant up to its epsilon: scaling the pre-activations of
# variance ~0.3 by 5 moves outputs by O(eps / var) ~ 1e-3.
LAYER_NORM_SCALE_ATOL = 1e-2

# Masks with a masked first step, a masked middle run and a masked last step.
MASK = np.array(
    [
        [False, True, True, False, True],
        [True, True, True, True, False],
        [True, False, False, True, True],
    ]
)


def logit(p):
    return np.log(p) - np.log1p(-p)


def _run_builtin(case, x, states, weights, mask=None):
    layer = builtin_layer(case, U, return_sequences=True, return_state=True)
    layer.build((B, T, D))
    layer.set_weights(keras_weight_list(weights))
    result = layer(
        x.astype("float32"),
        initial_state=[s.astype("float32") for s in states],
        mask=None if mask is None else keras.ops.convert_to_tensor(mask),
    )
    out, *final = as_list(result)
    return out, final


@pytest.mark.parametrize("case", BUILTIN_CASES, ids=lambda c: c.id)
def test_oracle_matches_keras_builtin(case):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D))
    states = random_states(case, B, U, rng)
    weights = random_weights(case, D, U, rng)
    want_out, want_states = _run_builtin(case, x, states, weights)
    out, final, _ = oracle(case, x, states, weights)
    np.testing.assert_allclose(out, want_out, atol=ATOL_F32, rtol=0)
    assert len(final) == len(want_states)
    for got, want in zip(final, want_states):
        np.testing.assert_allclose(got, want, atol=ATOL_F32, rtol=0)


@pytest.mark.parametrize("case", KIND_CASES + GRU_CASES[1:], ids=lambda c: c.id)
def test_oracle_mask_matches_keras_builtin(case):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, D))
    states = random_states(case, B, U, rng)
    weights = random_weights(case, D, U, rng)
    want_out, want_states = _run_builtin(case, x, states, weights, mask=MASK)
    out, final, _ = oracle(case, x, states, weights, mask=MASK)
    # Row 0's first step is masked: zeros in the oracle, h0 from Keras on JAX.
    np.testing.assert_allclose(
        keras_masked_outputs(out, MASK, states[0]), want_out, atol=ATOL_F32, rtol=0
    )
    for got, want in zip(final, want_states):
        np.testing.assert_allclose(got, want, atol=ATOL_F32, rtol=0)
    # Non-vacuous: the mask changed the result.
    unmasked, _, _ = oracle(case, x, states, weights)
    assert not np.allclose(unmasked, out)


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.id)
def test_all_true_mask_is_no_mask(case):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, T, D))
    states = random_states(case, B, U, rng)
    weights = random_weights(case, D, U, rng)
    out, final, _ = oracle(case, x, states, weights)
    out_m, final_m, _ = oracle(case, x, states, weights, mask=np.ones((B, T), bool))
    np.testing.assert_array_equal(out, out_m)
    for a, b in zip(final, final_m):
        np.testing.assert_array_equal(a, b)


def _lstm_inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D))
    h0, c0 = rng.uniform(-0.8, 0.8, (2, B, U))
    W = rng.uniform(-0.6, 0.6, (D, 4 * U))
    R = rng.uniform(-0.6, 0.6, (U, 4 * U))
    b = rng.uniform(-0.6, 0.6, (4 * U,))
    return rng, x, h0, c0, W, R, b


def test_lstm_gates_rebuild_states():
    """c_t = f * c_{t-1} + i * g and h_t = o * tanh(c_t) from the returned gates."""
    _, x, h0, c0, W, R, b = _lstm_inputs(3)
    out, (h, c), gates = numpy_rnn.lstm(x, h0, c0, W, R, b)
    cell = c0
    for t in range(T):
        cell = gates["f"][:, t] * cell + gates["i"][:, t] * gates["g"][:, t]
        np.testing.assert_allclose(out[:, t], gates["o"][:, t] * np.tanh(cell), atol=ATOL_F64)
    np.testing.assert_allclose(c, cell, atol=ATOL_F64)
    np.testing.assert_array_equal(h, out[:, -1])


def test_peephole_zero_equals_plain_lstm():
    _, x, h0, c0, W, R, b = _lstm_inputs(4)
    plain = numpy_rnn.lstm(x, h0, c0, W, R, b)
    zero = numpy_rnn.lstm(x, h0, c0, W, R, b, peephole=np.zeros((3, U)))
    np.testing.assert_array_equal(plain[0], zero[0])
    for a, z in zip(plain[1], zero[1]):
        np.testing.assert_array_equal(a, z)


def test_peephole_terms_at_step_one():
    """i and f see c_{t-1} (= c0 at step 1) through p_i, p_f; o sees c_t through p_o."""
    rng, x, h0, c0, W, R, b = _lstm_inputs(5)
    p = rng.uniform(-0.6, 0.6, (3, U))
    _, _, plain = numpy_rnn.lstm(x, h0, c0, W, R, b)
    _, _, peep = numpy_rnn.lstm(x, h0, c0, W, R, b, peephole=p)
    np.testing.assert_allclose(
        logit(peep["i"][:, 0]) - logit(plain["i"][:, 0]), p[0] * c0, atol=1e-10
    )
    np.testing.assert_allclose(
        logit(peep["f"][:, 0]) - logit(plain["f"][:, 0]), p[1] * c0, atol=1e-10
    )
    np.testing.assert_array_equal(peep["g"][:, 0], plain["g"][:, 0])
    # With p_i = p_f = 0, step 1's c_1 is unchanged and only o moves, by p_o * c_1.
    p_o_only = p * np.array([[0.0], [0.0], [1.0]])
    _, _, peep_o = numpy_rnn.lstm(x, h0, c0, W, R, b, peephole=p_o_only)
    c1 = plain["f"][:, 0] * c0 + plain["i"][:, 0] * plain["g"][:, 0]
    np.testing.assert_allclose(
        logit(peep_o["o"][:, 0]) - logit(plain["o"][:, 0]), p[2] * c1, atol=1e-10
    )


def test_layer_norm_preactivations_have_zero_mean_per_gate():
    """With gamma = 1 and a constant bias shift s_k per gate, gate k's pre-activation
    (recovered by inverting its activation) has mean s_k and variance ~1 over its units."""
    _, x, h0, c0, W, R, _ = _lstm_inputs(6)
    shifts = {"i": 0.3, "f": -0.2, "g": 0.1, "o": 0.5}
    b = np.concatenate([np.full(U, shifts[k]) for k in numpy_rnn.LSTM_GATES])
    _, _, gates = numpy_rnn.lstm(x, h0, c0, W, R, b, gamma=np.ones(4 * U))
    inverse = {"i": logit, "f": logit, "g": np.arctanh, "o": logit}
    for k in numpy_rnn.LSTM_GATES:
        a = inverse[k](gates[k])  # (B, T, U)
        np.testing.assert_allclose(a.mean(axis=-1), shifts[k], atol=1e-9)
        var = a.var(axis=-1)  # var / (var + eps) of the raw pre-activation
        assert np.all(var <= 1.0) and np.all(var > 0.95), (k, var)


def test_layer_norm_is_scale_invariant():
    rng, x, h0, c0, W, R, b = _lstm_inputs(7)
    gamma = rng.uniform(0.5, 1.5, 4 * U)
    out, _, _ = numpy_rnn.lstm(x, h0, c0, W, R, b, gamma=gamma)
    scaled, _, _ = numpy_rnn.lstm(x, h0, c0, 5 * W, 5 * R, b, gamma=gamma)
    np.testing.assert_allclose(scaled, out, atol=LAYER_NORM_SCALE_ATOL)
    plain, _, _ = numpy_rnn.lstm(x, h0, c0, 5 * W, 5 * R, b)
    assert not np.allclose(plain, out, atol=LAYER_NORM_SCALE_ATOL)
