"""GPU delegation (keras_gated/layers/cudnn.py): our layers hand Keras's cuDNN functions the
weights and inputs they expect, exactly for the calls cuDNN computes, and run their own
loops otherwise.

Without a GPU, Keras's functions are replaced by a stand-in that computes what cuDNN does:
Keras's built-in layer (its generic loop, `use_cudnn=False`) with the weights handed over.
Where a GPU is visible, the real kernel is checked against the reference path, forward and
backward.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gated
from keras_gated.layers import cudnn, fused

pytestmark = pytest.mark.tensorflow_only  # tf.custom_gradient, XLA and cuDNN paths

B, T, D, U = 3, 7, 4, 5
TOL = 1e-5  # float32, two implementations of the same equations over T=7 steps


class KerasBuiltin:
    """Stands in for `keras.src.backend.tensorflow.rnn` on CPU; records its calls."""

    def __init__(self, refuse=False):
        self.calls, self.refuse = [], refuse

    def _run(
        self,
        layer_class,
        x,
        states,
        kernel,
        recurrent_kernel,
        bias,
        return_sequences,
        go_backwards,
        **kw,
    ):
        self.calls.append((layer_class.__name__, np.asarray(x)))
        if self.refuse:  # what Keras does without a GPU
            raise NotImplementedError
        layer = layer_class(
            U,
            return_sequences=True,
            return_state=True,
            use_cudnn=False,
            go_backwards=go_backwards,
            **kw,
        )
        layer.build(x.shape)
        layer.set_weights([np.asarray(w) for w in (kernel, recurrent_kernel, bias)])
        outputs, *final = layer(x, initial_state=states)
        last = outputs[:, -1]
        return last, outputs if return_sequences else last[:, None], final

    def lstm(
        self,
        x,
        h0,
        c0,
        mask,
        kernel,
        recurrent_kernel,
        bias,
        activation,
        recurrent_activation,
        return_sequences,
        go_backwards,
    ):
        assert mask is None and activation is tf.tanh and recurrent_activation is tf.sigmoid
        return self._run(
            keras.layers.LSTM,
            x,
            [h0, c0],
            kernel,
            recurrent_kernel,
            bias,
            return_sequences,
            go_backwards,
        )

    def gru(
        self,
        x,
        h0,
        mask,
        kernel,
        recurrent_kernel,
        bias,
        activation,
        recurrent_activation,
        return_sequences,
        go_backwards,
        reset_after,
    ):
        assert mask is None and reset_after
        return self._run(
            keras.layers.GRU,
            x,
            [h0],
            kernel,
            recurrent_kernel,
            bias,
            return_sequences,
            go_backwards,
            reset_after=True,
        )


def _layer(kind, **kw):
    layer = {"lstm": keras_gated.LSTM, "gru": keras_gated.GRU}[kind](U, return_state=True, **kw)
    layer.build((B, T, D))
    rng = np.random.default_rng(3)
    layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer


def _states(kind, rng):
    return [rng.normal(size=(B, U)).astype("float32") for _ in range(2 if kind == "lstm" else 1)]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_delegation_hands_over_what_cudnn_computes(
    kind, return_sequences, go_backwards, monkeypatch
):
    rng = np.random.default_rng(0)
    x, states = rng.normal(size=(B, T, D)).astype("float32"), _states(kind, rng)
    results, handed = [], []
    for delegate in (True, False):  # two layers: equal weights, equal seeds, equal masks
        layer = _layer(
            kind, dropout=0.4, seed=5, return_sequences=return_sequences, go_backwards=go_backwards
        )
        builtin = KerasBuiltin()
        with monkeypatch.context() as patch:
            patch.setattr(cudnn, "_keras_rnn", builtin)
            if not delegate:
                patch.setattr(cudnn, "applies", lambda cell: False)
            results.append([np.asarray(r) for r in layer(x, initial_state=states, training=True)])
        assert len(builtin.calls) == int(delegate)
        handed += [inputs for _, inputs in builtin.calls]
    for g, w in zip(*results):
        np.testing.assert_allclose(g, w, atol=TOL, rtol=0)
    # Non-vacuous: the kernel got x with the input mask applied (whole features zeroed).
    zeroed = (handed[0] == 0).all(axis=1)
    assert zeroed.any() and not (x == 0).any()


@pytest.mark.parametrize(
    "kind,kw,call,delegated",
    [
        ("lstm", {}, {"training": False}, True),
        ("lstm", {"recurrent_dropout": 0.3}, {"training": False}, True),  # no mask at inference
        ("lstm", {"recurrent_dropout": 0.3}, {"training": True}, False),
        ("lstm", {"dropout": 0.3}, {"training": True}, True),
        ("lstm", {}, {"mask": np.array([[True] * T] * B)}, False),
        ("lstm", {"peephole": True}, {}, False),
        ("lstm", {"layer_norm": True}, {}, False),
        ("gru", {}, {}, True),
        ("gru", {"reset_after": False}, {}, False),
    ],
)
def test_delegation_is_tried_exactly_when_cudnn_computes_the_call(
    kind, kw, call, delegated, monkeypatch
):
    builtin = KerasBuiltin()
    monkeypatch.setattr(cudnn, "_keras_rnn", builtin)
    layer = _layer(kind, **kw)
    x = np.random.default_rng(1).normal(size=(B, T, D)).astype("float32")
    layer(x, **call)
    assert len(builtin.calls) == int(delegated)


def test_simple_rnn_is_never_delegated(monkeypatch):
    builtin = KerasBuiltin()
    monkeypatch.setattr(cudnn, "_keras_rnn", builtin)
    keras_gated.SimpleRNN(U)(np.ones((B, T, D), "float32"))
    assert builtin.calls == []


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_without_a_gpu_the_layer_runs_its_own_loop(kind, monkeypatch):
    """Keras refuses (NotImplementedError) without a GPU: the output is the reference path's."""
    rng = np.random.default_rng(2)
    x, states = rng.normal(size=(B, T, D)).astype("float32"), _states(kind, rng)
    layer = _layer(kind)
    refusing = KerasBuiltin(refuse=True)
    monkeypatch.setattr(cudnn, "_keras_rnn", refusing)
    got = layer(x, initial_state=states)
    assert len(refusing.calls) == 1  # delegation was tried
    monkeypatch.setattr(cudnn, "applies", lambda cell: False)
    want = layer(x, initial_state=states)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_no_delegation_in_bfloat16_or_within_disabled(monkeypatch):
    """cuDNN has no bfloat16 RNN; tf2onnx traces under `disabled()` (it cannot convert cuDNN)."""
    builtin = KerasBuiltin()
    monkeypatch.setattr(cudnn, "_keras_rnn", builtin)
    layer = _layer("lstm")
    states = _states("lstm", np.random.default_rng(0))
    x = np.ones((B, T, D), "float32")
    assert cudnn.recurrence(layer.cell, tf.cast(x, tf.bfloat16), states, True, False) is None
    with cudnn.disabled():
        layer(x)
    assert builtin.calls == []
    layer(x)  # and on again after the block
    assert len(builtin.calls) == 1


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keras_accepts_our_arguments_for_cudnn(kind, monkeypatch):
    """Keras's real `lstm`/`gru`, told a GPU is there, pass our call on to their cuDNN function
    (replaced by a recorder) with our weights: the checks a GPU would run, run on CPU."""
    rnn = cudnn._keras_rnn
    reached = []

    def recorder(inputs, *args, **kwargs):
        reached.append(args)
        return "cudnn"

    monkeypatch.setattr(rnn, "_is_gpu_available", lambda: True)
    monkeypatch.setattr(rnn, f"_cudnn_{kind}", recorder)
    layer = _layer(kind)
    states = _states(kind, np.random.default_rng(0))
    x = np.ones((B, T, D), "float32")
    assert cudnn.recurrence(layer.cell, x, states, True, False) == "cudnn"
    n_states = len(states)
    handed_states, weights = reached[0][:n_states], reached[0][n_states : n_states + 3]
    for got, want in zip(handed_states, states):
        np.testing.assert_array_equal(np.asarray(got), want)
    for got, want in zip(
        weights, (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert reached[0][n_states + 3] is None  # no mask


@pytest.mark.skipif(cudnn.gpu_available(), reason="a GPU is visible")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_real_keras_functions_are_reached_and_refuse_without_a_gpu(kind):
    layer = _layer(kind)
    states = _states(kind, np.random.default_rng(0))
    x = np.ones((B, T, D), "float32")
    assert callable(getattr(cudnn._keras_rnn, kind))
    assert cudnn.recurrence(layer.cell, x, states, True, False) is None


@pytest.mark.skipif(not cudnn.gpu_available(), reason="needs a GPU (cuDNN)")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_on_a_gpu_cudnn_equals_the_reference_path(kind, monkeypatch):
    """The real kernel: outputs, final states and every gradient, with input dropout on."""
    delegated, real = [], getattr(cudnn._keras_rnn, kind)
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)  # both sides in float32
    try:
        results = _both_paths(kind, monkeypatch, real, delegated)
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
    assert delegated == [1]  # cuDNN ran (Keras raised nothing), once: the delegating layer
    for g, w in zip(*results):
        np.testing.assert_allclose(g, w, atol=1e-4 * max(1.0, np.abs(w).max()), rtol=0)


def _both_paths(kind, monkeypatch, real, delegated):
    """[outputs, final states, gradients] of a delegating layer, then of the reference path."""
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(B, T, D)).astype("float32"))
    states = [tf.constant(s) for s in _states(kind, rng)]
    results = []
    monkeypatch.setattr(
        cudnn._keras_rnn, kind, lambda *a, **k: delegated.append(1) or real(*a, **k)
    )
    for delegate in (True, False):
        layer = _layer(kind, dropout=0.3, seed=5, return_sequences=True)
        with monkeypatch.context() as patch:
            if not delegate:
                patch.setattr(cudnn, "applies", lambda cell: False)
                patch.setattr(fused, "applies", lambda cell: False)
            with tf.GradientTape() as tape:
                tape.watch([x, *states])
                ys, *final = layer(x, initial_state=states, training=True)
                loss = tf.reduce_sum(ys * ys) + sum(tf.reduce_sum(s) for s in final)
            grads = tape.gradient(loss, [*layer.trainable_variables, x, *states])
            results.append([np.asarray(r) for r in (ys, *final, *grads)])
    return results
