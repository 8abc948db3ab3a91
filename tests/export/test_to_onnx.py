"""`to_onnx`: files written atomically or not at all, chains of layers, tf2onnx pieces, int8."""

import os

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import keras_gated
import keras_gated.export.exporter as exporter
from keras_gated.export import ExportResult, OnnxLanguageModel, to_onnx
from tests.export.helpers import (
    LOOP_OPS,
    PARITY_ATOL,
    RECURRENT_OPS,
    V,
    char_tokenizer,
    make_lm,
    op_types,
    randomize,
)

# Dynamic int8 quantization of a tiny random LSTM moves perplexity by well under 1% (measured
# ~0.1%); 5% still catches a broken quantized graph (scores off by far more).
INT8_PPL_RTOL = 0.05
TEXT = "a bad cab fed a dead bee; ghijk lmnop qrstuv, then abc again and again"


def _parity(path, model, feeds):
    """onnxruntime on `path` vs Keras's `model` on the same inputs (fed by Keras's names)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()][: len(model.outputs)]
    got = session.run(names, feeds)
    want = model(
        [feeds[x.name] for x in model.inputs]
        if len(model.inputs) > 1
        else feeds[model.inputs[0].name]
    )
    want = want if isinstance(want, (list, tuple)) else [want]
    return max(float(np.max(np.abs(g - np.asarray(w)))) for g, w in zip(got, want))


# -- files ----------------------------------------------------------------------------------
def test_existing_file_and_directory_refused(tmp_path):
    model = make_lm("rnn", 1)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_onnx(model, path)
    assert path.read_bytes() == b"old"
    result = to_onnx(model, path, overwrite=True)
    assert isinstance(result, ExportResult) and result.file_size == os.path.getsize(path) > 3
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        to_onnx(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        to_onnx(model, tmp_path / "no" / "m.onnx")


def test_failing_verification_writes_nothing(tmp_path, monkeypatch):
    model = make_lm("lstm", 1)
    monkeypatch.setattr(exporter, "max_abs_diff", lambda data, lowered: 0.5)
    fresh = tmp_path / "fresh.onnx"
    with pytest.raises(ValueError, match=r"differs from Keras by 0\.5 > atol=0\.0001"):
        to_onnx(model, fresh)
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="nothing written"):
        to_onnx(model, existing, overwrite=True, quantize="int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.onnx"]  # no temp files
    assert existing.read_bytes() == b"keep me"


def test_bad_arguments(tmp_path):
    model = make_lm("gru", 1)
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, path, opset=19)
    with pytest.raises(ValueError, match="quantize"):
        to_onnx(model, path, quantize="int4")
    with pytest.raises(ValueError, match="atol"):
        to_onnx(model, path, atol=0)
    small = char_tokenizer().__class__(vocabulary=["<unk>", "a", "b"])
    with pytest.raises(ValueError, match="tokenizer has 3 tokens"):
        to_onnx(model, path, tokenizer=small)
    assert not path.exists()


# -- int8 -------------------------------------------------------------------------------------
def test_int8_quantization(tmp_path):
    model = make_lm("lstm", 2)
    path = tmp_path / "lm.onnx"
    result = to_onnx(model, path, tokenizer=char_tokenizer(), quantize="int8")
    assert result.quantized_path == str(tmp_path / "lm.int8.onnx")
    assert result.quantized_size == os.path.getsize(result.quantized_path)
    types = op_types(result.quantized_path)
    assert types.count("DynamicQuantizeLSTM") == 2 and "LSTM" not in types
    # the tied projection gets its own int8 weight: E is never dequantized and transposed per call
    graph = onnx.load(result.quantized_path).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert "MatMulInteger" in types
    assert not [n for n in graph.node if n.op_type == "Transpose" and n.input[0] in dequantized]
    full, int8 = OnnxLanguageModel(path), OnnxLanguageModel(result.quantized_path)
    assert int8.metadata["quantization"] == "int8"
    assert int8.metadata["model_config"] == full.metadata["model_config"]
    assert int8.score(TEXT) == pytest.approx(full.score(TEXT), rel=INT8_PPL_RTOL)
    (tmp_path / "again.int8.onnx").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="again.int8.onnx"):  # the sibling is guarded too
        to_onnx(model, tmp_path / "again.onnx", quantize="int8")
    assert not (tmp_path / "again.onnx").exists()


# -- models other than language models ---------------------------------------------------------
def test_sequential_with_layer_normalization_goes_through_tf2onnx(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32", name="ids"),
            keras.layers.Embedding(V, 8, name="embed"),
            keras_gated.LSTM(6, return_sequences=True, name="lstm"),  # U=6 != D=8
            keras.layers.LayerNormalization(name="norm"),
            keras.layers.Dropout(0.5, name="drop"),
            keras_gated.GRU(5, return_sequences=True, name="gru"),
            keras.layers.Dense(V, name="head"),
        ]
    )
    randomize(model)
    path = tmp_path / "seq.onnx"
    result = to_onnx(model, path)
    assert result.tf2onnx_layers == ["norm"]
    assert result.lowered_layers == ["embed", "lstm", "drop", "gru", "head"]
    assert result.max_abs_diff <= PARITY_ATOL
    types = op_types(path)
    assert [t for t in types if t in RECURRENT_OPS] == ["LSTM", "GRU"]
    assert not [t for t in types if t in LOOP_OPS]
    tokens = np.random.default_rng(0).integers(0, V, (2, 7)).astype(np.int32)
    assert _parity(path, model, {"ids": tokens}) <= PARITY_ATOL
    graph = onnx.load(str(path)).graph
    assert [v.name for v in graph.input] == ["ids"] and [v.name for v in graph.output] == ["head"]
    with pytest.raises(ValueError, match="no state inputs"):  # nothing to carry between calls
        OnnxLanguageModel(path)


def test_stateful_sequential_is_a_language_model_for_the_runtime(tmp_path):
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, None), dtype="int32", name="ids"),
            keras.layers.Embedding(V, 8),
            keras_gated.LSTM(6, return_sequences=True, stateful=True),
            keras.layers.GRU(5, return_sequences=True, stateful=True),
            keras.layers.Dense(V),
        ]
    )
    randomize(model)
    path = tmp_path / "stateful.onnx"
    result = to_onnx(model, path, tokenizer=char_tokenizer())
    assert result.max_abs_diff <= PARITY_ATOL and result.tf2onnx_layers == []
    lm = OnnxLanguageModel(path)  # a token model with states: the runtime takes it
    assert lm.state_names == ["h_0", "c_0", "h_1"] and lm.score("abcabc") > 1.0
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # not Keras's 2


def test_functional_chain_backwards_and_last_output(tmp_path):
    inputs = keras.Input((None, 4), name="x")
    x = keras_gated.SimpleRNN(6, go_backwards=True, return_sequences=True, name="rnn")(inputs)
    x = keras_gated.GRU(5, go_backwards=True, reset_after=False, name="gru")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = randomize(keras.Model(inputs, outputs))
    path = tmp_path / "f.onnx"
    result = to_onnx(model, path)
    assert result.lowered_layers == ["rnn", "gru", "head"] and result.tf2onnx_layers == []
    assert result.max_abs_diff <= PARITY_ATOL
    graph = onnx.load(str(path)).graph
    assert [v.name for v in graph.input] == ["x"] and [v.name for v in graph.output] == ["head"]
    x = np.random.default_rng(1).standard_normal((2, 7, 4)).astype(np.float32)
    assert _parity(path, model, {"x": x}) <= PARITY_ATOL
    with pytest.raises(ValueError, match="not a language model"):
        OnnxLanguageModel(path)


def test_branching_model_lowered_natively(tmp_path):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(V, 8)(tokens)
    x = keras.layers.Add()([keras.layers.Dense(8)(e), keras.layers.Dense(8, activation="relu")(e)])
    model = randomize(keras.Model(tokens, x))
    result = to_onnx(model, tmp_path / "b.onnx")
    assert len(result.lowered_layers) == 4 and result.tf2onnx_layers == []
    assert result.max_abs_diff <= PARITY_ATOL
