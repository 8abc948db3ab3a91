"""Zoneout at inference is its expectation s_t = p s_{t-1} + (1 - p) s'_t, a recurrence no
native ONNX node computes: an `LSTM` or `GRU` with zoneout exports as an explicit `Scan` of the
cell's equations (export/scan.py), listed under the loop layers. Parity with Keras in
onnxruntime, masks and directions, and token-by-token streaming through `OnnxLanguageModel`."""

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import OnnxLanguageModel, to_onnx
from tests.export.helpers import (
    PARITY_ATOL,
    RECURRENT_OPS,
    keras_forward,
    make_lm,
    max_diff,
    op_types,
    ort_forward,
    random_inputs,
    randomize,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random 2-layer LSTM language model with zoneout on h and c, exported."""
    model = make_lm("lstm", 2, zoneout=0.2, cell_zoneout=0.4)
    path = tmp_path_factory.mktemp("zoneout") / "lm.onnx"
    return model, path, to_onnx(model, path)


def test_language_model_is_one_scan_per_layer_with_parity(exported):
    model, path, result = exported
    assert result.loop_layers == [layer.name for layer in model.rnn_layers]
    assert result.max_abs_diff <= PARITY_ATOL and result.tf2onnx_layers == []
    types = op_types(path)
    assert types.count("Scan") == 2 and not [t for t in types if t in RECURRENT_OPS]
    bodies = [a.g for n in onnx.load(str(path)).graph.node if n.op_type == "Scan"
              for a in n.attribute if a.name == "body"]
    for body in bodies:  # the expectation of each zoned state, in the body
        assert {"h_zoned", "c_zoned"} <= {name.split("/")[-1].rsplit("_out", 1)[0]
                                          for n in body.node for name in n.output}
    tokens, states = random_inputs(model.state_sizes)
    got_logits, got_states = ort_forward(path, tokens, states)
    want_logits, want_states = keras_forward(model, tokens, states)
    assert max_diff([got_logits, *got_states], [want_logits, *want_states]) <= PARITY_ATOL


def test_streaming_through_the_runtime_equals_one_pass(exported):
    model, path, _ = exported
    lm = OnnxLanguageModel(path, providers=["CPUExecutionProvider"])
    tokens, states = random_inputs(model.state_sizes)
    want_logits, want_states = keras_forward(model, tokens, states)
    step_states, logits = states, []
    for t in range(tokens.shape[1]):
        step_logits, step_states = lm.step(tokens[:, t:t + 1], step_states)
        logits.append(step_logits)
    assert max_diff([np.concatenate(logits, 1), *step_states],
                    [want_logits, *want_states]) <= PARITY_ATOL


def test_masked_bidirectional_gru_and_backwards_lstm(tmp_path):
    """Masked steps (left, right, a hole), a Bidirectional GRU with zoneout (reset_after=False,
    no bias) and a `go_backwards` layer-normalised LSTM with zoneout on c only."""
    x = keras.Input((None, 4), name="x")
    y = keras.layers.Masking(0.0)(x)
    y = keras.layers.Bidirectional(keras_gated.GRU(5, zoneout=0.3, reset_after=False,
                                                   use_bias=False, return_sequences=True),
                                   name="bi")(y)
    y, h, c = keras_gated.LSTM(3, layer_norm=True, cell_zoneout=0.5, go_backwards=True,
                               return_state=True, name="back")(y)
    model = randomize(keras.Model(x, [y, h, c]))
    path = tmp_path / "zoneout_masked.onnx"
    result = to_onnx(model, path)
    assert result.loop_layers == ["bi", "back"] and op_types(path).count("Scan") == 3
    features = np.random.default_rng(0).standard_normal((3, 7, 4)).astype(np.float32)
    features[0, :2] = features[1, -3:] = features[2, 3] = 0.0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": features})
    want = [keras.ops.convert_to_numpy(t) for t in model(features, training=False)]
    assert max_diff(got, want) <= PARITY_ATOL
