"""Lowers the non-recurrent layers and Keras ops we know to ONNX nodes.

Each function reads the layer's weights and attributes (never traces Keras), adds nodes to
a `GraphBuilder` and returns its output tensor name(s). Shapes: B batch, T time, D input
width, N output width, E embedding width, V vocabulary. Tensors keep Keras's dtypes.

`model_graph.py` picks the function by the layer's exact type; `lower_keras_op` does the same
for the Keras ops masks are computed with (e.g. the `NotEqual` that `Embedding(mask_zero=True)`
adds to the functional graph). `NotLowerable` marks what tf2onnx converts instead.
Recurrent layers are in `lower_recurrent.py`.
"""

import keras
import numpy as np
from onnx import TensorProto, helper

from keras_gated.keras_private import core_ops, numpy_ops
from keras_gated.layers import VariationalDropout

from .native import activation_name, numpy_weight

# Layers that are the identity at inference.
IDENTITY_LAYERS = (
    VariationalDropout,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)

# Keras activation name -> (ONNX op, attributes), for activations that are one ONNX op.
ACTIVATION_OPS = {
    "relu": ("Relu", {}),
    "tanh": ("Tanh", {}),
    "sigmoid": ("Sigmoid", {}),
    "softmax": ("Softmax", {"axis": -1}),
}

# Keras dtype name -> ONNX element type.
ONNX_DTYPES = {  # the graph computes in float32 (weights are read as float32), whatever the
    # Keras compute dtype (mixed_float16, mixed_bfloat16)
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT,
    "bfloat16": TensorProto.FLOAT,
    "float64": TensorProto.FLOAT,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
    "uint8": TensorProto.UINT8,
    "int8": TensorProto.INT8,
}


class NotLowerable(Exception):
    """No native lowering here; the caller converts the layer with tf2onnx."""


def onnx_dtype(dtype):
    name = keras.backend.standardize_dtype(dtype)
    if name not in ONNX_DTYPES:
        raise NotLowerable(f"dtype {name}")
    return ONNX_DTYPES[name]


def lower_embedding(g, layer, tokens, dtype="int64"):
    """Gather rows of the embedding matrix E (V, E): tokens (B, T) -> (B, T, E).

    Tokens of another dtype than int32/int64 (a float32 `keras.Input` of ids) are cast to
    int32 first, as `Embedding.call` casts them: ONNX's Cast, like Keras's, truncates toward
    zero (2.7 -> 2, -0.5 -> 0).

    Args:
        dtype: the tokens' Keras dtype name.

    Returns:
        (output, name of the E initializer) so a tied projection can reuse E.
    """
    if getattr(layer, "quantization_mode", None) is not None:
        raise NotLowerable(f"quantized embedding {layer.name!r}")
    if keras.backend.standardize_dtype(dtype) not in ("int32", "int64"):
        tokens = g.node("Cast", [tokens], name=f"{layer.name}/ids", to=TensorProto.INT32)
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
        kernel = g.initializer(
            f"{layer.name}/reverse_embeddings", numpy_weight(layer.reverse_embeddings)
        )
    logits = g.node("MatMul", [x, kernel], name=f"{layer.name}/reverse")
    cap = layer.logit_soft_cap
    if cap is not None:  # tanh(logits / cap) * cap
        c = g.initializer("soft_cap", np.float32(cap))
        logits = g.node(
            "Mul", [g.node("Tanh", [g.node("Div", [logits, c])]), c], name=f"{layer.name}/soft_cap"
        )
    return logits


