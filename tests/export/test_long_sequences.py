"""Long sequences: 100,000 onnxruntime steps stay finite and match Keras; one graph for all lengths."""

import numpy as np
import pytest
import tensorflow as tf

from tests.export.helpers import V, make_lm

STEPS = 100_000
# After 100k steps both runs sit on the same bounded (tanh/sigmoid) trajectory; float32
# round-off differences are damped by the contractive random weights: measured ~1e-6.
LONG_ATOL = 1e-4


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hundred_thousand_onnxruntime_steps_match_keras(cell, tmp_path):
    from keras_gated.export import OnnxLanguageModel, to_onnx

    model = make_lm(cell)
    to_onnx(model, tmp_path / "m.onnx")
    runtime = OnnxLanguageModel(tmp_path / "m.onnx", providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(0).integers(0, V, STEPS)

    states = runtime.initial_states(1)
    for token in ids:
        logits, states = runtime.step(np.array([[token]], dtype=np.int64), states)
    assert np.all(np.isfinite(logits)) and all(np.all(np.isfinite(s)) for s in states)

    forward = tf.function(
        lambda x: model.call_with_states(x)
    )  # one while_loop, not 100k eager steps
    keras_logits, keras_states = forward(ids[None, :].astype("int32"))
    np.testing.assert_allclose(logits[0, -1], keras_logits[0, -1], atol=LONG_ATOL)
    for ours, theirs in zip(states, keras_states):
        np.testing.assert_allclose(ours, theirs, atol=LONG_ATOL)


def test_keras_layers_take_thousands_of_steps_with_one_graph():
    model = make_lm("lstm")
    traces = []

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32)])
    def run(tokens):
        traces.append(1)
        return model(tokens)

    for length in (3000, 4500, 10):
        out = run(np.zeros((2, length), "int32"))
        assert out.shape == (2, length, V) and np.all(np.isfinite(out))
    assert len(traces) == 1
