"""||d loss/d s_t|| from `keras_gated.diagnostics` against an explicit, independently written
unrolled computation under a `tf.GradientTape`, and the sigma_1 growth law of a linear RNN."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gated
from keras_gated.diagnostics import (
    growth_rates,
    largest_singular_value,
    layer_gradient_norms,
    model_gradient_norms,
)
from keras_gated.diagnostics.gradient_flow import next_token_loss, unroll, unrolled_logits

B, T, D, U = 3, 6, 4, 5  # batch >= 2, time >= 3, units != input dim
# Same float32 operations in a different order: relative differences of O(1e-7) per step.
RTOL_NORMS = 1e-5
ATOL_OUTPUTS = 1e-6


def oracle_norms(kind, layer, x, loss_fn):
    """The textbook equations (DESIGN.md) unrolled by hand, with zero probes p_t added to h_t
    (and to c_t before h_t = o_t tanh(c_t) reads it); returns ||d loss/d p_t|| per step."""
    K, R, b = (
        tf.constant(w.numpy())
        for w in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)
    )
    probes = {"h": tf.zeros((T, B, U)), "c": tf.zeros((T, B, U))}
    with tf.GradientTape() as tape:
        tape.watch(probes)
        h, c, outputs = tf.zeros((B, U)), tf.zeros((B, U)), []
        for t in range(T):
            x_t = x[:, t]
            if kind == "rnn":
                h = tf.tanh(x_t @ K + h @ R + b)
            elif kind == "lstm":
                i, f, g, o = tf.split(x_t @ K + h @ R + b, 4, axis=-1)
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g) + probes["c"][t]
                h = tf.sigmoid(o) * tf.tanh(c)
            else:  # GRU, reset_after=True: bias rows are the input and recurrent biases
                xz, xr, xh = tf.split(x_t @ K + b[0], 3, axis=-1)
                hz, hr, hh = tf.split(h @ R + b[1], 3, axis=-1)
                z, r = tf.sigmoid(xz + hz), tf.sigmoid(xr + hr)
                h = z * h + (1 - z) * tf.tanh(xh + r * hh)
            h = h + probes["h"][t]
            outputs.append(h)
        loss = loss_fn(tf.stack(outputs, axis=1))
    grads = tape.gradient(loss, probes, unconnected_gradients="zero")
    return {k: np.linalg.norm(g.numpy().reshape(T, -1), axis=1) for k, g in grads.items()}


LAYERS = {"rnn": keras_gated.SimpleRNN, "lstm": keras_gated.LSTM, "gru": keras_gated.GRU}


def _random_loss(seed):
    weights = tf.constant(np.random.default_rng(seed).normal(size=(B, T, U)), "float32")
    return lambda outputs: tf.reduce_sum(tf.tanh(outputs) * weights) / B


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_norms_equal_explicit_unrolled_tape(kind):
    keras.utils.set_random_seed(1)
    layer = LAYERS[kind](U, bias_initializer="random_normal", return_sequences=True)
    x = tf.constant(np.random.default_rng(2).normal(size=(B, T, D)), "float32")
    layer(x)
    loss_fn = _random_loss(3)
    got = layer_gradient_norms(layer, x, loss_fn)
    want = oracle_norms(kind, layer, x, loss_fn)
    assert set(got) == ({"h", "c"} if kind == "lstm" else {"h"})
    for state in got:
        assert got[state].shape == (T,)
        np.testing.assert_allclose(got[state], want[state], rtol=RTOL_NORMS, err_msg=state)
        assert np.all(got[state] > 0)


@pytest.mark.parametrize(
    "layer_class", [keras_gated.SimpleRNN, keras_gated.LSTM, keras_gated.GRU, keras.layers.LSTM]
)
def test_unroll_runs_the_layers_own_computation(layer_class):
    keras.utils.set_random_seed(4)
    layer = layer_class(U, return_sequences=True)
    x = np.random.default_rng(5).normal(size=(B, T, D)).astype("float32")
    want = layer(x).numpy()
    outputs, states = unroll(layer, x)
    np.testing.assert_allclose(outputs.numpy(), want, atol=ATOL_OUTPUTS)
    assert len(states[0]) == T


def _tiny_model(cell):
    keras.utils.set_random_seed(6)
    return keras_gated.language_model(11, cell=cell, embed_dim=U, units=U, num_layers=2)


def oracle_model_norms(model, tokens, targets, loss_at):
    """The whole language model unrolled by hand (LSTM layers), probes on every h_t and c_t."""
    E = tf.constant(model.embedding.embeddings.numpy())
    x = tf.gather(E, tokens)
    probes = {
        layer.name: {"h": tf.zeros((T, B, U)), "c": tf.zeros((T, B, U))}
        for layer in model.rnn_layers
    }
    with tf.GradientTape() as tape:
        tape.watch(probes)
        for layer in model.rnn_layers:
            K, R, b = (
                tf.constant(w.numpy())
                for w in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)
            )
            h, c, outputs = tf.zeros((B, U)), tf.zeros((B, U)), []
            for t in range(T):
                i, f, g, o = tf.split(x[:, t] @ K + h @ R + b, 4, axis=-1)
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g) + probes[layer.name]["c"][t]
                h = tf.sigmoid(o) * tf.tanh(c) + probes[layer.name]["h"][t]
                outputs.append(h)
            x = tf.stack(outputs, axis=1)
        logits = tf.einsum("btu,vu->btv", x, E)  # tied output projection
        if loss_at == "last":
            logits, targets = logits[:, -1:], targets[:, -1:]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    grads = tape.gradient(loss, probes)
    return {
        name: {k: np.linalg.norm(g.numpy().reshape(T, -1), axis=1) for k, g in s.items()}
        for name, s in grads.items()
    }


@pytest.mark.parametrize("loss_at", ["all", "last"])
def test_model_norms_equal_explicit_unrolled_tape(loss_at):
    model = _tiny_model("lstm")
    rng = np.random.default_rng(7)
    tokens, targets = rng.integers(0, 11, (2, B, T)).astype("int32")
    got = model_gradient_norms(model, tokens, targets, loss_at)
    want = oracle_model_norms(model, tokens, targets, loss_at)
    assert list(got) == [layer.name for layer in model.rnn_layers]
    for name in got:
        for state in ("h", "c"):
            np.testing.assert_allclose(
                got[name][state], want[name][state], rtol=RTOL_NORMS, err_msg=f"{name} {state}"
            )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unrolled_logits_equal_the_model(cell):
    model = _tiny_model(cell)
    tokens = np.random.default_rng(8).integers(0, 11, (B, T)).astype("int32")
    logits, layers = unrolled_logits(model, tokens)
    np.testing.assert_allclose(logits.numpy(), model(tokens).numpy(), atol=ATOL_OUTPUTS)
    assert [x.shape for x, _ in layers.values()] == [(B, T, U)] * 2


def test_loss_at_last_sends_no_gradient_from_earlier_predictions():
    model = _tiny_model("gru")
    tokens, targets = np.random.default_rng(9).integers(0, 11, (2, B, T)).astype("int32")
    last = model_gradient_norms(model, tokens, targets, "last")
    every = model_gradient_norms(model, tokens, targets, "all")
    top = model.rnn_layers[-1].name
    # With the loss at the last step only, the top layer's h_T gets the whole direct gradient:
    # it is T times the share it gets from the mean over all steps.
    np.testing.assert_allclose(last[top]["h"][-1], T * every[top]["h"][-1], rtol=RTOL_NORMS)
    with pytest.raises(ValueError, match="loss_at"):
        next_token_loss(tf.zeros((1, 2, 3)), tf.zeros((1, 2), "int32"), "first")


# ---- the sigma_1 law for a linear recurrence h_t = x_t W + h_{t-1} R ------------------------
RTOL_RATE = 1e-4  # float32 products over T steps of a well-conditioned matrix


def _linear_rnn(recurrent):
    units = recurrent.shape[0]
    layer = keras_gated.SimpleRNN(units, activation="linear", return_sequences=True)
    layer(np.zeros((1, 1, D), "float32"))
    layer.cell.recurrent_kernel.assign(recurrent.astype("float32"))
    return layer


def _orthogonal(rng, n):
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q


@pytest.mark.parametrize("sigma1", [1.3, 0.7])
def test_linear_rate_equals_sigma1_when_gradient_is_top_singular_vector(sigma1):
    """R = Q diag(s) Q^T: the top singular vector q_1 is also R's eigenvector, so a gradient
    aligned with it stays aligned and d loss/d h_{t-1} = R d loss/d h_t = s_1 d loss/d h_t."""
    rng = np.random.default_rng(10)
    n = 6
    q = _orthogonal(rng, n)
    s = np.array([sigma1, 0.6, 0.5, 0.4, 0.3, 0.2])
    layer = _linear_rnn(q @ np.diag(s) @ q.T)
    assert largest_singular_value(layer.cell.recurrent_kernel.numpy()) == pytest.approx(sigma1)
    top = tf.constant(q[:, 0], "float32")
    x = rng.normal(size=(2, 12, D)).astype("float32")
    norms = layer_gradient_norms(layer, x, lambda out: tf.reduce_sum(out[:, -1] @ top[:, None]))
    np.testing.assert_allclose(growth_rates(norms["h"]), sigma1, rtol=RTOL_RATE)


def test_linear_rate_is_bounded_by_sigma1_and_reaches_it_on_the_first_step():
    """A general R = A diag(s) V^T: with d loss/d h_T = v_1 the first backward step has norm
    ratio exactly s_1; later steps are bounded by s_1."""
    rng = np.random.default_rng(11)
    n = 6
    a, v = _orthogonal(rng, n), _orthogonal(rng, n)
    s = np.array([1.2, 1.1, 0.9, 0.5, 0.3, 0.1])
    layer = _linear_rnn(a @ np.diag(s) @ v.T)
    top = tf.constant(v[:, 0], "float32")
    x = rng.normal(size=(2, 10, D)).astype("float32")
    norms = layer_gradient_norms(layer, x, lambda out: tf.reduce_sum(out[:, -1] @ top[:, None]))
    rates = growth_rates(norms["h"])
    assert rates[0] == pytest.approx(s[0], rel=RTOL_RATE)
    assert np.all(rates <= s[0] * (1 + RTOL_RATE))
