"""`TimeDistributed` around a recurrent layer exports as one native node over the folded batch.

x (B, N, T, D) -> TimeDistributed(recurrent) -> (B, N, U) or (B, N, T, U): Keras runs the
layer on each x[:, i]; the export reshapes to (B*N, T, D), runs one LSTM/GRU/RNN node (one
for a Bidirectional) and reshapes back, where tf2onnx made one node or Loop per slice. Checked
on our layers and Keras's, static and dynamic N and T, with the (B, N, T) mask of an
`Embedding(mask_zero=True)` (rows left-padded, right-padded, holed and empty), and around the
other layers we lower.
"""

import keras
import numpy as np
import pytest

import keras_gated
from keras_gated.export import to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, op_types, randomize

# float32 onnxruntime vs float32 Keras at N <= 3, T <= 6, U <= 5: measured max 1.8e-7; a
# slice mixed with another (a wrong fold order) or a lost mask shows as O(0.1).
TD_ATOL = 1e-5
V, E, D, U = 11, 4, 3, 5
IMPLS = {"ours": keras_gated, "keras": keras.layers}


def recurrent(impl, kind):
    """The layer TimeDistributed wraps, from our layers or Keras's."""
    rnn = IMPLS[impl]
    return {
        "lstm": lambda: rnn.LSTM(U),
        "gru_sequences": lambda: rnn.GRU(U, return_sequences=True, reset_after=False),
        "simple_rnn_backwards": lambda: rnn.SimpleRNN(U, go_backwards=True),
        "bidirectional_lstm": lambda: keras.layers.Bidirectional(
            rnn.LSTM(U, return_sequences=True)
        ),
    }[kind]()


def parity(tmp_path, model, x):
    """Exports `model`; (types of its nodes, max |onnxruntime - Keras| on x, the result)."""
    import onnxruntime as ort

    path = tmp_path / "model.onnx"
    result = to_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {model.inputs[0].name: x})
    want = keras.ops.convert_to_numpy(model(x, training=False))
    assert got.shape == want.shape
    return op_types(path), float(np.max(np.abs(got - want))), result


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize(
    "kind", ["lstm", "gru_sequences", "simple_rnn_backwards", "bidirectional_lstm"]
)
@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_one_native_node_for_every_slice(tmp_path, impl, kind, static):
    n, t = 3, 6
    inputs = keras.Input((n, t, D) if static else (None, None, D), name="x")
    layer = keras.layers.TimeDistributed(recurrent(impl, kind))
    model = randomize(keras.Model(inputs, keras.layers.Dense(2)(layer(inputs))))
    x = np.random.default_rng(1).standard_normal((2, n, t, D)).astype("float32")

    types, diff, result = parity(tmp_path, model, x)

    assert len([t for t in types if t in RECURRENT_OPS]) == 1
    assert not [t for t in types if t in LOOP_OPS]
    assert result.tf2onnx_layers == [] and layer.name in result.lowered_layers
    assert diff <= TD_ATOL


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_mask_of_each_slice_reaches_its_sequence(tmp_path, impl):
    """ids (B, N, T) -> Embedding(mask_zero) -> TD(LSTM(rs)) -> TD(GRU): the (B, N, T) mask
    folds to (B*N, T), one mask per slice."""
    rnn = IMPLS[impl]
    ids = keras.Input((3, 6), dtype="int32", name="ids")
    x = keras.layers.Embedding(V, E, mask_zero=True)(ids)
    x = keras.layers.TimeDistributed(rnn.LSTM(U, return_sequences=True))(x)
    x = keras.layers.TimeDistributed(rnn.GRU(U))(x)
    model = randomize(keras.Model(ids, x))
    tokens = np.random.default_rng(2).integers(1, V, (2, 3, 6)).astype("int32")
    tokens[0, 0, :2] = 0  # left-padded
    tokens[0, 1, -3:] = 0  # right-padded
    tokens[0, 2, 3] = 0  # a hole
    tokens[1, 1, :] = 0  # an empty slice: its states stay zero
    types, diff, result = parity(tmp_path, model, tokens)
    assert len([t for t in types if t in RECURRENT_OPS]) == 2
    assert not [t for t in types if t in LOOP_OPS]
    assert result.tf2onnx_layers == []
    assert diff <= TD_ATOL


def test_other_lowered_layers_inside(tmp_path):
    """TimeDistributed over Dense, Activation, BatchNormalization, Reshape and a masked
    GlobalAveragePooling1D: all lowered natively (no tf2onnx piece)."""
    x_in = keras.Input((3, 6, D), name="x")
    x = keras.layers.Masking(0.0)(x_in)  # mask (B, N, T)
    x = keras.layers.TimeDistributed(keras.layers.Dense(4, activation="tanh"))(x)
    x = keras.layers.TimeDistributed(keras.layers.Activation("gelu"))(x)
    x = keras.layers.TimeDistributed(keras.layers.BatchNormalization())(x)
    x = keras.layers.TimeDistributed(keras.layers.Reshape((12, 2)))(x)
    x = keras.layers.TimeDistributed(keras.layers.Reshape((6, 4)))(x)
    x = keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling1D())(x)
    model = keras.Model(x_in, x)
    for variable in model.weights:  # moving variances stay positive
        value = np.random.default_rng(3).uniform(0.5, 1.5, variable.shape)
        variable.assign(value.astype("float32"))
    xs = np.random.default_rng(4).standard_normal((2, 3, 6, D)).astype("float32")
    xs[0, 1, :2] = 0.0  # masked steps
    types, diff, result = parity(tmp_path, model, xs)
    assert result.tf2onnx_layers == []
    assert diff <= TD_ATOL
