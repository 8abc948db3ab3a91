"""Zoneout at inference is its expectation s_t = p s_{t-1} + (1 - p) s'_t, a recurrence no
native ONNX node computes: an `LSTM` or `GRU` with zoneout exports as an explicit `Scan` of the
cell's equations (export/scan.py), listed under the loop layers. Parity with Keras in
onnxruntime, masks and directions, and token-by-token streaming through `OnnxLanguageModel`."""

import keras
import onnx
import pytest

import keras_gated
from keras_gated.export import OnnxLanguageModel, to_onnx
from tests.export.helpers import (
    PARITY_ATOL,
    RECURRENT_OPS,
    assert_runtime_parity,
    assert_streaming_equals_one_pass,
    make_lm,
    masked_features,
    max_diff_from_keras,
    op_types,
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
    bodies = [
        a.g
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "Scan"
        for a in n.attribute
        if a.name == "body"
    ]
    for body in bodies:  # the expectation of each zoned state, in the body
        assert {"h_zoned", "c_zoned"} <= {
            name.split("/")[-1].rsplit("_out", 1)[0] for n in body.node for name in n.output
        }
    assert_runtime_parity(model, path)


def test_streaming_through_the_runtime_equals_one_pass(exported):
    model, path, _ = exported
    lm = OnnxLanguageModel(path, providers=["CPUExecutionProvider"])
    assert_streaming_equals_one_pass(lm, model)


def test_masked_bidirectional_gru_and_backwards_lstm(tmp_path):
    """Masked steps (left, right, a hole), a Bidirectional GRU with zoneout (reset_after=False,
    no bias) and a `go_backwards` layer-normalised LSTM with zoneout on c only."""
    x = keras.Input((None, 4), name="x")
    y = keras.layers.Masking(0.0)(x)
    y = keras.layers.Bidirectional(
        keras_gated.GRU(5, zoneout=0.3, reset_after=False, use_bias=False, return_sequences=True),
        name="bi",
    )(y)
    y, h, c = keras_gated.LSTM(
        3, layer_norm=True, cell_zoneout=0.5, go_backwards=True, return_state=True, name="back"
    )(y)
    model = randomize(keras.Model(x, [y, h, c]))
    path = tmp_path / "zoneout_masked.onnx"
    result = to_onnx(model, path)
    assert result.loop_layers == ["bi", "back"] and op_types(path).count("Scan") == 3
    assert max_diff_from_keras(path, model, masked_features()) <= PARITY_ATOL
