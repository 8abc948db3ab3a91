"""A drawn `ModelSpec` as two Keras models, ours and the built-in oracle, and its inputs.

`build(spec, "ours")` uses keras_gated's layers and cells (and, where the spec says so, Keras's
own cells inside RNN/StackedRNNCells); `build(spec, "keras")` uses only Keras's built-ins. Both
are built in the same order, so `get_weights()` lists line up and `copy_random_weights` gives
them the same random weights (constant weights hide swapped gates, STYLE.md).
"""

import keras
import numpy as np

import keras_gated
from tests.differential.grammar import CONTEXT, VOCAB

OURS_LAYERS = {
    "lstm": keras_gated.LSTM,
    "gru": keras_gated.GRU,
    "simple_rnn": keras_gated.SimpleRNN,
}
OURS_CELLS = {
    "lstm": keras_gated.LSTMCell,
    "gru": keras_gated.GRUCell,
    "simple_rnn": keras_gated.SimpleRNNCell,
}
KERAS_LAYERS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}
KERAS_CELLS = {
    "lstm": keras.layers.LSTMCell,
    "gru": keras.layers.GRUCell,
    "simple_rnn": keras.layers.SimpleRNNCell,
}
WEIGHT_SCALE = 0.6  # uniform(-0.6, 0.6): pre-activations O(1), gates away from saturation
HEAD_UNITS = 3


@keras.saving.register_keras_serializable(package="keras_gated_tests")
class MaskProbe(keras.layers.Layer):
    """Outputs the mask its input carries, as float (B, T); (B, 1) of -1 when there is none.

    Keras hands a layer the mask of its input through the public `mask` call argument, so
    appending this layer makes the propagated mask a model output on every path (eager,
    predict, tf.function, a reloaded file) without reading private attributes.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return -keras.ops.ones_like(inputs[:, :1, 0])
        return keras.ops.cast(mask, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[:2]

    def compute_mask(self, inputs, mask=None):
        return None


def cell(spec, impl):
    """A cell for keras.layers.RNN / StackedRNNCells."""
    table = OURS_CELLS if impl == "ours" and not spec.keras_cell else KERAS_CELLS
    return table[spec.kind](spec.units, **spec.kw)


def layer(spec, impl, **layer_kw):
    table = OURS_LAYERS if impl == "ours" else KERAS_LAYERS
    return table[spec.kind](spec.units, **spec.kw, **layer_kw)


def block_layer(block, impl):
    """The Keras layer of one BlockSpec."""
    kw = dict(
        return_sequences=block.return_sequences,
        return_state=block.return_state,
        stateful=block.stateful,
    )
    if block.wrapper == "layer":
        return layer(block.cells[0], impl, go_backwards=block.go_backwards, **kw)
    if block.wrapper == "rnn":
        return keras.layers.RNN(cell(block.cells[0], impl), go_backwards=block.go_backwards, **kw)
    if block.wrapper == "stacked":
        stack = keras.layers.StackedRNNCells([cell(c, impl) for c in block.cells])
        return keras.layers.RNN(stack, go_backwards=block.go_backwards, **kw)
    forward = layer(block.cells[0], impl, **kw)
    backward = None
    if block.backward is not None:
        backward = layer(block.backward, impl, go_backwards=True, **kw)
    return keras.layers.Bidirectional(forward, merge_mode=block.merge_mode, backward_layer=backward)


def head_layer(head):
    return {
        "time_distributed": lambda: keras.layers.TimeDistributed(keras.layers.Dense(HEAD_UNITS)),
        "dense": lambda: keras.layers.Dense(HEAD_UNITS),
        "pooling": keras.layers.GlobalAveragePooling1D,
    }[head]()


def model_inputs(spec):
    """(the Keras Input tensors, the features tensor, the explicit mask or None, the initial
    states or None), each Input named after its array in `arrays`."""
    i = spec.inputs
    time = i.time if i.static_time else None
    batch = dict(batch_size=i.batch) if spec.stateful else {}
    inputs = []
    if i.masking == "embedding":
        tokens = keras.Input((time,), dtype="int32", name="tokens", **batch)
        inputs.append(tokens)
        x = keras.layers.Embedding(VOCAB, i.features, mask_zero=True)(tokens)
    else:
        x = keras.Input((time, i.features), name="x", **batch)
        inputs.append(x)
        if i.masking == "masking":
            x = keras.layers.Masking(0.0)(x)
    mask = None
    if i.masking == "explicit":
        mask = keras.Input((time,), dtype="bool", name="mask", **batch)
        inputs.append(mask)
    states = None
    sizes = spec.blocks[0].state_sizes
    if spec.initial_state == "input":
        states = [keras.Input((u,), name=f"state{k}", **batch) for k, u in enumerate(sizes)]
        inputs += states
    elif spec.initial_state == "dense":
        context = keras.Input((CONTEXT,), name="context", **batch)
        inputs.append(context)
        states = [keras.layers.Dense(u, activation="tanh")(context) for u in sizes]
    return inputs, x, mask, states


def run_blocks(spec, impl, x, mask=None, states=None):
    """The blocks on x: (the sequence or last output, [the other outputs])."""
    extra = []
    for k, block in enumerate(spec.blocks):
        kw = {}
        if k == 0 and mask is not None:
            kw["mask"] = mask
        if k == 0 and states is not None:
            kw["initial_state"] = states
        if k == 1 and spec.chained:
            kw["initial_state"] = list(extra)  # the first block's final states
        result = block_layer(block, impl)(x, **kw)
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        if block.wrapper == "bidirectional" and block.merge_mode is None:
            x, extra = None, extra + result
        else:
            x, extra = result[0], extra + result[1:]
    return x, extra


def build(spec, impl, probe=True):
    """The keras.Model of `spec`, impl "ours" or "keras". `probe`: add the MaskProbe output."""
    inputs, x, mask, states = model_inputs(spec)
    if spec.nested:  # an explicit mask enters the inner model as a second input
        inner_in = [
            keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=f"inner_{k}")
            for k, t in enumerate([x] if mask is None else [x, mask])
        ]
        y, extra = run_blocks(spec, impl, *inner_in)
        inner = keras.Model(inner_in, [t for t in [y, *extra] if t is not None], name="inner")
        result = inner(x if mask is None else [x, mask])
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        y, extra = (result[0], result[1:]) if y is not None else (None, result)
    else:
        y, extra = run_blocks(spec, impl, x, mask, states)
    outputs = []
    if y is not None:
        if spec.head != "none":
            y = head_layer(spec.head)(y)
        outputs.append(y)
        if probe and len(y.shape) == 3:
            outputs.append(MaskProbe()(y))
    outputs += extra
    return keras.Model(inputs, outputs)


def pair(spec, probe=True):
    """(ours, oracle) models of `spec` with the same random weights."""
    ours, ref = build(spec, "ours", probe), build(spec, "keras", probe)
    copy_random_weights(ours, ref, spec.seed)
    return ours, ref


def copy_random_weights(ours, ref, seed):
    """Random trainable weights into `ref`, then all of ref's weights into `ours`."""
    rng = np.random.default_rng(seed)
    for variable in ref.trainable_weights:
        shape = tuple(variable.shape)
        variable.assign(rng.uniform(-WEIGHT_SCALE, WEIGHT_SCALE, shape).astype(variable.dtype))
    want, got = ref.weights, ours.weights
    assert [tuple(w.shape) for w in got] == [tuple(w.shape) for w in want], (
        "weight lists differ",
        [(w.path, tuple(w.shape)) for w in got],
        [(w.path, tuple(w.shape)) for w in want],
    )
    ours.set_weights(ref.get_weights())


