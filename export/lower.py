"""Lowers single layers to native ONNX nodes: recurrent layers, embeddings, Dense, activations.

Each function reads the layer's weights (never traces Keras, so no cuDNN path is involved),
adds nodes to a `GraphBuilder` and returns the name of its output tensor. Shapes:
B batch, T time, D input width, U units, E embedding width, V vocabulary.

A recurrent layer becomes exactly one `LSTM`, `GRU` or `RNN` node in ONNX's default layout
(layout=0: X (T, B, D), states (1, B, U)), wrapped in Transposes and (Un)Squeezes so that
the graph itself is batch-major: x (B, T, D) -> y (B, T, U) or (B, U), states (B, U).
"""

import keras
import numpy as np

from .graph import FLOAT
from .layout import (
    keras_to_onnx_gru,
    keras_to_onnx_lstm,
    keras_to_onnx_lstm_peephole,
    keras_to_onnx_rnn,
    onnx_rnn_activation,
)
from .metadata import BATCH, state_input_name, state_output_name
from keras_gated.cells import GRUCell, LSTMCell, SimpleRNNCell
from keras_gated.layers import Recurrent, VariationalDropout

# Layers that are the identity at inference.
IDENTITY_LAYERS = (
    VariationalDropout,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)

# Keras activation name -> (ONNX op, attributes). Others go through tf2onnx.
ACTIVATION_OPS = {
    "relu": ("Relu", {}),
    "tanh": ("Tanh", {}),
    "sigmoid": ("Sigmoid", {}),
    "softmax": ("Softmax", {"axis": -1}),
}


class NotLowerable(Exception):
    """This layer has no native lowering here; the caller converts it with tf2onnx."""


