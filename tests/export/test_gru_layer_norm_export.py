"""A layer-normalised GRU has no native ONNX node: it exports as an explicit `Scan` of the
cell's equations (export/scan.py), listed under the loop layers. Parity with Keras in
onnxruntime for both reset placements, masks and directions, and token-by-token streaming
through `OnnxLanguageModel`."""

import keras
import pytest

import keras_gated
from keras_gated.export import OnnxLanguageModel, to_onnx
from tests.export.helpers import (
    PARITY_ATOL,
    RECURRENT_OPS,
    V,
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
    """A random 2-layer layer-normalised GRU language model, exported: (model, path, result)."""
    model = make_lm("gru", 2, layer_norm=True)
    path = tmp_path_factory.mktemp("ln_gru") / "lm.onnx"
    return model, path, to_onnx(model, path)


def test_language_model_is_one_scan_per_layer_with_parity(exported):
    model, path, result = exported
    assert result.loop_layers == [layer.name for layer in model.rnn_layers]
    assert not set(result.loop_layers) & set(result.lowered_layers)
    assert result.max_abs_diff <= PARITY_ATOL and result.tf2onnx_layers == []
    types = op_types(path)
    assert types.count("Scan") == 2 and not [t for t in types if t in RECURRENT_OPS]
    assert_runtime_parity(model, path)


def test_streaming_through_the_runtime_equals_one_pass(exported):
    """`OnnxLanguageModel.step` one token at a time carries the states as Keras does."""
    model, path, _ = exported
    lm = OnnxLanguageModel(path, providers=["CPUExecutionProvider"])
    assert lm.state_sizes == model.state_sizes
    assert_streaming_equals_one_pass(lm, model)
    generated = lm.generate_ids([1, 2, 3], tokens=5, seed=0)
    assert len(generated) == 5 and all(0 <= i < V for i in generated)


def test_masked_bidirectional_and_backwards_reset_before(tmp_path):
    """Masked steps (left, right, a hole), a Bidirectional layer-normalised GRU with
    reset_after=False ((L3) in the body) and a `go_backwards` one with its final state."""
    x = keras.Input((None, 4), name="x")
    y = keras.layers.Masking(0.0)(x)
    y = keras.layers.Bidirectional(
        keras_gated.GRU(5, layer_norm=True, reset_after=False, return_sequences=True), name="bi"
    )(y)
    y, h = keras_gated.GRU(3, layer_norm=True, go_backwards=True, return_state=True, name="back")(y)
    model = randomize(keras.Model(x, [y, h]))
    path = tmp_path / "ln_gru_masked.onnx"
    result = to_onnx(model, path)
    assert result.loop_layers == ["bi", "back"] and op_types(path).count("Scan") == 3
    assert max_diff_from_keras(path, model, masked_features()) <= PARITY_ATOL
