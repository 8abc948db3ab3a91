"""`keras.layers.TimeDistributed` around a layer we lower: one call over the folded batch.

Keras's TimeDistributed runs its layer's `call` on each slice x[:, i] of axis 1 (a Python
loop when that axis is static, `vectorized_map` otherwise) and stacks the results on axis 1;
when TimeDistributed receives a mask and the layer's `call` takes one, slice i gets
mask[:, i]. The layer acts on each batch row alone, so the same numbers come from one call
with axis 1 folded into the batch:

    x (B, N, *rest) -> (B*N, *rest) -> layer -> (B*N, *out) -> (B, N, *out)
    mask (B, N, *m) -> (B*N, *m)

A recurrent layer inside (x (B, N, T, D), mask (B, N, T)) thus stays one native node over
B*N sequences (`lower_recurrent.py`), where tf2onnx would unroll one node or loop per slice.
"""

import inspect

import numpy as np

END = np.iinfo(np.int64).max  # a Slice end meaning "to the last axis"


def takes_mask(layer):
    """Whether `layer.call` has a `mask` parameter (Keras hands the slices' masks only then)."""
    return "mask" in inspect.signature(layer.call).parameters


def fold(g, x, hint):
    """x (B, N, *rest) -> (B*N, *rest)."""
    shape = g.node(
        "Concat",
        [g.ints("minus_one", [-1]), g.dims(x, 2, END, f"{hint}/rest")],
        name=f"{hint}/shape",
        axis=0,
    )
    return g.node("Reshape", [x, shape], name=hint)


def unfold(g, y, x, hint):
    """y (B*N, *out) -> (B, N, *out), with B and N read from x (B, N, ...)."""
    shape = g.node(
        "Concat",
        [g.dims(x, 0, 2, f"{hint}/B_N"), g.dims(y, 1, END, f"{hint}/out")],
        name=f"{hint}/shape",
        axis=0,
    )
    return g.node("Reshape", [y, shape], name=hint)


def lower_time_distributed(g, layer, x, mask, lower_inner):
    """A TimeDistributed call: x (B, N, *rest) -> (B, N, *out).

    Args:
        layer: the `keras.layers.TimeDistributed`.
        mask: its mask (B, N, *m) or None.
        lower_inner: (inner layer, x (B*N, *rest), mask (B*N, *m) or None) -> [output names];
            raises `NotLowerable`/`NotNative` where the inner layer has no lowering.
    """
    inner = layer.layer
    hint = layer.name
    folded_mask = None
    if mask is not None and takes_mask(inner):
        folded_mask = fold(g, mask, f"{hint}/fold_mask")
    (y,) = lower_inner(inner, fold(g, x, f"{hint}/fold"), folded_mask)
    return unfold(g, y, x, f"{hint}/unfold")
