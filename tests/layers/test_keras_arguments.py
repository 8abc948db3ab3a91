"""Keras's constructor arguments with Keras's meaning, Keras's built-in layers as the oracle.

Each case builds our layer and Keras's with the same arguments and copied weights:
- activations and `use_bias=False`: outputs and states at inference, and outputs and the
  gradients of every weight when training (the fused path where it applies, the reference
  path otherwise), equal the built-in's;
- regularizers: the same penalties in `losses`; constraints: one SGD step leaves the same
  (projected) weights;
- cell `dropout`/`recurrent_dropout` inside `keras.layers.RNN`: one mask per sequence, the
  same at every step (a linear probe reads it off the outputs), none at inference.
"""

import keras
import numpy as np
import pytest

import keras_gated
from tests import backend_ops

B, T, D, U = 3, 5, 4, 6
# float32 forward and backward through <= 5 steps of O(1) values: rounding O(1e-6);
# a wrong activation, gate or missing bias is O(0.1).
ATOL = 2e-5

KINDS = ["SimpleRNN", "LSTM", "GRU"]
ACTIVATION_CASES = {  # kind -> [(activation options), ...]
    "SimpleRNN": [
        {"activation": "relu"},
        {"activation": "sigmoid"},
        {"activation": "elu"},
        {"activation": "tanh", "use_bias": False},
    ],
    "LSTM": [
        {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
        {"activation": "softsign", "recurrent_activation": "sigmoid", "use_bias": False},
        {"use_bias": False},
        # not elementwise: a call per gate, where sigmoids take one over all gates
        {"recurrent_activation": "softmax"},
    ],
    "GRU": [
        {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
        {"use_bias": False},
        {"use_bias": False, "reset_after": False},
        {"activation": "elu", "reset_after": False},
        {"recurrent_activation": "softmax"},
    ],
}
CASES = [(kind, options) for kind in KINDS for options in ACTIVATION_CASES[kind]]


def pair(kind, **options):
    """(ours, Keras's) built on (B, T, D) with the same random weights."""
    ours = getattr(keras_gated, kind)(U, **options)
    builtin = getattr(keras.layers, kind)(U, **options)
    rng = np.random.default_rng(0)
    ours.build((B, T, D))
    builtin.build((B, T, D))
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in builtin.get_weights()]
    builtin.set_weights(weights)
    ours.set_weights(weights)
    return ours, builtin


def inputs():
    return np.random.default_rng(1).normal(size=(B, T, D)).astype("float32")


def numpy_all(result):
    return [
        keras.ops.convert_to_numpy(r)
        for r in (result if isinstance(result, (list, tuple)) else [result])
    ]


@pytest.mark.parametrize("kind, options", CASES, ids=str)
def test_activations_and_bias_equal_keras_at_inference(kind, options):
    ours, builtin = pair(kind, return_sequences=True, return_state=True, **options)
    x = inputs()
    for a, b in zip(numpy_all(ours(x)), numpy_all(builtin(x))):
        np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.parametrize("kind, options", CASES, ids=str)
def test_activations_and_bias_equal_keras_in_training(kind, options):
    """Outputs and the gradient of every weight and of the inputs, with training=True."""
    ours, builtin = pair(kind, return_sequences=True, **options)
    x = keras.ops.convert_to_tensor(inputs())
    r = np.random.default_rng(2).normal(size=(B, T, U))
    grads = [
        backend_ops.value_and_grads(
            lambda layer=layer: backend_ops.readout([layer(x, training=True)], [r]),
            layer.trainable_weights,
        )
        for layer in (ours, builtin)
    ]
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_regularizers_add_keras_penalties(kind):
    """The weight penalties equal the built-in's, and the activity penalty is Keras's rule on
    the output, as a plain layer with the same `activity_regularizer` applies it (0.5 *
    sum(y^2) / B in Keras 3.15, without the / B in 3.12). Keras 3.15's own SimpleRNN drops
    its activity_regularizer (docs/keras_upstream.md); 3.12's applies it."""
    options = {
        "kernel_regularizer": keras.regularizers.L2(0.1),
        "recurrent_regularizer": keras.regularizers.L1(0.2),
        "bias_regularizer": keras.regularizers.L1L2(0.3, 0.4),
        "activity_regularizer": keras.regularizers.L2(0.5),
    }
    ours, builtin = pair(kind, **options)
    x = inputs()
    y = keras.ops.convert_to_numpy(ours(x))
    builtin(x)
    penalties = [
        [float(keras.ops.convert_to_numpy(loss)) for loss in layer.losses]
        for layer in (ours, builtin)
    ]
    probe = keras.layers.Activation("linear", activity_regularizer=keras.regularizers.L2(0.5))
    probe(y)
    activity = float(keras.ops.convert_to_numpy(probe.losses[0]))
    builtin_drops_activity = kind == "SimpleRNN" and len(penalties[1]) == 3
    expected = penalties[1] + ([activity] if builtin_drops_activity else [])
    assert len(penalties[0]) == 4
    np.testing.assert_allclose(sorted(penalties[0]), sorted(expected), rtol=1e-5)
    assert np.isclose(penalties[0], activity, rtol=1e-5).sum() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_constraints_project_after_each_update(kind):
    """One SGD step on the same data leaves the same weights, which obey the constraints."""
    options = {
        "kernel_constraint": keras.constraints.MaxNorm(0.5),
        "recurrent_constraint": keras.constraints.UnitNorm(),
        "bias_constraint": keras.constraints.NonNeg(),
    }
    ours, builtin = pair(kind, **options)
    x, y = inputs(), np.random.default_rng(3).normal(size=(B, U)).astype("float32")
    weights = []
    for layer in (ours, builtin):
        model = keras.Sequential([keras.Input((T, D)), layer])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        model.train_on_batch(x, y)
        weights.append(layer.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=ATOL)
    kernel, recurrent, bias = weights[0]
    assert np.all(np.linalg.norm(kernel, axis=0) <= 0.5 + 1e-6)
    np.testing.assert_allclose(np.linalg.norm(recurrent, axis=0), 1.0, rtol=1e-5)
    assert np.all(bias >= 0.0)


def test_cell_dropout_inside_keras_rnn_is_one_mask_per_sequence():
    """A linear SimpleRNNCell with W = I, U = 0, b = 0 outputs h_t = x_t * m_x: with x = 1 the
    outputs are the mask, which must be the same at every step, drop about `rate` of the
    entries, scale the kept ones by 1 / (1 - rate), and be absent at inference."""
    rate, width, steps = 0.5, 64, 7
    cell = keras_gated.SimpleRNNCell(width, activation="linear", dropout=rate, seed=4)
    layer = keras.layers.RNN(cell, return_sequences=True)
    x = np.ones((8, steps, width), "float32")
    layer(x)
    cell.kernel.assign(np.eye(width, dtype="float32"))
    cell.recurrent_kernel.assign(np.zeros((width, width), "float32"))
    cell.bias.assign(np.zeros(width, "float32"))
    h = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_array_equal(h, np.broadcast_to(h[:, :1], h.shape))  # shared over time
    assert set(np.unique(h)) <= {0.0, 2.0}
    assert abs((h[:, 0] == 0.0).mean() - rate) < 0.1  # 512 entries: std 0.022
    again = keras.ops.convert_to_numpy(layer(x, training=True))
    assert not np.array_equal(again, h)  # a fresh mask for the next batch
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)


def test_cell_recurrent_dropout_inside_keras_rnn_is_one_mask_per_sequence():
    """The same probe on h_{t-1}: W = 0 except x_1 = 1, U = I, linear, so h_t = h_{t-1} * m_h
    = m_h^(t-1) for t >= 2 with the same mask at every step: entries are 0 or 2^(t-1)."""
    rate, width, steps = 0.5, 32, 4
    cell = keras_gated.SimpleRNNCell(width, activation="linear", recurrent_dropout=rate, seed=5)
    layer = keras.layers.RNN(cell, return_sequences=True)
    x = np.zeros((8, steps, width), "float32")
    x[:, 0] = 1.0
    layer(x)
    cell.kernel.assign(np.eye(width, dtype="float32"))
    cell.recurrent_kernel.assign(np.eye(width, dtype="float32"))
    cell.bias.assign(np.zeros(width, "float32"))
    h = keras.ops.convert_to_numpy(layer(x, training=True))
    kept = h[:, 1] != 0.0
    for t in range(1, steps):
        np.testing.assert_array_equal(h[:, t], np.where(kept, 2.0**t, 0.0))