def arrays(spec, model):
    """Random inputs for `model` (built from `spec`), in `model.inputs` order."""
    i = spec.inputs
    rng = np.random.default_rng(spec.seed + 1)
    mask = np.array(i.rows, dtype=bool)
    by_name = {}
    if i.masking == "embedding":
        by_name["tokens"] = np.where(mask, rng.integers(1, VOCAB, (i.batch, i.time)), 0).astype(
            "int32"
        )
    else:
        x = rng.normal(size=(i.batch, i.time, i.features)).astype("float32")
        if i.masking == "masking":
            x = np.where(mask[..., None], x, 0.0).astype("float32")
        by_name["x"] = x
    if i.masking == "explicit":
        by_name["mask"] = mask
    for k, units in enumerate(spec.blocks[0].state_sizes):
        by_name[f"state{k}"] = rng.uniform(-0.8, 0.8, (i.batch, units)).astype("float32")
    by_name["context"] = rng.normal(size=(i.batch, CONTEXT)).astype("float32")
    return [by_name[t.name] for t in model.inputs]


def feed(values):
    """A model's call argument: the list of its inputs (the structure it was built with)."""
    return list(values)


def recurrent_layers(model):
    """The model's recurrent layers (RNN subclasses and Bidirectional), nested models opened,
    in creation order."""
    found = []
    for item in model.layers:
        if isinstance(item, keras.Model):
            found += recurrent_layers(item)
        elif isinstance(item, (keras.layers.RNN, keras.layers.Bidirectional)):
            found.append(item)
    return found


def reset_states(model):
    """Zeros into every stateful layer's states. Not `layer.reset_states()`: Keras's
    `RNN.reset_state` fails on StackedRNNCells' nested states (`v.value` of a list)."""
    for item in recurrent_layers(model):
        layers = (
            [item.forward_layer, item.backward_layer]
            if isinstance(item, keras.layers.Bidirectional)
            else [item]
        )
        for one in layers:
            if one.stateful and one.states is not None:
                for variable in keras.tree.flatten(one.states):
                    variable.assign(keras.ops.zeros_like(variable.value))