def numpy_weight(variable):
    """A Keras variable as a float32 numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def check_exportable(layer):
    """Raises NotImplementedError for a layer we refuse outright (no ONNX operator, no fallback)."""
    cell = getattr(layer, "cell", None)
    if isinstance(layer, Recurrent) and isinstance(cell, LSTMCell) and cell.layer_norm:
        raise NotImplementedError(
            f"layer {layer.name!r}: LSTM with layer_norm=True has no ONNX operator (the ONNX "
            f"LSTM cannot normalise gate pre-activations); export a model with layer_norm=False"
        )


def recurrent_weights(cell):
    """(op type, {W, R, B[, P]} arrays, attributes) for one of our cells.

    Raises:
        NotLowerable: a cell class we do not know.
    """
    k, rk, b = (numpy_weight(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
    if isinstance(cell, LSTMCell):
        W, R, B = keras_to_onnx_lstm(k, rk, b)
        weights = {"W": W, "R": R, "B": B}
        if cell.peephole:
            weights["P"] = keras_to_onnx_lstm_peephole(numpy_weight(cell.peephole_kernel))
        return "LSTM", weights, {}
    if isinstance(cell, GRUCell):
        W, R, B, linear_before_reset = keras_to_onnx_gru(k, rk, b, cell.reset_after)
        return "GRU", {"W": W, "R": R, "B": B}, {"linear_before_reset": linear_before_reset}
    if isinstance(cell, SimpleRNNCell):
        W, R, B = keras_to_onnx_rnn(k, rk, b)
        return "RNN", {"W": W, "R": R, "B": B}, onnx_rnn_activation(cell.activation)
    raise NotLowerable(f"unknown cell {type(cell).__name__}")


def state_kinds(layer):
    """The state names of one of our recurrent layers: ("h", "c") for LSTM, else ("h",)."""
    return ("h", "c") if isinstance(layer.cell, LSTMCell) else ("h",)


def lower_recurrent(g, layer, x, index):
    """One native node for our recurrent `layer` over x (B, T, D).

    Declares graph inputs `h_{index}` (and `c_{index}`), (B, U), and produces the tensors
    `h_{index}_out` (and `c_{index}_out`); the caller declares those as graph outputs.

    Returns:
        (y, sizes): y (B, T, U) if `return_sequences` else (B, U); sizes the state widths.
    """
    check_exportable(layer)
    cell = layer.cell
    op, weights, attrs = recurrent_weights(cell)
    units, kinds = cell.units, state_kinds(layer)
    w = {key: g.initializer(f"{layer.name}/{key}", value) for key, value in weights.items()}
    axis0 = g.ints("axes_0", [0])
    initial = {}
    for kind in kinds:
        name = g.add_input(state_input_name(kind, index), FLOAT, [BATCH, units])
        initial[kind] = g.node("Unsqueeze", [name, axis0], name=f"{layer.name}/initial_{kind}")
    X = g.node("Transpose", [x], name=f"{layer.name}/time_major", perm=[1, 0, 2])
    inputs = [X, w["W"], w["R"], w["B"], "", initial["h"]]  # "" : no sequence_lens
    if op == "LSTM":
        inputs += [initial["c"]] + ([w["P"]] if "P" in w else [])
    direction = "reverse" if layer.go_backwards else "forward"
    Y, *finals = g.node(op, inputs, outputs=1 + len(kinds), name=layer.name,
                        hidden_size=units, direction=direction, **attrs)
    for kind, final in zip(kinds, finals):  # Y_h, Y_c (1, B, U) -> (B, U)
        g.node("Squeeze", [final, axis0], outputs=[state_output_name(kind, index)])
    if not layer.return_sequences:
        return state_output_name("h", index), [units] * len(kinds)
    y = g.node("Squeeze", [Y, g.ints("axes_1", [1])], name=f"{layer.name}/Y")  # (T, B, U)
    if layer.go_backwards:  # Keras emits outputs in processing order, ONNX in input order
        y = g.node("Slice", [y, g.ints("starts", [-1]), g.ints("ends", [np.iinfo(np.int64).min]),
                             axis0, g.ints("steps", [-1])], name=f"{layer.name}/processing_order")
    y = g.node("Transpose", [y], name=f"{layer.name}/batch_major", perm=[1, 0, 2])
    return y, [units] * len(kinds)


def lower_embedding(g, layer, tokens):
    """Gather rows of the embedding matrix E (V, E): tokens (B, T) -> (B, T, E).

    Returns:
        (output, name of the E initializer) so a tied projection can reuse E.
    """
    if getattr(layer, "quantization_mode", None) is not None:
        raise NotLowerable(f"quantized embedding {layer.name!r}")
    if layer.mask_zero:
        raise NotLowerable(f"embedding {layer.name!r} has mask_zero=True (masked steps)")
    E = g.initializer(f"{layer.name}/embeddings", numpy_weight(layer.embeddings))
    return g.node("Gather", [E, tokens], name=layer.name, axis=0), E


def lower_reverse_embedding(g, layer, x, E):
    """The output projection of a `ReversibleEmbedding`: x (B, T, E) -> logits (B, T, V).

    Tied: MatMul(x, Transpose(E)) reading the same initializer E as the Gather, so the
    matrix is stored once. Untied: MatMul(x, reverse_embeddings (E, V)).
    """
    if layer.tie_weights:
        kernel = g.node("Transpose", [E], name=f"{layer.name}/E_transposed", perm=[1, 0])
    else:
        kernel = g.initializer(f"{layer.name}/reverse_embeddings",
                               numpy_weight(layer.reverse_embeddings))
    logits = g.node("MatMul", [x, kernel], name=f"{layer.name}/reverse")
    cap = layer.logit_soft_cap
    if cap is not None:  # tanh(logits / cap) * cap
        c = g.initializer("soft_cap", np.float32(cap))
        logits = g.node("Mul", [g.node("Tanh", [g.node("Div", [logits, c])]), c],
                        name=f"{layer.name}/soft_cap")
    return logits


def activation_name(activation):
    """A Keras activation function's registered name ("relu", "linear", ...)."""
    return keras.activations.serialize(activation)


def lower_activation(g, name, x, hint):
    """x -> act(x) for a simple activation name; NotLowerable for the rest."""
    if name == "linear":
        return x
    if name not in ACTIVATION_OPS:
        raise NotLowerable(f"activation {name!r}")
    op, attrs = ACTIVATION_OPS[name]
    return g.node(op, [x], name=f"{hint}/{name}", **attrs)


def lower_dense(g, layer, x):
    """Dense: x (..., D) -> act(x kernel + bias) (..., N) as MatMul, Add and the activation."""
    if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
        raise NotLowerable(f"quantized or LoRA Dense {layer.name!r}")
    act = activation_name(layer.activation)
    if act != "linear" and act not in ACTIVATION_OPS:
        raise NotLowerable(f"Dense {layer.name!r} activation {act!r}")
    y = g.node("MatMul", [x, g.initializer(f"{layer.name}/kernel", numpy_weight(layer.kernel))],
               name=layer.name)
    if layer.use_bias:
        y = g.node("Add", [y, g.initializer(f"{layer.name}/bias", numpy_weight(layer.bias))],
                   name=f"{layer.name}/bias")
    return lower_activation(g, act, y, layer.name)
