"""Shared helpers for the cell tests: our layer or our cell in `keras.layers.RNN` for a case,
the finite-difference check against the float64 oracle and its tolerances, the masks, building
a layer with given weights, comparing results, the config round trip and which whole-sequence
kernels (cuDNN, ATen) would take a cell.

The oracles and the cell variants live in tests/oracles (numpy_rnn.py, harness.py)."""

import contextlib

import keras
import numpy as np

import keras_gated
from tests import backend_ops
from tests.oracles.harness import ATOL_F32, assign_weights, to_numpy

# Central differences in float64 with step 1e-6: truncation O(eps^2) ~ 1e-12 and rounding
# O(1e-16 / eps) ~ 1e-10 on an O(1) loss, so 1e-7 is far above the noise and far below
# any real gradient error.
FD_EPS = 1e-6
ATOL_GRAD = 1e-7
# The float64 layer and the float64 oracle differ only by summation order: O(1e-15) per
# value, O(1e-13) on a loss summing ~50 of them.
ATOL_LOSS_F64 = 1e-10
# Off TensorFlow, Keras's ops compute float64 inputs in float32 (keras.backend.result_type
# maps float64 to float32 there: BIT64_TO_BIT32_DTYPE in keras/src/backend/common/dtypes.py,
# so on JAX ops.tanh of float64 is float32), so on JAX and torch the layer runs in float32
# against the exact oracle differences: the loss sums 30 O(1) terms with float32 rounding,
# O(1e-6); gradients of O(1) carry relative rounding O(1e-6).
ATOL_LOSS_F32 = 1e-4
ATOL_GRAD_F32_VS_EXACT = 1e-5

MASK = np.array(  # (B, T): leading, trailing and inner masked steps
    [
        [False, True, True, False, True],
        [True, True, True, True, False],
        [True, False, False, True, True],
    ]
)
FD_MASK = np.array([[True, False, True], [False, True, True]])  # a hole; a masked first step

# Our classes by `harness.Case.kind`, and "indrnn" (test_indrnn.py; harness.oracle has no IndRNN).
LAYERS = {
    "simple_rnn": keras_gated.SimpleRNN,
    "lstm": keras_gated.LSTM,
    "gru": keras_gated.GRU,
    "indrnn": keras_gated.IndRNN,
}
CELLS = {
    "simple_rnn": keras_gated.SimpleRNNCell,
    "lstm": keras_gated.LSTMCell,
    "gru": keras_gated.GRUCell,
    "indrnn": keras_gated.IndRNNCell,
}
CONTAINERS = ["cell_in_keras_rnn", "layer"]


def make_cell(case, units):
    return CELLS[case.kind](units, **case.kw)


def make_layer(case, units, **layer_kwargs):
    return LAYERS[case.kind](units, **case.kw, **layer_kwargs)


def make(container, case, units, **layer_kwargs):
    """Our layer for `case` (container "layer") or our cell inside `keras.layers.RNN`
    ("cell_in_keras_rnn"): the hoisted loop or the cell's own `call`."""
    if container == "layer":
        return make_layer(case, units, **layer_kwargs)
    return keras.layers.RNN(make_cell(case, units), **layer_kwargs)


def f32(a):
    return np.asarray(a, "float32")


def built(layer, x, states, weights):
    """`layer` (or `keras.layers.RNN`) called once on float32 x and states, then given
    `weights` {name: array}."""
    layer(f32(x), initial_state=[f32(s) for s in states])
    assign_weights(layer, weights)
    return layer


def assert_all_close(got, want, atol=ATOL_F32):
    assert len(got) == len(want), (len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(to_numpy(g), w, atol=atol, rtol=0, err_msg=f"result {k}")


@contextlib.contextmanager
def gradient_precision(atol_grad_f32=ATOL_GRAD_F32_VS_EXACT):
    """Float64 layers on TensorFlow, float32 elsewhere (see ATOL_LOSS_F32): yields (dtype,
    atol_loss, atol_grad) for the finite-difference check; `atol_grad_f32` is the float32
    gradient tolerance."""
    if backend_ops.backend() == "tensorflow":
        with backend_ops.float64_policy():
            yield "float64", ATOL_LOSS_F64, ATOL_GRAD
    else:
        yield "float32", ATOL_LOSS_F32, atol_grad_f32


def assert_gradients_match_finite_differences(
    loss, grads, variables, weights, oracle_loss, atol_loss, atol_grad
):
    """The layer's `loss` equals `oracle_loss(weights)`, and each gradient in `grads` (one per
    variable) equals central differences (step FD_EPS) of the float64 oracle's loss in that
    variable's entry of `weights` {name: array}."""
    assert abs(loss - oracle_loss(weights)) < atol_loss, (loss, oracle_loss(weights))
    for variable, grad in zip(variables, grads):
        name = variable.name
        value = weights[name]
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            for sign in (1.0, -1.0):
                shifted = value.copy()
                shifted[idx] += sign * FD_EPS
                numeric[idx] += sign * oracle_loss({**weights, name: shifted}) / (2 * FD_EPS)
        assert np.any(numeric), name  # every weight reaches this loss
        np.testing.assert_allclose(grad, numeric, atol=atol_grad, rtol=0, err_msg=name)


def whole_sequence_kernel_takes(cell):
    """Whether this backend's whole-sequence kernel (cuDNN on TensorFlow, ATen on torch) would
    run `cell`; JAX has none."""
    if backend_ops.backend() == "tensorflow":
        from keras_gated.layers import cudnn

        return cudnn.applies(cell)
    if backend_ops.backend() == "torch":
        from keras_gated.layers import aten

        return aten.applies(cell)
    return False


def assert_config_round_trips(obj):
    """`from_config(get_config())` and Keras's own (de)serialisation, as a saved file goes,
    give back the same class and config. Returns the config."""
    config = obj.get_config()
    again = type(obj).from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj) and restored.get_config() == config
    return config
