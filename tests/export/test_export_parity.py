"""Exported LanguageModels equal Keras, with one native node per recurrent layer.

Oracle: Keras's `model.call_with_states` on the same random tokens and random non-zero initial states,
run here (not through `to_onnx`'s own check) and compared with onnxruntime on the file.
"""

import numpy as np
import onnx
import pytest

from keras_gated.export import to_onnx
from tests.export.helpers import (
    LOOP_OPS,
    PARITY_ATOL,
    RECURRENT_OPS,
    E,
    V,
    keras_forward,
    make_lm,
    max_diff,
    op_types,
    ort_forward,
    random_inputs,
    randomize,
)

CELLS = {  # id -> (cell, cell options, the ONNX op)
    "lstm": ("lstm", {}, "LSTM"),
    "lstm-peephole": ("lstm", {"peephole": True}, "LSTM"),
    "gru-reset_after": ("gru", {"reset_after": True}, "GRU"),
    "gru-reset_before": ("gru", {"reset_after": False}, "GRU"),
    "rnn-tanh": ("rnn", {"activation": "tanh"}, "RNN"),
    "rnn-relu": ("rnn", {"activation": "relu"}, "RNN"),
    "keras-lstm": ("keras-lstm", {}, "LSTM"),  # Keras's built-in layer inside our model
}


def _export(tmp_path, model, name="model.onnx", **kwargs):
    path = tmp_path / name
    return path, to_onnx(model, path, **kwargs)


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("case", sorted(CELLS))
def test_parity_and_structure(tmp_path, case, num_layers, tie_weights):
    cell, options, op = CELLS[case]
    model = make_lm(cell, num_layers, tie_weights, **options)
    path, result = _export(tmp_path, model)
    tokens, states = random_inputs(model.state_sizes)

    want_logits, want_states = keras_forward(model, tokens, states)
    got_logits, got_states = ort_forward(path, tokens, states)
    assert got_logits.shape == (2, 7, V)
    assert max_diff([got_logits, *got_states], [want_logits, *want_states]) <= PARITY_ATOL
    assert result.max_abs_diff <= PARITY_ATOL

    types = op_types(path)
    assert [t for t in types if t in RECURRENT_OPS] == [op] * num_layers
    assert not [t for t in types if t in LOOP_OPS]
    assert "Dropout" not in types
    assert result.tf2onnx_layers == []


def test_states_really_enter_the_graph(tmp_path):
    """Zero and non-zero initial states give different logits, in ONNX as in Keras."""
    model = make_lm("lstm", 2)
    path, _ = _export(tmp_path, model)
    tokens, states = random_inputs(model.state_sizes)
    zeros = [np.zeros_like(s) for s in states]
    with_states, with_zeros = ort_forward(path, tokens, states), ort_forward(path, tokens, zeros)
    assert max_diff(with_states[:1], with_zeros[:1]) > 1e-2


def test_tied_embedding_stored_once(tmp_path):
    model = make_lm("lstm", 2, tie_weights=True)
    path, result = _export(tmp_path, model)
    graph = onnx.load(str(path)).graph
    shapes = [tuple(t.dims) for t in graph.initializer]
    assert shapes.count((V, E)) == 1 and (E, V) not in shapes
    (table,) = [t.name for t in graph.initializer if tuple(t.dims) == (V, E)]
    gather = [n for n in graph.node if n.op_type == "Gather"]
    transpose = [n for n in graph.node if n.op_type == "Transpose" and n.input[0] == table]
    assert [n.input[0] for n in gather] == [table] and len(transpose) == 1
    assert any(n.op_type == "MatMul" and transpose[0].output[0] in n.input for n in graph.node)

    # Stored floats = the model's parameters + the zero recurrent biases Rb (4U per LSTM).
    floats = sum(
        int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT
    )
    rb_zeros = sum(4 * layer.units for layer in model.rnn_layers)
    assert floats == model.count_params() + rb_zeros
    # The file is those floats plus graph and metadata text (a few kB at these sizes).
    assert 4 * floats < result.file_size < 4 * floats + 16_000


