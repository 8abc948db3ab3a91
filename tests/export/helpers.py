"""Shared helpers for the export tests: tiny random models, a tokenizer, onnxruntime runs.

Weights are random everywhere (constant weights hide swapped gates, STYLE.md) and initial
states random and non-zero. Sizes V=23, E=U=8, T=7 (a LanguageModel's output projection
needs U = E even untied); the chain tests use U != D, which a kernel/recurrent-kernel mix-up
cannot survive.
"""

import numpy as np
import onnx
import onnxruntime as ort

V, E, U, B, T = 23, 8, 8, 2, 7
WEIGHT_SCALE = 0.3  # weights ~ N(0, 0.3^2): gates well away from saturation
STATE_SCALE = 0.5

# float32 onnxruntime against float32 Keras: the same products summed in another order over
# T=7 steps differ by O(1e-7)..O(1e-6) at these sizes (measured max ~3e-7); 1e-4 is to_onnx's
# default and leaves 100x margin while a swapped gate or bias shows as O(0.1).
PARITY_ATOL = 1e-4

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
LOOP_OPS = ("Loop", "Scan", "If")


def randomize(model, seed=0):
    """Sets every variable of `model` to N(0, WEIGHT_SCALE^2)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign((WEIGHT_SCALE * rng.standard_normal(variable.shape)).astype("float32"))
    return model


def make_lm(cell="lstm", num_layers=1, tie_weights=True, seed=0, **cell_options):
    """A built `LanguageModel` with random weights."""
    import keras_gated

    model = keras_gated.language_model(
        V,
        cell=cell,
        embed_dim=E,
        units=U,
        num_layers=num_layers,
        tie_weights=tie_weights,
        cell_options=cell_options,
        dropout=0.3,
        embed_dropout=0.2,
    )
    return randomize(model, seed)


def char_tokenizer():
    """A CharTokenizer with exactly V ids: <unk> then 22 letters."""
    from keras_gated.data.tokenizers import CharTokenizer

    return CharTokenizer(vocabulary=["<unk>"] + list("abcdefghijklmnopqrstuv"))


def random_inputs(num_states_sizes, seed=1, batch=B, time=T):
    """Random token ids (batch, time) and random non-zero states, one per size."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, V, size=(batch, time), dtype=np.int64)
    states = [
        (STATE_SCALE * rng.standard_normal((batch, s))).astype(np.float32) for s in num_states_sizes
    ]
    return tokens, states


def keras_forward(model, tokens, states):
    """`model.call_with_states` at inference, as numpy (on any backend)."""
    from keras.ops import convert_to_numpy

    logits, final = model.call_with_states(tokens, list(states), training=False)
    return convert_to_numpy(logits), [convert_to_numpy(s) for s in final]


def ort_forward(path, tokens, states):
    """One onnxruntime run of an exported file: (logits, final states), by interface names."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state_inputs = [i.name for i in session.get_inputs() if i.name != "tokens"]
    feeds = {"tokens": tokens, **dict(zip(state_inputs, states))}
    outputs = ["logits"] + [f"{name}_out" for name in state_inputs]
    logits, *final = session.run(outputs, feeds)
    return logits, final


def assert_runtime_parity(model, path):
    """onnxruntime on the file at `path` equals Keras's `call_with_states` (logits and final
    states) on random tokens and random non-zero states."""
    tokens, states = random_inputs(model.state_sizes)
    got_logits, got_states = ort_forward(path, tokens, states)
    want_logits, want_states = keras_forward(model, tokens, states)
    assert max_diff([got_logits, *got_states], [want_logits, *want_states]) <= PARITY_ATOL


def assert_streaming_equals_one_pass(lm, model):
    """`lm.step` (an `OnnxLanguageModel` of `model`) one token at a time, carrying the states,
    gives the logits and final states Keras gives on the whole sequence."""
    tokens, states = random_inputs(model.state_sizes)
    want_logits, want_states = keras_forward(model, tokens, states)
    step_states, logits = states, []
    for t in range(tokens.shape[1]):
        step_logits, step_states = lm.step(tokens[:, t : t + 1], step_states)
        logits.append(step_logits)
    assert (
        max_diff([np.concatenate(logits, 1), *step_states], [want_logits, *want_states])
        <= PARITY_ATOL
    )


def masked_features(seed=0):
    """Random features (3, 7, 4) with steps `Masking(0.0)` masks: the first two of row 0, the
    last three of row 1 and a hole at step 3 of row 2."""
    features = np.random.default_rng(seed).standard_normal((3, 7, 4)).astype(np.float32)
    features[0, :2] = features[1, -3:] = features[2, 3] = 0.0
    return features


def max_diff_from_keras(path, model, x):
    """max |onnxruntime - Keras| over all outputs of a one-input Keras `model`, exported to
    `path`, on x at inference."""
    from keras.ops import convert_to_numpy

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {model.inputs[0].name: x})
    return max_diff(got, [convert_to_numpy(t) for t in model(x, training=False)])


def op_types(path):
    """All node op types of the graph at `path`, subgraphs included."""
    types = []

    def walk(graph):
        for node in graph.node:
            types.append(node.op_type)
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    walk(attribute.g)
                for subgraph in attribute.graphs:
                    walk(subgraph)

    walk(onnx.load(str(path)).graph)
    return types


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - y))) for x, y in zip(a, b))