def lower_gelu(g, x, hint, approximate=False):
    """GELU (Hendrycks and Gimpel, 2016) as `keras.activations.gelu` (default exact):

        exact:        gelu(x) = 0.5 x (1 + erf(x / sqrt(2)))
        approximate:  gelu(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    Built from `Erf` (or `Tanh`): ONNX's own `Gelu` needs opset 20, and tf2onnx writes the
    exact form with `Erfc`, which onnxruntime lacks at opset 17.
    """
    if approximate:
        cube = g.node("Mul", [g.node("Mul", [x, x], name=f"{hint}/x2"), x], name=f"{hint}/x3")
        inner = g.node(
            "Add",
            [x, g.node("Mul", [cube, g.initializer("gelu_c", 0.044715)], name=f"{hint}/c_x3")],
            name=f"{hint}/poly",
        )
        scaled = g.node(
            "Mul",
            [inner, g.initializer("sqrt_2_over_pi", np.sqrt(2 / np.pi))],
            name=f"{hint}/scaled",
        )
        phi = g.node("Tanh", [scaled], name=f"{hint}/tanh")
    else:
        scaled = g.node("Mul", [x, g.initializer("sqrt_half", np.sqrt(0.5))], name=f"{hint}/scaled")
        phi = g.node("Erf", [scaled], name=f"{hint}/erf")
    one_plus = g.node("Add", [phi, g.initializer("one", 1.0)], name=f"{hint}/one_plus")
    half_x = g.node("Mul", [x, g.initializer("half", 0.5)], name=f"{hint}/half_x")
    return g.node("Mul", [half_x, one_plus], name=f"{hint}/gelu")


# Keras activation name -> lowering (g, x, hint) -> y, for activations that are a formula.
ACTIVATION_FORMULAS = {"gelu": lower_gelu}
LOWERED_ACTIVATIONS = ("linear", *ACTIVATION_OPS, *ACTIVATION_FORMULAS)


def lower_activation(g, name, x, hint):
    """x -> act(x) for an activation in LOWERED_ACTIVATIONS; NotLowerable for the rest."""
    if name == "linear":
        return x
    if name in ACTIVATION_FORMULAS:
        return ACTIVATION_FORMULAS[name](g, x, f"{hint}/{name}")
    if name not in ACTIVATION_OPS:
        raise NotLowerable(f"activation {name!r}")
    op, attrs = ACTIVATION_OPS[name]
    return g.node(op, [x], name=f"{hint}/{name}", **attrs)


def lower_dense(g, layer, x):
    """Dense: x (..., D) -> act(x kernel + bias) (..., N) as MatMul, Add and the activation."""
    if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
        raise NotLowerable(f"quantized or LoRA Dense {layer.name!r}")
    act = activation_name(layer.activation)
    if act not in LOWERED_ACTIVATIONS:
        raise NotLowerable(f"Dense {layer.name!r} activation {act!r}")
    y = g.node(
        "MatMul",
        [x, g.initializer(f"{layer.name}/kernel", numpy_weight(layer.kernel))],
        name=layer.name,
    )
    if layer.use_bias:
        y = g.node(
            "Add",
            [y, g.initializer(f"{layer.name}/bias", numpy_weight(layer.bias))],
            name=f"{layer.name}/bias",
        )
    return lower_activation(g, act, y, layer.name)


def lower_masking(g, layer, x):
    """Masking: x (B, T, D) with the steps where every feature equals `mask_value` zeroed."""
    value = g.initializer(f"{layer.name}/mask_value", np.float32(layer.mask_value))
    differs = g.node(
        "Not",
        [g.node("Equal", [x, value], name=f"{layer.name}/equal")],
        name=f"{layer.name}/differs",
    )
    count = g.node(
        "ReduceSum",
        [
            g.node("Cast", [differs], name=f"{layer.name}/float", to=TensorProto.FLOAT),
            g.ints("axes", [-1]),
        ],
        name=f"{layer.name}/count",
        keepdims=1,
    )
    keep = g.node(
        "Cast",
        [g.node("Greater", [count, g.initializer("zero", 0.0)])],
        name=f"{layer.name}/keep",
        to=TensorProto.FLOAT,
    )
    return g.node("Mul", [x, keep], name=layer.name)


def lower_repeat_vector(g, layer, x):
    """RepeatVector(n): x (B, D) -> (B, n, D)."""
    y = g.node("Unsqueeze", [x, g.ints("axes_1", [1])], name=f"{layer.name}/unsqueeze")
    return g.node("Tile", [y, g.ints("repeats", [1, layer.n, 1])], name=layer.name)