def test_untied_reads_reverse_embeddings(tmp_path):
    model = make_lm("gru", 1, tie_weights=False)
    path, _ = _export(tmp_path, model)
    shapes = [tuple(t.dims) for t in onnx.load(str(path)).graph.initializer]
    assert shapes.count((V, E)) == 1 and shapes.count((E, V)) == 1
    reverse = np.asarray(model.embedding.reverse_embeddings)
    stored = [
        onnx.numpy_helper.to_array(t)
        for t in onnx.load(str(path)).graph.initializer
        if tuple(t.dims) == (E, V)
    ]
    np.testing.assert_array_equal(stored[0], reverse)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_token_by_token_equals_one_pass(tmp_path, cell):
    model = make_lm(cell, 2)
    path, _ = _export(tmp_path, model)
    tokens, states = random_inputs(model.state_sizes)
    whole_logits, whole_states = ort_forward(path, tokens, states)
    step_states, logits = states, []
    for t in range(tokens.shape[1]):
        step_logits, step_states = ort_forward(path, tokens[:, t : t + 1], step_states)
        logits.append(step_logits)
    assert (
        max_diff([np.concatenate(logits, axis=1), *step_states], [whole_logits, *whole_states])
        <= PARITY_ATOL
    )


def test_two_chunks_with_carried_state_equal_one_pass(tmp_path):
    model = make_lm("lstm", 2, peephole=True)
    path, _ = _export(tmp_path, model)
    tokens, states = random_inputs(model.state_sizes)
    whole_logits, whole_states = ort_forward(path, tokens, states)
    first, mid = ort_forward(path, tokens[:, :3], states)
    second, final = ort_forward(path, tokens[:, 3:], mid)
    assert (
        max_diff([np.concatenate([first, second], axis=1), *final], [whole_logits, *whole_states])
        <= PARITY_ATOL
    )


def test_interface_names_and_dynamic_axes(tmp_path):
    """Fixed names and named dynamic axes, as Triton's ONNX Runtime backend reads them."""
    model = make_lm("lstm", 2)
    path, _ = _export(tmp_path, model)
    graph = onnx.load(str(path)).graph

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs = {v.name: dims(v) for v in graph.input}
    outputs = {v.name: dims(v) for v in graph.output}
    assert inputs == {
        "tokens": ["batch", "time"],
        "h_0": ["batch", 8],
        "c_0": ["batch", 8],
        "h_1": ["batch", 8],
        "c_1": ["batch", 8],
    }
    assert outputs == {
        "logits": ["batch", "time", V],
        "h_0_out": ["batch", 8],
        "c_0_out": ["batch", 8],
        "h_1_out": ["batch", 8],
        "c_1_out": ["batch", 8],
    }
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [o.name for o in graph.output][0] == "logits"


def test_layer_norm_lstm_exports_as_a_scan(tmp_path):
    """No ONNX operator normalises gates: the cell's equations run in an explicit Scan."""
    model = make_lm("lstm", 2, layer_norm=True, peephole=True)
    path, result = _export(tmp_path, model)
    assert result.loop_layers == [layer.name for layer in model.rnn_layers]
    assert not set(result.loop_layers) & set(result.lowered_layers)
    types = op_types(path)
    assert types.count("Scan") == 2 and not [t for t in types if t in RECURRENT_OPS]
    tokens, states = random_inputs(model.state_sizes)
    got_logits, got_states = ort_forward(path, tokens, states)
    want_logits, want_states = keras_forward(model, tokens, states)
    assert max_diff([got_logits, *got_states], [want_logits, *want_states]) <= PARITY_ATOL


def test_stateful_model_exports_and_keeps_its_carried_state(tmp_path):
    """Verification runs a non-stateful copy: the model's carried BPTT state is untouched."""
    import keras_gated

    model = keras_gated.language_model(
        V, cell="lstm", embed_dim=E, units=8, num_layers=2, stateful=True
    )
    model.build((3, None))
    randomize(model)
    model(np.ones((3, 2), dtype="int32"))  # leaves a non-zero carried state
    before = [np.asarray(v) for layer in model.rnn_layers for v in layer.states]
    path, result = _export(tmp_path, model)
    assert result.max_abs_diff <= PARITY_ATOL
    after = [np.asarray(v) for layer in model.rnn_layers for v in layer.states]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)) and np.abs(before[0]).max() > 0
    assert op_types(path).count("LSTM") == 2
