"""Keras's masked recurrence on a native ONNX node: compact the valid steps, run, move back.

ONNX's `sequence_lens` expresses only masks whose valid steps are a prefix of each row, and
onnxruntime writes zeros after a row's end. Keras (`backend.rnn`) instead lets any mask
pattern through: a masked step keeps the states and repeats the previous output (zeros
before the first valid step, or zeros at every masked step with `zero_output_for_mask`).
So, per row b, with m (B, T) the mask as 0/1, L_b = sum_t m[b, t] and

    c[b, t] = m[b, 0] + ... + m[b, t]          valid steps up to t (forward count)
    n[b, t] = m[b, t] + ... + m[b, T-1]        valid steps from t on (backward count)

1. compact: valid step t goes to position c - 1, masked step t to L + t - c (the valid
   steps first, both groups in their own order); the inverse permutation src (B, T) says
   which step lands at each position, and one row `Gather` from x seen as (B*T, D) builds
   the node's time-major input X[j, b] = x[b, src[b, j]] directly;
2. the native node runs with `sequence_lens = L` over the first max_b L_b positions only
   (the rest hold masked steps of every row);
3. restore, for every original step t, the output Keras has there, read from the node's
   output Y' (T, dirs, B, U) seen as rows (T*dirs*B, U), followed by one row per direction
   and batch entry for "no output yet" (zeros, or h0 below); one row `Gather` again:
   forward:  y[t] = y'[c - 1]   (none yet if c = 0)   the output after the c-th valid step;
   backward: y[t] = y'[L - n]   (none yet if n = 0)   a reverse node writes at step j the
             output after consuming compacted steps j..L-1, i.e. n = L - j valid steps.
   A masked step has the same count as the step before it (in processing order), so it
   repeats that output, as Keras does. The last output (`return_sequences=False`) needs no
   gather: it is the node's Y_h, or "none yet" in rows with L = 0 (zeroed with
   `zero_output_for_mask` when the last processed step is masked).
Final states are the node's Y_h/Y_c (the state after the last valid step), except in rows
with L = 0, where onnxruntime gives zeros and Keras the initial state.

Before a row's first valid step there is no previous output: Keras's TensorFlow and torch
backends (and our layers on every backend) emit zeros there; Keras's built-in layers on the
JAX backend repeat the state h_{t-1} instead (keras/src/backend/jax/rnn.py), i.e. h0, which
`restore` takes as `before_first`.
"""

import dataclasses

from onnx import TensorProto, helper

from .graph import FLOAT, INT64


@dataclasses.dataclass
class StepMask:
    """A (B, T) mask's derived tensors (names in the graph).

    Attributes:
        mask: the bool (B, T) mask. m: int64 (B, T) 0/1. lengths: int64 (B,) L.
        lengths32: int32 (B,) for `sequence_lens`. forward_count: c (B, T).
        backward_count: n (B, T). steps: int64 (1,) T. batch: int64 (1,) B.
        rows: int64 (B, 1), the batch index b. empty: bool (B, 1), rows with L = 0.
    """

    mask: str
    m: str
    lengths: str
    lengths32: str
    forward_count: str
    backward_count: str
    steps: str
    batch: str
    rows: str
    empty: str


def step_mask(g, mask):
    """The `StepMask` of a bool (B, T) mask tensor, built once per graph and mask."""
    key = ("step_mask", mask)
    if key not in g.memo:
        g.memo[key] = _step_mask(g, mask)
    return g.memo[key]


def compacted(g, x, sm):
    """The node input X (T, B, D) of x already compacted under `sm`, or None (see
    `note_compacted`)."""
    return g.memo.get(("compacted", x, sm.mask))


def note_compacted(g, x, sm, X):
    """Records that X (T, B, D) holds x's valid steps compacted under `sm` (X[j, b] for
    j < L_b), so the next masked layer reading x skips restoring and compacting again:
    compacting a restored output gives back the node's own Y' at positions j < L."""
    g.memo[("compacted", x, sm.mask)] = X


