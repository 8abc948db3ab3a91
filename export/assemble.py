"""Whole-model graphs, each with the interface of `metadata.py`, and their Keras references.

Three routes, tried in this order:
1. `keras_gated.LanguageModel`: Gather -> one native node per recurrent layer -> MatMul
   (tied: reading a Transpose of the Gather's own initializer). Dropout layers vanish.
2. A chain of layers (a `keras.Sequential`, or a functional model where each layer feeds the
   next): our recurrent layers, a leading Embedding, Dense and dropout layers lowered natively;
   every consecutive run of other layers converted alone by tf2onnx and spliced in.
3. Anything else (branches, several inputs, masks): tf2onnx for the whole model, with a
   warning; recurrent layers then become `Loop`s and the graph has no state inputs.

Each route also returns `reference(x, states) -> (output, final states)`: the Keras model run
on the same inputs and initial states, which `verify.py` compares with onnxruntime.
"""

import dataclasses
import warnings
from typing import Callable

import keras
import numpy as np
import onnx

from . import metadata as md
from .graph import FLOAT, INT64, GraphBuilder
from .lower import (
    IDENTITY_LAYERS,
    NotLowerable,
    check_exportable,
    lower_dense,
    lower_embedding,
    lower_recurrent,
    lower_reverse_embedding,
    state_kinds,
)
from .tf2onnx_bridge import convert_function, convert_layers, rename_graph, splice
from keras_gated.layers import Recurrent
from keras_gated.models import LanguageModel


@dataclasses.dataclass
class Lowered:
    """A built graph and what is needed to check it.

    Attributes:
        model: the ONNX ModelProto (no metadata yet).
        input_name, output_name: `tokens`/`inputs` and `logits`/`outputs`.
        input_dims: the input's dims, ints or the names "batch", "time".
        input_dtype: np.int64 (token ids) or np.float32 (features).
        vocab_size: V for a token model, else None.
        states: metadata state specs (`metadata.state_specs`), in `forward`'s flat order.
        lowered_layers, tf2onnx_layers: layer names by route.
        reference: Keras on the same inputs: (x, states) -> (output, final states), numpy.
    """

    model: onnx.ModelProto
    input_name: str
    output_name: str
    input_dims: list
    input_dtype: type
    vocab_size: int | None
    states: list
    lowered_layers: list
    tf2onnx_layers: list
    reference: Callable


def lower_model(model, opset):
    """The best route for `model` (see the module docstring) -> `Lowered`.

    Raises:
        NotImplementedError: a layer with no ONNX equivalent (LSTM with layer_norm=True).
    """
    for layer in _flatten_layers(model):
        check_exportable(layer)
    if isinstance(model, LanguageModel):
        return language_model_graph(model, opset)
    try:
        return chain_graph(model, chain_layers(model), opset)
    except NotLowerable as reason:
        warnings.warn(f"exporting {model.name!r} whole with tf2onnx ({reason}); recurrent layers, "
                      f"if any, become Loop nodes and the graph has no state inputs", stacklevel=3)
        return whole_model_graph(model, opset)


def language_model_graph(model, opset):
    """tokens (B, T) + states -> logits (B, T, V) + states for a `LanguageModel`."""
    g = GraphBuilder("keras_gated_language_model")
    tokens = g.add_input(md.TOKENS, INT64, [md.BATCH, md.TIME])
    x, E = lower_embedding(g, model.embedding, tokens)  # embed_dropout: identity
    sizes = []
    for index, layer in enumerate(model.rnn_layers):  # each dropout after it: identity
        x, layer_sizes = lower_recurrent(g, layer, x, index)
        sizes.append((layer.name, layer_sizes))
    logits = lower_reverse_embedding(g, model.embedding, x, E)
    states = md.state_specs(sizes)
    _declare_outputs(g, logits, md.LOGITS, [md.BATCH, md.TIME, model.vocab_size], states)
    names = [model.embedding.name, model.embed_dropout_layer.name]
    names += [layer.name for pair in zip(model.rnn_layers, model.dropouts) for layer in pair]
    return Lowered(g.model(opset), md.TOKENS, md.LOGITS, [md.BATCH, md.TIME], np.int64,
                   model.vocab_size, states, names, [], _language_model_reference(model))


