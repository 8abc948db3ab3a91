"""Keras's masked recurrence on a native ONNX node: compact the valid steps, run, move back.

ONNX's `sequence_lens` expresses only masks whose valid steps are a prefix of each row, and
onnxruntime writes zeros after a row's end. Keras (`backend.rnn`) instead lets any mask
pattern through: a masked step keeps the states and repeats the previous output (zeros
before the first valid step, or zeros at every masked step with `zero_output_for_mask`).
So, per row b, with m (B, T) the mask as 0/1, L_b = sum_t m[b, t] and

    c[b, t] = m[b, 0] + ... + m[b, t]          valid steps up to t (forward count)
    n[b, t] = m[b, t] + ... + m[b, T-1]        valid steps from t on (backward count)

1. compact: valid step t goes to position c - 1, masked step t to L + t - c (the valid
   steps first, both groups in their own order): one `ScatterElements` over time;
2. the native node runs with `sequence_lens = L`;
3. restore, for every original step t, the output Keras has there, read from the compacted
   output y' (B, T, U) padded with one zero step at index T:
   forward:  y[t] = y'[c - 1]   (zeros if c = 0)   the output after the c-th valid step;
   backward: y[t] = y'[L - n]   (zeros if n = 0)   a reverse node writes at step j the
             output after consuming compacted steps j..L-1, i.e. n = L - j valid steps.
   A masked step has the same count as the step before it (in processing order), so it
   repeats that output, as Keras does.
Final states are the node's Y_h/Y_c (the state after the last valid step), except in rows
with L = 0, where onnxruntime gives zeros and Keras the initial state.
"""

import dataclasses

from .graph import FLOAT, INT64

INT32 = 6  # onnx.TensorProto.INT32


@dataclasses.dataclass
class StepMask:
    """A (B, T) mask's derived tensors (names in the graph).

    Attributes:
        m: int64 (B, T) 0/1. lengths: int64 (B,) L. lengths32: int32 (B,) for `sequence_lens`.
        forward_count: c (B, T). backward_count: n (B, T). steps: int64 (1,) T.
        mask_float: float32 (B, T, 1), for `zero_output_for_mask`.
        empty: bool (B, 1), rows with L = 0.
    """

    m: str
    lengths: str
    lengths32: str
    forward_count: str
    backward_count: str
    steps: str
    mask_float: str
    empty: str


def step_mask(g, mask):
    """The `StepMask` of a bool (B, T) mask tensor."""
    m = g.node("Cast", [mask], name="mask/int", to=INT64)
    axis1 = g.ints("axis_1", [1])
    lengths = g.node("ReduceSum", [m, axis1], name="mask/lengths", keepdims=0)
    return StepMask(
        m=m,
        lengths=lengths,
        lengths32=g.node("Cast", [lengths], name="mask/sequence_lens", to=INT32),
        forward_count=g.node("CumSum", [m, g.ints("axis", [1])], name="mask/forward_count"),
        backward_count=g.node("CumSum", [m, g.ints("axis", [1])], name="mask/backward_count",
                              reverse=1),
        steps=g.node("Shape", [m], name="mask/steps", start=1, end=2),
        mask_float=g.node("Unsqueeze", [g.node("Cast", [mask], name="mask/float", to=FLOAT),
                                        g.ints("axes_2", [2])], name="mask/float_3d"),
        empty=g.node("Unsqueeze", [g.node("Equal", [lengths, g.ints("zero", [0])],
                                          name="mask/empty_rows"), axis1], name="mask/empty"),
    )


def _along_time(g, index, x, hint):
    """index (B, T) int64 -> (B, T, W) broadcast over x's last axis, for *Elements ops."""
    wide = g.node("Unsqueeze", [index, g.ints("axes_2", [2])], name=f"{hint}/index_3d")
    shape = g.node("Concat", [g.node("Shape", [index], name=f"{hint}/index_shape"),
                              g.node("Shape", [x], name=f"{hint}/width", start=2)],
                   name=f"{hint}/index_shape_3d", axis=0)
    return g.node("Expand", [wide, shape], name=f"{hint}/index")


def compact(g, x, sm, hint):
    """x (B, T, D) -> the same steps with each row's valid ones first (step 1 above)."""
    one = g.ints("one", [1])
    valid_target = g.node("Sub", [sm.forward_count, one], name=f"{hint}/valid_target")
    t = g.node("Range", [g.ints("zero_scalar", 0), g.node("Squeeze", [sm.steps],
                                                         name=f"{hint}/T"), g.ints("one_scalar", 1)],
               name=f"{hint}/t")
    lengths = g.node("Unsqueeze", [sm.lengths, g.ints("axes_1", [1])], name=f"{hint}/L")
    masked_target = g.node("Sub", [g.node("Add", [lengths, t], name=f"{hint}/L_plus_t"),
                                   sm.forward_count], name=f"{hint}/masked_target")
    is_valid = g.node("Cast", [sm.m], name=f"{hint}/is_valid", to=9)  # BOOL
    target = g.node("Where", [is_valid, valid_target, masked_target], name=f"{hint}/target")
    return g.node("ScatterElements", [x, _along_time(g, target, x, hint), x],
                  name=f"{hint}/compact", axis=1)


def restore(g, y, sm, reverse, hint):
    """Compacted outputs y' (B, T, U) -> Keras's outputs at the original steps (step 3)."""
    padded = g.node("Pad", [y, g.ints("pads", [0, 0, 0, 0, 1, 0])], name=f"{hint}/pad")
    count = sm.backward_count if reverse else sm.forward_count
    if reverse:
        source = g.node("Sub", [g.node("Unsqueeze", [sm.lengths, g.ints("axes_1", [1])],
                                       name=f"{hint}/L"), count], name=f"{hint}/source")
    else:
        source = g.node("Sub", [count, g.ints("one", [1])], name=f"{hint}/source")
    none_yet = g.node("Equal", [count, g.ints("zero", [0])], name=f"{hint}/none_yet")
    index = g.node("Where", [none_yet, sm.steps, source], name=f"{hint}/source_step")
    return g.node("GatherElements", [padded, _along_time(g, index, y, hint)],
                  name=f"{hint}/restore", axis=1)


def zero_masked(g, y, sm, hint):
    """y (B, T, U) with zeros at masked steps (`zero_output_for_mask`)."""
    return g.node("Mul", [y, sm.mask_float], name=f"{hint}/zero_masked")


def hold_empty_rows(g, final, initial, sm, hint):
    """A final state (B, U) with rows of L = 0 set to their initial state (zeros if None)."""
    start = initial
    if start is None:
        start = g.node("Mul", [final, g.initializer("zero_float", 0.0)], name=f"{hint}/zeros")
    return g.node("Where", [sm.empty, start, final], name=f"{hint}/held")