def _step_mask(g, mask):
    m = g.node("Cast", [mask], name="mask/int", to=INT64)
    axis1 = g.ints("axis_1", [1])
    lengths = g.node("ReduceSum", [m, axis1], name="mask/lengths", keepdims=0)
    batch = g.dims(m, 0, 1, "mask/batch")
    rows = g.node(
        "Range",
        [g.ints("zero", 0), g.node("Squeeze", [batch], name="mask/B"), g.ints("one", 1)],
        name="mask/b",
    )
    return StepMask(
        mask=mask,
        m=m,
        lengths=lengths,
        lengths32=g.node("Cast", [lengths], name="mask/sequence_lens", to=TensorProto.INT32),
        forward_count=g.node("CumSum", [m, g.ints("axis", 1)], name="mask/forward_count"),
        backward_count=g.node(
            "CumSum", [m, g.ints("axis", 1)], name="mask/backward_count", reverse=1
        ),
        steps=g.dims(m, 1, 2, "mask/steps"),
        batch=batch,
        rows=g.node("Unsqueeze", [rows, axis1], name="mask/rows"),
        empty=g.node(
            "Unsqueeze",
            [g.node("Equal", [lengths, g.ints("zero", [0])], name="mask/empty_rows"), axis1],
            name="mask/empty",
        ),
    )


def compact(g, x, sm, hint):
    """x (B, T, D) -> the node's input X (T', B, D), each row's valid steps first (step 1),
    T' = max(1, max_b L_b)."""
    one = g.ints("one", [1])
    valid_target = g.node("Sub", [sm.forward_count, one], name=f"{hint}/valid_target")
    t = g.node(
        "Range",
        [g.ints("zero", 0), g.node("Squeeze", [sm.steps], name=f"{hint}/T"), g.ints("one", 1)],
        name=f"{hint}/t",
    )
    L = g.node("Unsqueeze", [sm.lengths, g.ints("axes_1", [1])], name=f"{hint}/L")
    masked_target = g.node(
        "Sub",
        [g.node("Add", [L, t], name=f"{hint}/L_plus_t"), sm.forward_count],
        name=f"{hint}/masked_target",
    )
    target = g.node("Where", [sm.mask, valid_target, masked_target], name=f"{hint}/target")
    t_all = g.node(
        "Expand", [t, g.node("Shape", [target], name=f"{hint}/BT")], name=f"{hint}/t_all"
    )
    src = g.node("ScatterElements", [target, target, t_all], name=f"{hint}/src", axis=1)
    # X[j, b] = x[b, src[b, j]] = row b*T + src[b, j] of x seen as (B*T, D)
    flat = g.node(
        "Add",
        [g.node("Mul", [sm.rows, sm.steps], name=f"{hint}/row_start"), src],
        name=f"{hint}/flat_src",
    )
    # only the first max_b L_b positions hold valid steps: the node runs over those (>= 1)
    longest = g.node(
        "Max",
        [g.node("ReduceMax", [sm.lengths], name=f"{hint}/max_L", keepdims=1), g.ints("one", [1])],
        name=f"{hint}/T_node",
    )
    positions = g.node(
        "Slice",
        [
            g.node("Transpose", [flat], name=f"{hint}/time_major", perm=[1, 0]),
            g.ints("zero", [0]),
            longest,
        ],
        name=f"{hint}/positions",
    )
    rows = g.node("Flatten", [x], name=f"{hint}/rows", axis=2)
    return g.node("Gather", [rows, positions], name=f"{hint}/compact", axis=0)