def chain_layers(model):
    """The layers of `model` in order, if each feeds the next; NotLowerable otherwise."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    elif hasattr(model, "_operations") and hasattr(model, "outputs"):  # functional
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise NotLowerable("a model with several inputs or outputs")
        layers, tensor = [], model.outputs[0]
        while tensor is not model.inputs[0]:
            layer, node_index, _ = tensor._keras_history
            arguments = layer._inbound_nodes[node_index].arguments
            extra = {k: v for k, v in arguments.kwargs.items() if k != "training" and v is not None}
            if (not isinstance(layer, keras.layers.Layer) or len(arguments.args) != 1
                    or extra or len(arguments.keras_tensors) != 1):
                raise NotLowerable(f"{layer.name!r} is called with more than one tensor")
            layers.append(layer)
            tensor = arguments.keras_tensors[0]
        layers.reverse()
    else:
        raise NotLowerable(f"a subclassed {type(model).__name__}")
    layers = [layer for layer in layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if isinstance(layer, keras.layers.Masking):
            raise NotLowerable(f"masking layer {layer.name!r}")
        if isinstance(layer, Recurrent) and layer.return_state:
            raise NotLowerable(f"layer {layer.name!r} returns its states")
    if not layers:
        raise NotLowerable("no layers")
    return layers


def chain_graph(model, layers, opset):
    """The graph of a chain of layers; see the module docstring, route 2."""
    g = GraphBuilder(f"keras_gated_{model.name}")
    shape = (None,) + tuple(_input_shape(model)[1:])
    tokens_in = isinstance(layers[0], keras.layers.Embedding) or _integer_input(model)
    input_name = md.TOKENS if tokens_in else md.INPUTS
    dims = _dims(shape)
    x = g.add_input(input_name, INT64 if tokens_in else FLOAT, dims)
    lowered, converted, pending, sizes, clones = [], [], [], [], {}

    def flush():
        nonlocal x, shape
        if pending:
            import tensorflow as tf

            dtype = tf.int64 if x == input_name and tokens_in else tf.float32
            proto, shape = convert_layers(pending, tf.TensorSpec(shape, dtype), opset)
            x = splice(g, proto, x, prefix=f"tf2onnx_{len(converted)}")
            converted.extend(layer.name for layer in pending)
            pending.clear()

    for position, layer in enumerate(layers):
        if isinstance(layer, IDENTITY_LAYERS):
            lowered.append(layer.name)
            continue
        try:
            if isinstance(layer, keras.layers.Embedding) and position == 0:
                y, _ = lower_embedding(g, layer, x)
                out_shape = shape + (layer.output_dim,)
            elif isinstance(layer, Recurrent):
                flush()
                y, layer_sizes = lower_recurrent(g, layer, x, len(sizes))
                clones[position] = _state_clone(layer, shape)
                sizes.append((layer.name, layer_sizes))
                last = (None, layer.units)
                out_shape = shape[:-1] + (layer.units,) if layer.return_sequences else last
            elif isinstance(layer, keras.layers.Dense):
                flush()
                y = lower_dense(g, layer, x)
                out_shape = shape[:-1] + (layer.units,)
            else:
                raise NotLowerable(layer.name)
        except NotLowerable:
            if position == 0 and isinstance(layer, keras.layers.Embedding):
                raise  # its mask or quantization concerns the whole model
            pending.append(layer)
            continue
        x, shape = y, out_shape
        lowered.append(layer.name)
    flush()
    states = md.state_specs(sizes)
    output_name = md.LOGITS if tokens_in else md.OUTPUTS
    _declare_outputs(g, x, output_name, _dims(shape), states)
    vocab_size = layers[0].input_dim if isinstance(layers[0], keras.layers.Embedding) else None
    return Lowered(g.model(opset), input_name, output_name, dims,
                   np.int64 if tokens_in else np.float32, vocab_size, states, lowered, converted,
                   _chain_reference(layers, clones))


def whole_model_graph(model, opset):
    """tf2onnx for the whole model (route 3): one input, one output, no state inputs."""
    import tensorflow as tf

    shape = (None,) + tuple(_input_shape(model)[1:])
    tokens_in = _integer_input(model)
    spec = tf.TensorSpec(shape, tf.int64 if tokens_in else tf.float32)
    proto, out_shape = convert_function(lambda x: model(x, training=False), spec, opset)
    input_name = md.TOKENS if tokens_in else md.INPUTS
    output_name = md.LOGITS if tokens_in else md.OUTPUTS
    renames = {proto.graph.input[0].name: input_name, proto.graph.output[0].name: output_name}
    rename_graph(proto.graph, lambda name: renames.get(name, name))
    ends = ((proto.graph.input[0], _dims(shape)), (proto.graph.output[0], _dims(out_shape)))
    for value, dims in ends:
        for dim, size in zip(value.type.tensor_type.shape.dim, dims):
            if isinstance(size, str):
                dim.dim_param = size
    layers = [layer.name for layer in model.layers
              if not isinstance(layer, keras.layers.InputLayer)]
    vocab_size = out_shape[-1] if tokens_in else None

    def reference(x, states):
        return keras.ops.convert_to_numpy(model(x, training=False)), []

    return Lowered(proto, input_name, output_name, _dims(shape),
                   np.int64 if tokens_in else np.float32, vocab_size, [], [], layers, reference)


def _declare_outputs(g, main, name, dims, states):
    g.add_output(g.publish(main, name), FLOAT, dims, first=True)
    for spec in states:
        g.add_output(spec["output"], FLOAT, [md.BATCH, spec["size"]])


def _dims(shape):
    """A Keras shape -> ONNX dims: None at axis 0 is "batch", at axis 1 (of rank >= 2) "time"."""
    names = (md.BATCH, md.TIME)
    return [size if size is not None else names[axis] if axis < 2 else f"dim_{axis}"
            for axis, size in enumerate(shape)]


def _input_shape(model):
    try:
        return tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        raise ValueError(f"model {model.name!r} has no known input shape: build it (call it once "
                         f"or start it with keras.Input) before exporting") from None


def _integer_input(model):
    return np.dtype(keras.backend.standardize_dtype(model.inputs[0].dtype)).kind in "iu"


def _flatten_layers(model):
    layers = getattr(model, "layers", [])
    return [leaf for layer in layers for leaf in [layer, *_flatten_layers(layer)]]


def _numpy(tensors):
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in tensors]


def _language_model_reference(model):
    """`model.forward` at inference; a stateful model is run through a non-stateful copy."""
    if model.stateful:
        copy = type(model).from_config({**model.get_config(), "stateful": False})
        copy(np.zeros((1, 1), dtype=np.int32))
        copy.set_weights(model.get_weights())
        model = copy

    def reference(tokens, states):
        logits, final = model.forward(tokens, list(states), training=False)
        return _numpy([logits])[0], _numpy(final)

    return reference


def _state_clone(layer, input_shape):
    """A non-stateful copy of our recurrent `layer` that also returns its final states."""
    config = {**layer.get_config(), "return_state": True, "stateful": False}
    clone = type(layer).from_config(config)
    clone.build(input_shape)
    clone.set_weights(layer.get_weights())
    return clone


def _chain_reference(layers, clones):
    """Runs the chain in Keras; recurrent layers (through `clones`) start from given states."""

    def reference(x, states):
        final, k = [], 0
        for position, layer in enumerate(layers):
            if position in clones:
                n = len(state_kinds(layer))
                x, *s = clones[position](x, initial_state=list(states[k : k + n]))
                final += s
                k += n
            else:
                x = layer(x, training=False)
        return _numpy([x])[0], _numpy(final)

    return reference
