"""Under mixed_float16 and mixed_bfloat16 our layers keep Keras's dtypes, match the built-ins
and train.

Keras's built-in layers under a mixed policy hold float32 variables and compute, return and
carry states in the compute dtype (float16 or bfloat16); ours must do the same, which is
checked against the built-in under the same policy rather than against a list of dtypes.
"""

import keras
import numpy as np
import pytest

import keras_gated
from tests.oracles.harness import (
    GRU_CASES,
    KIND_CASES,
    B,
    D,
    T,
    U,
    as_list,
    builtin_layer,
    random_states,
    to_numpy,
)

POLICIES = ["mixed_float16", "mixed_bfloat16"]
COMPARE_CASES = KIND_CASES + GRU_CASES[1:]
# Keras's own value tolerance for half precision: atol 0.1 for float16 in
# keras/src/ops/numpy_test.py (test_matmul: `atol = 0.1 if dtype == "float16" else 1e-4`).
# Keras's RNN tests check only dtypes under mixed_float16 (keras/src/testing/test_case.py,
# run_layer_test's mixed-precision check) and state no bfloat16 tolerance, so the float16
# figure serves for both policies. Expected differences: one rounding of O(1) values per op,
# 2^-11 (float16) or 2^-8 (bfloat16), over T=5 steps: O(1e-2) at most; a swapped gate is O(0.5).
ATOL_KERAS_HALF_PRECISION = 0.1


@pytest.fixture
def policy(request):
    """Sets the global dtype policy for one test and restores the previous one."""
    if keras.backend.backend() == "torch" and request.param == "mixed_float16":
        import torch

        if not torch.cuda.is_available():
            # As Keras's own tests: "Never test mixed precision on torch CPU. Torch lacks
            # support." (keras/src/testing/test_case.py, run_layer_test)
            pytest.skip("float16 on torch needs a GPU (Keras's tests skip it on CPU too)")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    try:
        yield keras.dtype_policies.get(request.param)
    finally:
        keras.config.set_dtype_policy(previous)


def make_layer(case, units, **kwargs):
    cls = {"simple_rnn": keras_gated.SimpleRNN, "lstm": keras_gated.LSTM, "gru": keras_gated.GRU}
    return cls[case.kind](units, **case.kw, **kwargs)


def dtype_of(x):
    return keras.backend.standardize_dtype(x.dtype)


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
@pytest.mark.parametrize("case", COMPARE_CASES, ids=lambda c: c.id)
def test_dtypes_and_values_match_keras_builtin(case, policy):
    rng = np.random.default_rng(40)
    x = rng.normal(size=(B, T, D)).astype("float32")
    states = [s.astype("float32") for s in random_states(case, B, U, rng)]
    kw = dict(return_sequences=True, return_state=True)
    ours, ref = make_layer(case, U, **kw), builtin_layer(case, U, **kw)
    for layer in (ours, ref):
        layer(x, initial_state=states)
    ref.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in ref.get_weights()])
    ours.set_weights(ref.get_weights())
    assert ours.dtype_policy.name == ref.dtype_policy.name == policy.name
    assert [dtype_of(v) for v in ours.weights] == [dtype_of(v) for v in ref.weights]
    assert all(dtype_of(v) == "float32" for v in ours.weights)
    got, want = ours(x, initial_state=states), ref(x, initial_state=states)
    assert [dtype_of(g) for g in got] == [dtype_of(w) for w in want]
    assert dtype_of(got[0]) == policy.compute_dtype  # outputs and states in the compute dtype
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = to_numpy(g).astype("float32"), to_numpy(w).astype("float32")
        np.testing.assert_allclose(
            g, w, atol=ATOL_KERAS_HALF_PRECISION, rtol=0, err_msg=f"result {k}"
        )
    # Non-vacuous at this tolerance: the outputs are not all within it of zero.
    assert np.abs(to_numpy(want[0]).astype("float32")).max() > 2 * ATOL_KERAS_HALF_PRECISION


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_layers_train_and_predict(policy):
    """A fit step moves every weight, variables stay float32, predictions in the compute dtype."""
    rng = np.random.default_rng(41)
    x = rng.normal(size=(4, T, D)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras_gated.SimpleRNN(U, return_sequences=True, dropout=0.1),
            keras_gated.LSTM(
                U, peephole=True, layer_norm=True, return_sequences=True, recurrent_dropout=0.1
            ),
            keras_gated.VariationalDropout(0.1),
            keras_gated.GRU(U, reset_after=False),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = [to_numpy(v).copy() for v in model.trainable_weights]
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"])), history.history
    for variable, old in zip(model.trainable_weights, before):
        assert dtype_of(variable) == "float32", variable.path
        assert not np.array_equal(to_numpy(variable), old), f"{variable.path} did not train"
    hidden = keras.Model(model.inputs, model.layers[-2].output)
    assert dtype_of(hidden(x)) == policy.compute_dtype
    predicted = model.predict(x, verbose=0)
    assert np.all(np.isfinite(predicted)) and predicted.shape == (4, 2)
    np.testing.assert_allclose(
        predicted, as_list(model(x))[0], atol=ATOL_KERAS_HALF_PRECISION, rtol=0
    )


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_gate_activations_under_a_mixed_policy(policy):
    """`gate_activations` runs outside `__call__` (no autocast): it computes in the variables'
    float32 and gives the float32 layer's gates."""
    case = COMPARE_CASES[1]
    x = np.random.default_rng(41).normal(size=(B, T, D)).astype("float32")
    mixed = make_layer(case, U)
    mixed(x)
    keras.config.set_dtype_policy("float32")
    plain = make_layer(case, U)
    plain(x)
    plain.set_weights(mixed.get_weights())
    want = plain.gate_activations(x)
    keras.config.set_dtype_policy(policy.name)
    got = mixed.gate_activations(x)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, rtol=0, err_msg=name)