def restore(g, Y, k, directions, sm, reverse, hint, before_first=None):
    """Direction k of the node's output Y (T', dirs, B, U) -> Keras's outputs (B, T, U) at the
    original steps (step 3). `before_first` (B, U): the output before a row's first valid
    step; None for zeros."""
    count = sm.backward_count if reverse else sm.forward_count
    if reverse:
        L = g.node("Unsqueeze", [sm.lengths, g.ints("axes_1", [1])], name=f"{hint}/L")
        source = g.node("Sub", [L, count], name=f"{hint}/source")
    else:
        source = g.node("Sub", [count, g.ints("one", [1])], name=f"{hint}/source")
    # row of Y' (T*dirs*B, U): (source * dirs + k) * B + b; "none yet": T*dirs*B + b
    dirs = g.ints("dirs", [directions])
    at_step = g.node(
        "Mul",
        [
            g.node(
                "Add",
                [g.node("Mul", [source, dirs], name=f"{hint}/s_dirs"), g.ints("direction", [k])],
                name=f"{hint}/s_k",
            ),
            sm.batch,
        ],
        name=f"{hint}/s_rows",
    )
    at_step = g.node("Add", [at_step, sm.rows], name=f"{hint}/row")
    node_steps = g.dims(Y, 0, 1, f"{hint}/T_node")
    past = g.node(
        "Mul",
        [g.node("Mul", [node_steps, dirs], name=f"{hint}/T_dirs"), sm.batch],
        name=f"{hint}/past",
    )
    none_yet = g.node("Equal", [count, g.ints("zero", [0])], name=f"{hint}/none_yet")
    index = g.node(
        "Where",
        [none_yet, g.node("Add", [past, sm.rows], name=f"{hint}/pad_row"), at_step],
        name=f"{hint}/index",
    )
    rows = g.node("Flatten", [Y], name=f"{hint}/rows", axis=3)
    start = before_first if before_first is not None else zeros_like_rows(g, rows, sm, hint)
    padded = g.node("Concat", [rows, start], name=f"{hint}/padded", axis=0)
    return g.node("Gather", [padded, index], name=f"{hint}/restore", axis=0)


def zeros_like_rows(g, rows, sm, hint):
    """Zeros (B, U) for rows (N, U)."""
    width = g.dims(rows, 1, 2, f"{hint}/U")
    shape = g.node("Concat", [sm.batch, width], name=f"{hint}/BU", axis=0)
    return g.node(
        "ConstantOfShape",
        [shape],
        name=f"{hint}/zeros",
        value=helper.make_tensor("value", FLOAT, [1], [0.0]),
    )


def last_output(g, final_h, sm, reverse, zero_output_for_mask, hint, before_first=None):
    """Keras's last output (B, U) of a masked direction from the node's final h (B, U)."""
    start = (
        before_first
        if before_first is not None
        else g.node("Mul", [final_h, g.initializer("zero_float", 0.0)], name=f"{hint}/zeros")
    )
    last = g.node("Where", [sm.empty, start, final_h], name=f"{hint}/last")
    if zero_output_for_mask:  # zeroed where the last processed step is masked
        step = g.node(
            "Gather",
            [sm.mask, g.ints("step", [0] if reverse else [-1])],
            name=f"{hint}/last_step_valid",
            axis=1,
        )
        last = g.node(
            "Where",
            [
                step,
                last,
                g.node("Mul", [last, g.initializer("zero_float", 0.0)], name=f"{hint}/zeroed"),
            ],
            name=f"{hint}/last_zeroed",
        )
    return last


def zero_masked(g, y, sm, hint):
    """y (B, T, U) with zeros at masked steps (`zero_output_for_mask`)."""
    keep = g.node(
        "Unsqueeze",
        [g.node("Cast", [sm.mask], name=f"{hint}/float", to=FLOAT), g.ints("axes_2", [2])],
        name=f"{hint}/keep",
    )
    return g.node("Mul", [y, keep], name=f"{hint}/zero_masked")


def hold_empty_rows(g, final, initial, sm, hint):
    """A final state (B, U) with rows of L = 0 set to their initial state (zeros if None)."""
    start = initial
    if start is None:
        start = g.node("Mul", [final, g.initializer("zero_float", 0.0)], name=f"{hint}/zeros")
    return g.node("Where", [sm.empty, start, final], name=f"{hint}/held")