def lower_batch_normalization(g, layer, x, rank):
    """BatchNormalization at inference over the last axis: x * scale + shift, where
    scale = gamma / sqrt(moving_variance + epsilon), shift = beta - moving_mean * scale."""
    if layer.axis not in (-1, rank - 1):
        raise NotLowerable(f"BatchNormalization over axis {layer.axis} of {rank}")
    mean = numpy_weight(layer.moving_mean).astype(np.float64)
    var = numpy_weight(layer.moving_variance).astype(np.float64)
    scale = 1.0 / np.sqrt(var + layer.epsilon)
    if layer.scale:
        scale = scale * numpy_weight(layer.gamma)
    shift = -mean * scale + (numpy_weight(layer.beta) if layer.center else 0.0)
    y = g.node("Mul", [x, g.initializer(f"{layer.name}/scale", scale)], name=layer.name)
    return g.node(
        "Add", [y, g.initializer(f"{layer.name}/shift", shift)], name=f"{layer.name}/shift"
    )


def lower_relu(g, layer, x):
    """ReLU with its default options (no max value, slope or threshold)."""
    if layer.max_value is not None or layer.negative_slope or layer.threshold:
        raise NotLowerable(f"ReLU {layer.name!r} with max_value, negative_slope or threshold")
    return g.node("Relu", [x], name=layer.name)


def lower_reshape(g, layer, x):
    """Reshape(target_shape): x (B, ...) -> (B, *target_shape); one -1 allowed, as in Keras."""
    return g.node("Reshape", [x, g.ints("shape", [0, *layer.target_shape])], name=layer.name)


def lower_global_pooling_1d(g, layer, x, mask, opset):
    """GlobalAveragePooling1D / GlobalMaxPooling1D, channels_last: x (B, T, D) -> (B, D), or
    (B, 1, D) with `keepdims`. The average over a mask m (B, T) is sum_t m x / sum_t m (NaN
    in a row with no valid step, as in Keras); the max ignores masks, as Keras's does."""
    if layer.data_format != "channels_last":
        raise NotLowerable(f"{type(layer).__name__} {layer.name!r} with {layer.data_format}")
    axes, keepdims = g.ints("axes_1", [1]), int(bool(layer.keepdims))
    if mask is None or isinstance(layer, keras.layers.GlobalMaxPooling1D):
        op = "ReduceMax" if isinstance(layer, keras.layers.GlobalMaxPooling1D) else "ReduceMean"
        if opset < 18:  # axes became an input of ReduceMax/ReduceMean in opset 18
            return g.node(op, [x], name=layer.name, axes=[1], keepdims=keepdims)
        return g.node(op, [x, axes], name=layer.name, keepdims=keepdims)
    keep = g.node(
        "Unsqueeze",
        [
            g.node("Cast", [mask], name=f"{layer.name}/mask_bool", to=TensorProto.BOOL),
            g.ints("axes_2", [2]),
        ],
        name=f"{layer.name}/keep",
    )
    kept = g.node("Where", [keep, x, g.initializer("zero_float", 0.0)], name=f"{layer.name}/kept")
    total = g.node("ReduceSum", [kept, axes], name=f"{layer.name}/sum", keepdims=keepdims)
    count = g.node(
        "ReduceSum",
        [g.node("Cast", [keep], name=f"{layer.name}/mask_float", to=TensorProto.FLOAT), axes],
        name=f"{layer.name}/count",
        keepdims=keepdims,
    )
    return g.node("Div", [total, count], name=layer.name)


MERGE_LAYERS = {
    keras.layers.Add: "Add",
    keras.layers.Subtract: "Sub",
    keras.layers.Multiply: "Mul",
    keras.layers.Maximum: "Max",
    keras.layers.Minimum: "Min",
    keras.layers.Average: "Mean",
}


