"""Keras's `Attention` and `AdditiveAttention` at inference, masks included, as ONNX nodes.

For a query q (B, Tq, D), value v (B, Tv, D) and key k (B, Tv, D) (k = v if not given),
with the masks Keras hands the call, q_mask (B, Tq) and v_mask (B, Tv):
    (1) s = scale * q k^T                               Attention, score_mode "dot"
        s = w_c * sum_d tanh(scale * (q_i + k_j))       Attention, score_mode "concat"
        s = sum_d scale_d * tanh(q_i + k_j)             AdditiveAttention
                                                        (scale 1 where use_scale=False)
    (2) s = s - 1e9 where v_mask (B, 1, Tv) is False (and, with use_causal_mask, where j > i)
    (3) a = softmax(s) over Tv                          (B, Tq, Tv), the attention scores
    (4) y = a v, zeroed where q_mask is False           (B, Tq, D)
as keras/src/layers/attention/attention.py computes them (dropout on a is off at inference).
"""

import keras
from onnx import helper

from .graph import INT64
from .native import numpy_weight

MASKED_SCORE_OFFSET = 1.0e9  # Keras's bias on masked scores (float32; 65504 in float16)


def lower_attention(g, layer, inputs, mask, return_attention_scores=False, use_causal_mask=False):
    """`Attention`/`AdditiveAttention` on inputs [q, v] or [q, v, k] -> [y] (+ [a])."""
    name = layer.name
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    q_mask, v_mask = (list(mask) + [None, None])[:2] if mask else (None, None)
    s = scores(g, layer, q, k)
    padding = None
    if v_mask is not None:
        padding = g.node(
            "Not",
            [g.node("Unsqueeze", [v_mask, g.ints("axes_1", [1])], name=f"{name}/v_mask")],
            name=f"{name}/padding",
        )
    if use_causal_mask:
        future = causal_future(g, s, name)
        padding = (
            future
            if padding is None
            else g.node("Or", [padding, future], name=f"{name}/padding_or_future")
        )
    if padding is not None:  # (2)
        shifted = g.node(
            "Sub",
            [s, g.initializer("masked_score_offset", MASKED_SCORE_OFFSET)],
            name=f"{name}/shifted",
        )
        s = g.node("Where", [padding, shifted, s], name=f"{name}/masked_scores")
    a = g.node("Softmax", [s], name=f"{name}/softmax", axis=-1)  # (3)
    y = g.node("MatMul", [a, v], name=name)  # (4)
    if q_mask is not None:
        keep = g.node("Unsqueeze", [q_mask, g.ints("axes_2", [2])], name=f"{name}/q_mask")
        y = g.node("Where", [keep, y, g.initializer("zero_float", 0.0)], name=f"{name}/output")
    return [y, a] if return_attention_scores else [y]


def scores(g, layer, q, k):
    """Equation (1): s (B, Tq, Tv)."""
    name = layer.name
    scale = numpy_weight(layer.scale) if layer.scale is not None else None
    if not isinstance(layer, keras.layers.AdditiveAttention) and layer.score_mode == "dot":
        s = g.node(
            "MatMul",
            [q, g.node("Transpose", [k], name=f"{name}/k_T", perm=[0, 2, 1])],
            name=f"{name}/scores",
        )
        return (
            s
            if scale is None
            else g.node(
                "Mul", [s, g.initializer(f"{name}/scale", scale)], name=f"{name}/scaled_scores"
            )
        )
    pairs = g.node(
        "Add",
        [
            g.node("Unsqueeze", [q, g.ints("axes_2", [2])], name=f"{name}/q_i"),
            g.node("Unsqueeze", [k, g.ints("axes_1", [1])], name=f"{name}/k_j"),
        ],
        name=f"{name}/q_plus_k",
    )  # (B, Tq, Tv, D)
    additive = isinstance(layer, keras.layers.AdditiveAttention)
    if scale is not None and not additive:  # Attention: tanh(scale (q + k))
        pairs = g.node(
            "Mul", [pairs, g.initializer(f"{name}/scale", scale)], name=f"{name}/scaled_pairs"
        )
    t = g.node("Tanh", [pairs], name=f"{name}/tanh")
    if scale is not None and additive:  # AdditiveAttention: scale_d tanh(q + k)
        t = g.node("Mul", [t, g.initializer(f"{name}/scale", scale)], name=f"{name}/scaled_tanh")
    s = g.node("ReduceSum", [t, g.ints("axes", [-1])], name=f"{name}/scores", keepdims=0)
    if not additive:
        s = g.node(
            "Mul",
            [
                s,
                g.initializer(
                    f"{name}/concat_score_weight", numpy_weight(layer.concat_score_weight)
                ),
            ],
            name=f"{name}/weighted_scores",
        )
    return s


def causal_future(g, s, name):
    """bool (1, Tq, Tv), True where j > i: the steps a causal query may not see."""
    shape = g.node(
        "Concat",
        [g.ints("one", [1]), g.dims(s, 1, 3, f"{name}/Tq_Tv")],
        name=f"{name}/causal_shape",
        axis=0,
    )
    ones = g.node(
        "ConstantOfShape",
        [shape],
        name=f"{name}/ones",
        value=helper.make_tensor("value", INT64, [1], [1]),
    )
    allowed = g.node("Trilu", [ones], name=f"{name}/causal", upper=0)  # j <= i
    return g.node("Equal", [allowed, g.ints("zero", [0])], name=f"{name}/future")
