"""Any Keras model: Bidirectional merge modes and mixed directions, nested models, shared
layers, stateful layers, export from JAX and torch, clear errors, and regressions of models
that once failed (IMDB classifier via tf2onnx, two-input seq2seq, Masking before a
TimeDistributed head, layer-normalised LSTM)."""

import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import ExportError, to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, op_types, randomize

# float32 onnxruntime vs float32 Keras at U <= 8, T <= 9: measured max ~3e-7.
MODEL_ATOL = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_both(path, model, feeds):
    """(onnxruntime outputs, Keras outputs) on `feeds`, in the model's output order."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([o.name for o in session.get_outputs()][: len(model.outputs)], feeds)
    xs = [feeds[x.name] for x in model.inputs]
    want = model(xs if len(xs) > 1 else xs[0], training=False)
    want = want if isinstance(want, (list, tuple)) else [want]
    return got, [np.asarray(w) for w in want]


def assert_equal_to_keras(path, model, feeds):
    got, want = run_both(path, model, feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert max(float(np.max(np.abs(g - w))) for g, w in zip(got, want)) <= MODEL_ATOL


def recurrent_ops(path):
    return [t for t in op_types(path) if t in RECURRENT_OPS]


def features(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- Bidirectional ----------------------------------------------------------------------------
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_bidirectional_merge_modes_and_states(tmp_path, return_sequences):
    x = keras.Input((None, 3), name="x")
    masked = keras.layers.Masking(0.0)(x)
    outputs = []
    for mode, cls in zip(
        ["concat", "sum", "mul", "ave", None],
        [
            keras_gated.LSTM,
            keras_gated.GRU,
            keras.layers.SimpleRNN,
            keras.layers.GRU,
            keras_gated.SimpleRNN,
        ],
    ):
        layer = cls(4, return_sequences=return_sequences, return_state=True)
        result = keras.layers.Bidirectional(layer, merge_mode=mode)(masked)
        outputs += list(result)
    model = randomize(keras.Model(x, outputs))
    path = tmp_path / "bi.onnx"
    result = to_onnx(model, path)
    assert result.tf2onnx_layers == [] and len(recurrent_ops(path)) == 5
    x = features((3, 6, 3))
    x[0, :2] = 0.0  # left padding, masked by Masking(0.0)
    assert_equal_to_keras(path, model, {"x": x})


def test_different_forward_and_backward_layers(tmp_path):
    """One node when ONNX allows it (per-direction activations), two when it does not (GRU
    reset placement is one attribute for both directions)."""
    x = keras.Input((None, 3), name="x")
    mask = keras.Input((None,), dtype="bool", name="mask")
    one = keras.layers.Bidirectional(
        keras_gated.SimpleRNN(4, return_sequences=True, activation="tanh"),
        backward_layer=keras.layers.SimpleRNN(
            4, return_sequences=True, activation="relu", go_backwards=True
        ),
    )(x, mask=mask)
    two = keras.layers.Bidirectional(
        keras.layers.GRU(4), backward_layer=keras_gated.GRU(4, reset_after=False, go_backwards=True)
    )(x, mask=mask)
    model = randomize(keras.Model([x, mask], [one, two]))
    path = tmp_path / "mixed.onnx"
    to_onnx(model, path)
    assert sorted(recurrent_ops(path)) == ["GRU", "GRU", "RNN"]
    valid = np.array([[1, 1, 1, 1, 0], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]], dtype=bool)
    assert_equal_to_keras(path, model, {"x": features((3, 5, 3)), "mask": valid})


# -- graphs ---------------------------------------------------------------------------------
def test_nested_models_shared_layers_and_merges(tmp_path):
    encoder = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.Masking(0.0),
            keras_gated.GRU(5, return_sequences=True),
        ],
        name="encoder",
    )
    shared = keras.layers.Bidirectional(keras.layers.LSTM(3), name="shared")
    a, b = keras.Input((None, 4), name="a"), keras.Input((None, 4), name="b")
    ha, hb = shared(encoder(a)), shared(encoder(b))  # the same layers on two inputs
    merged = keras.layers.Concatenate()([ha, hb, keras.layers.Subtract()([ha, hb])])
    outputs = [keras.layers.Dense(2, name="score")(merged), keras.layers.Multiply()([ha, hb])]
    model = randomize(keras.Model([a, b], outputs))
    path = tmp_path / "nested.onnx"
    result = to_onnx(model, path)
    assert result.tf2onnx_layers == [] and sorted(recurrent_ops(path)) == [
        "GRU",
        "GRU",
        "LSTM",
        "LSTM",
    ]
    graph = onnx.load(str(path)).graph
    assert [v.name for v in graph.input] == ["a", "b"]
    assert [v.name for v in graph.output] == ["score", "multiply"]
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim[:2]] == [
        "batch",
        "a_time",
    ]
    xa, xb = features((3, 6, 4), 1), features((3, 5, 4), 2)
    xa[0, :3] = 0.0
    xb[1, -2:] = 0.0
    assert_equal_to_keras(path, model, {"a": xa, "b": xb})


def test_stateful_layers_carry_states_through_graph_inputs(tmp_path):
    x = keras.Input(batch_shape=(2, None, 3), name="x")
    y = keras_gated.LSTM(5, return_sequences=True, stateful=True)(x)
    y = keras.layers.GRU(4, return_sequences=True, stateful=True)(y)
    model = randomize(keras.Model(x, keras.layers.Dense(2)(y)))
    path = tmp_path / "stateful.onnx"
    result = to_onnx(model, path)
    assert result.max_abs_diff <= MODEL_ATOL
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "h_0", "c_0", "h_1"]
    names = [o.name for o in session.get_outputs()]
    assert names[1:] == ["h_0_out", "c_0_out", "h_1_out"]
    x = features((2, 6, 3))
    zeros = {
        "h_0": np.zeros((2, 5), np.float32),
        "c_0": np.zeros((2, 5), np.float32),
        "h_1": np.zeros((2, 4), np.float32),
    }
    whole, *final = session.run(names, {"x": x, **zeros})
    first, *mid = session.run(names, {"x": x[:, :4], **zeros})
    second, *end = session.run(names, {"x": x[:, 4:], **dict(zip(zeros, mid))})
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=MODEL_ATOL)
    for got, want in zip(end, final):
        np.testing.assert_allclose(got, want, atol=MODEL_ATOL)
    for layer in model.layers[1:3]:  # Keras, stateful, over the two halves equals the graph
        layer.reset_state()
    keras_first, keras_second = model(x[:, :4]), model(x[:, 4:])
    np.testing.assert_allclose(
        np.concatenate([keras_first, keras_second], 1), whole, atol=MODEL_ATOL
    )


# -- regressions ----------------------------------------------------------------------------
def test_imdb_classifier_on_our_layers_gets_native_nodes(tmp_path):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 8, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(keras_gated.LSTM(6, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras_gated.LSTM(6))(x)
    model = randomize(keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid")(x)))
    path = tmp_path / "imdb.onnx"
    result = to_onnx(model, path)
    assert recurrent_ops(path) == ["LSTM", "LSTM"] and not set(op_types(path)) & set(LOOP_OPS)
    assert result.tf2onnx_layers == []


def test_two_input_seq2seq_exports(tmp_path):
    encoder_inputs, decoder_inputs = keras.Input((None, 5)), keras.Input((None, 6))
    _, h, c = keras_gated.LSTM(8, return_state=True)(encoder_inputs)
    y = keras_gated.LSTM(8, return_sequences=True)(decoder_inputs, initial_state=[h, c])
    model = randomize(keras.Model([encoder_inputs, decoder_inputs], keras.layers.Dense(6)(y)))
    path = tmp_path / "seq2seq.onnx"
    to_onnx(model, path)
    assert recurrent_ops(path) == ["LSTM", "LSTM"]
    feeds = {encoder_inputs.name: features((2, 4, 5)), decoder_inputs.name: features((2, 7, 6))}
    assert_equal_to_keras(path, model, feeds)


def test_masking_before_time_distributed_head(tmp_path):
    model = randomize(
        keras.Sequential(
            [
                keras.Input((None, 4), name="x"),
                keras.layers.Masking(0.0),
                keras_gated.SimpleRNN(8, return_sequences=True),
                keras.layers.TimeDistributed(keras.layers.Dense(3)),
            ]
        )
    )
    path = tmp_path / "masking.onnx"
    to_onnx(model, path)
    x = features((2, 7, 4))
    x[0, 5:] = 0.0
    got, want = run_both(path, model, {"x": x})
    assert got[0].shape == (2, 7, 3)
    np.testing.assert_allclose(got[0], want[0], atol=MODEL_ATOL)


def test_layer_norm_lstm_exports_as_an_explicit_loop(tmp_path):
    x = keras.Input((None, 4), name="x")
    y = keras_gated.LSTM(16, layer_norm=True, return_sequences=True, name="ln")(x)
    model = randomize(keras.Model(x, keras.layers.Dense(2, name="head")(y)))
    path = tmp_path / "ln.onnx"
    result = to_onnx(model, path)
    assert result.loop_layers == ["ln"] and result.lowered_layers == ["head"]
    assert op_types(path).count("Scan") == 1 and not recurrent_ops(path)
    assert_equal_to_keras(path, model, {"x": features((2, 7, 4))})


def test_masked_bidirectional_layer_norm_lstm_with_peepholes(tmp_path):
    x = keras.Input((None, 4), name="x")
    y = keras.layers.Masking(0.0)(x)
    y = keras.layers.Bidirectional(
        keras_gated.LSTM(5, layer_norm=True, peephole=True, return_sequences=True), name="bi"
    )(y)
    y = keras_gated.LSTM(3, layer_norm=True, go_backwards=True, name="back")(y)
    model = randomize(keras.Model(x, y))
    path = tmp_path / "ln_masked.onnx"
    result = to_onnx(model, path)
    assert result.loop_layers == ["bi", "back"] and op_types(path).count("Scan") == 3
    x = features((3, 7, 4))
    x[0, :2] = x[1, -3:] = x[2, 3] = 0.0  # left, right, a hole
    assert_equal_to_keras(path, model, {"x": x})


def test_initial_state_passed_positionally_or_alone(tmp_path):
    x, h = keras.Input((None, 3), name="x"), keras.Input((4,), name="h")
    y = keras.layers.GRU(4, return_sequences=True)(x, h)  # one state, positional, no list
    y = keras_gated.SimpleRNN(4)(y, initial_state=h)
    model = randomize(keras.Model([x, h], y))
    path = tmp_path / "initial.onnx"
    to_onnx(model, path)
    assert_equal_to_keras(path, model, {"x": features((2, 5, 3)), "h": features((2, 4), 1)})


# -- errors ---------------------------------------------------------------------------------
# Keras computes in float16/bfloat16 under a mixed policy, the graph in float32: differences
# are the half-precision roundings, O(1e-3) on O(1) outputs (bfloat16 has 8 mantissa bits).
ATOL_MIXED_POLICY = 1e-2


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_precision_model_exports_as_a_float32_graph(tmp_path, policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = keras.Sequential(
            [
                keras.Input((None, 4)),
                keras_gated.LSTM(8, return_sequences=True),
                keras_gated.GRU(6),
                keras.layers.Dense(2),
            ]
        )
        result = to_onnx(model, str(tmp_path / "m.onnx"), atol=ATOL_MIXED_POLICY)
    finally:
        keras.config.set_dtype_policy(previous)
    graph = onnx.load(result.path).graph
    assert {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]} == {
        onnx.TensorProto.FLOAT
    }
    assert op_types(result.path).count("LSTM") == 1 and op_types(result.path).count("GRU") == 1


def test_python_lambda_refused_with_one_clear_error(tmp_path):
    x = keras.Input((None, 3), name="x")
    y = keras.layers.Lambda(
        lambda t: np.asarray(t) * 2.0, output_shape=(None, 3), name="numpy_code"
    )(x)
    model = keras.Model(x, keras_gated.GRU(4)(y))
    with pytest.raises(ExportError, match=r"layer 'numpy_code' \(Lambda\).*tf2onnx cannot"):
        to_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_unexportable_models_named(tmp_path):
    x = keras.Input(batch_shape=(2, None, 3))
    stateful = keras.Model(
        x, keras.layers.Bidirectional(keras.layers.GRU(4, stateful=True), name="bi")(x)
    )
    with pytest.raises(ExportError, match="'bi': a stateful Bidirectional"):
        to_onnx(stateful, tmp_path / "a.onnx")
    with pytest.raises(ExportError, match="not built"):
        to_onnx(keras.Sequential([keras_gated.GRU(3)]), tmp_path / "b.onnx")

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ExportError, match="subclassed"):
        to_onnx(Subclassed(), tmp_path / "c.onnx")


# -- backends -------------------------------------------------------------------------------
BACKEND_SCRIPT = """
import sys
import keras, numpy as np
from keras_gated.export import ExportError, to_onnx
tokens = keras.Input((None,), dtype="int32", name="tokens")
x = keras.layers.Embedding(20, 8, mask_zero=True)(tokens)
x = keras.layers.GRU(6, return_sequences=True, go_backwards=True)(x)
model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.LSTM(5)(x)))
result = to_onnx(model, sys.argv[1] + "/native.onnx")
assert result.tf2onnx_layers == [] and result.max_abs_diff <= 1e-5, result
assert not {"tensorflow", "tf2onnx"} & set(sys.modules), "TensorFlow imported"
# explicit mask and initial state: Keras's JAX backend emits h0 before a row's first valid step
x, mask, h0 = keras.Input((None, 3)), keras.Input((None,), dtype="bool"), keras.Input((4,))
y = keras.layers.GRU(4, return_sequences=True)(x, mask=mask, initial_state=[h0])
result = to_onnx(keras.Model([x, mask, h0], y), sys.argv[1] + "/masked.onnx")
assert result.max_abs_diff <= 1e-5, result
x = keras.Input((None, 3))
try:
    to_onnx(keras.Model(x, keras.layers.GRU(4)(keras.layers.Conv1D(3, 2)(x))),
            sys.argv[1] + "/conv.onnx")
    raise AssertionError("exported a Conv1D without TensorFlow")
except ExportError as error:
    assert "'conv1d' (Conv1D)" in str(error) and "KERAS_BACKEND=tensorflow" in str(error)
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)])
def test_native_export_from_other_backends(tmp_path, backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": ROOT}
    done = subprocess.run(
        [sys.executable, "-c", BACKEND_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["ok", backend]