def lower_merge(g, layer, inputs):
    """Add, Subtract, Multiply, Maximum, Minimum, Average, Concatenate over a list of tensors."""
    if isinstance(layer, keras.layers.Concatenate):
        return g.node("Concat", inputs, name=layer.name, axis=layer.axis)
    op = MERGE_LAYERS[type(layer)]
    if op in ("Add", "Mul") and len(inputs) > 2:
        y = inputs[0]
        for other in inputs[1:]:
            y = g.node(op, [y, other], name=layer.name)
        return y
    return g.node(op, inputs, name=layer.name)


def _scalar(g, value, dtype):
    array = np.asarray(value, dtype=keras.backend.standardize_dtype(dtype))
    return g.initializer("scalar", array, dtype=array.dtype)


def _axes(axis):
    return [axis] if isinstance(axis, int) else list(axis)


def lower_keras_op(g, op, args, kwargs, out_dtype, arg_dtypes):
    """The Keras ops that masks are computed with (exact types); NotLowerable for others."""
    kind, name, tensors = type(op), op.name, list(args)
    if kind in (numpy_ops.NotEqual, numpy_ops.Equal) and not kwargs:
        x, y = tensors
        dtype = arg_dtypes[0] or arg_dtypes[1]
        x = x if isinstance(x, str) else _scalar(g, x, dtype)
        y = y if isinstance(y, str) else _scalar(g, y, dtype)
        equal = g.node("Equal", [x, y], name=f"{name}/equal")
        return equal if kind is numpy_ops.Equal else g.node("Not", [equal], name=name)
    binary = {numpy_ops.LogicalAnd: "And", numpy_ops.LogicalOr: "Or"}
    if kind in binary and all(isinstance(a, str) for a in tensors):
        return g.node(binary[kind], tensors, name=name)
    if kind is numpy_ops.LogicalNot:
        return g.node("Not", tensors, name=name)
    if kind in (numpy_ops.Any, numpy_ops.All):  # any: some True; all: no False
        counted = (
            tensors[0] if kind is numpy_ops.Any else g.node("Not", tensors, name=f"{name}/not")
        )
        as_int = g.node("Cast", [counted], name=f"{name}/int", to=TensorProto.INT64)
        axes = [g.ints("axes", _axes(op.axis))] if op.axis is not None else []
        count = g.node(
            "ReduceSum", [as_int, *axes], name=f"{name}/count", keepdims=int(bool(op.keepdims))
        )
        test = "Greater" if kind is numpy_ops.Any else "Equal"
        return g.node(test, [count, g.ints("zero", 0)], name=name)
    if kind is numpy_ops.ExpandDims:
        return g.node("Unsqueeze", [tensors[0], g.ints("axes", _axes(op.axis))], name=name)
    if kind is numpy_ops.Squeeze and op.axis is not None:
        return g.node("Squeeze", [tensors[0], g.ints("axes", _axes(op.axis))], name=name)
    if kind in (numpy_ops.ZerosLike, numpy_ops.OnesLike):
        value = np.zeros if kind is numpy_ops.ZerosLike else np.ones
        dtype = keras.backend.standardize_dtype(out_dtype)
        dtype = "float32" if onnx_dtype(dtype) == TensorProto.FLOAT else dtype
        fill = helper.make_tensor("value", onnx_dtype(dtype), [1], value(1, dtype).tolist())
        return g.node(
            "ConstantOfShape",
            [g.node("Shape", tensors, name=f"{name}/shape")],
            name=name,
            value=fill,
        )
    if kind is numpy_ops.Concatenate:
        return g.node("Concat", list(tensors[0]), name=name, axis=op.axis)
    if kind is core_ops.ConvertToTensor and not op.sparse and not getattr(op, "ragged", False):
        if op.dtype is None:
            return g.node("Identity", tensors, name=name)
        return g.node("Cast", tensors, name=name, to=onnx_dtype(op.dtype))
    if kind is core_ops.Cast:
        return g.node("Cast", tensors, name=name, to=onnx_dtype(op.dtype))
    raise NotLowerable(f"Keras op {kind.__name__}")
