"""IndRNN exports as one native ONNX `RNN` node per layer, R = diag(u): parity with Keras in
onnxruntime, the node count, and token-by-token streaming through `OnnxLanguageModel`."""

import keras
import numpy as np
import onnx
import pytest

import keras_gated
from keras_gated.export import OnnxLanguageModel, to_onnx
from tests.export.helpers import (
    LOOP_OPS,
    PARITY_ATOL,
    RECURRENT_OPS,
    V,
    assert_runtime_parity,
    assert_streaming_equals_one_pass,
    make_lm,
    op_types,
    random_inputs,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random 2-layer IndRNN (tanh) language model after one training step (dropout on),
    exported: (model, path, ExportResult)."""
    model = make_lm("indrnn", 2)
    model.compile(
        keras.optimizers.SGD(1.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    tokens, _ = random_inputs(model.state_sizes, seed=3, batch=4)
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]
    loss = model.train_on_batch(tokens[:, :-1], tokens[:, 1:])
    after = [keras.ops.convert_to_numpy(w) for w in model.weights]
    assert np.isfinite(loss) and any(not np.array_equal(a, b) for a, b in zip(after, before))
    path = tmp_path_factory.mktemp("indrnn") / "lm.onnx"
    return model, path, to_onnx(model, path)


def test_language_model_parity_and_one_rnn_node_per_layer(exported):
    model, path, result = exported
    assert_runtime_parity(model, path)
    assert result.max_abs_diff <= PARITY_ATOL
    types = op_types(path)
    assert [t for t in types if t in RECURRENT_OPS] == ["RNN", "RNN"]
    assert not [t for t in types if t in LOOP_OPS] and result.tf2onnx_layers == []
    graph = onnx.load(str(path)).graph
    nodes = [n for n in graph.node if n.op_type == "RNN"]
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node, layer in zip(nodes, model.rnn_layers):
        R = initializers[node.input[2]][0]  # (U, U), one direction
        u = keras.ops.convert_to_numpy(layer.cell.recurrent_kernel)
        np.testing.assert_array_equal(R, np.diag(u))
        (acts,) = [a for a in node.attribute if a.name == "activations"]
        assert [s.decode() for s in acts.strings] == ["Tanh"]


def test_streaming_through_the_runtime_equals_one_pass(exported):
    """`OnnxLanguageModel.step` one token at a time carries the IndRNN states as Keras does."""
    model, path, _ = exported
    lm = OnnxLanguageModel(path, providers=["CPUExecutionProvider"])
    assert lm.state_sizes == model.state_sizes
    assert_streaming_equals_one_pass(lm, model)
    generated = lm.generate_ids([1, 2, 3], tokens=5, seed=0)
    assert len(generated) == 5 and all(0 <= i < V for i in generated)


def test_masked_bidirectional_and_backwards_layers(tmp_path):
    """A padded batch (`mask_zero`), a Bidirectional IndRNN (one node, both directions) and a
    `go_backwards` IndRNN with final state: `to_onnx`'s own check runs masked inputs."""
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(V, 5, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras_gated.IndRNN(4, activation="relu", return_sequences=True))(
        x
    )
    y, h = keras_gated.IndRNN(6, activation="tanh", go_backwards=True, return_state=True)(x)
    model = keras.Model(inputs, [y, h])
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    path = tmp_path / "layers.onnx"
    result = to_onnx(model, path)
    assert result.max_abs_diff <= PARITY_ATOL
    types = op_types(path)
    assert [t for t in types if t in RECURRENT_OPS] == ["RNN", "RNN"]
    assert not [t for t in types if t in LOOP_OPS]
    directions = [
        a.s.decode()
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "RNN"
        for a in n.attribute
        if a.name == "direction"
    ]
    assert directions == ["bidirectional", "reverse"]
