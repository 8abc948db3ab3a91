"""Recurrent cells without a native ONNX node, as an explicit `Scan` of their equations.

No ONNX operator normalises gate pre-activations or zones out a state, so a layer-normalised
`LSTMCell` or `GRUCell`, or one with zoneout, runs its cell's equations, numbered as in
`keras_gated/cells/lstm.py` and `gru.py`, as the body of a `Scan` over time:

    outside:  xw = project(x)                  (B, T, G*U), time-major for the scan
              LSTM  x W                         (its bias comes after the norm, in the body)
              GRU   x W + b^x, or gamma^x * LN(x W) + b^x with layer_norm (L1)
    body:     LSTM  a = xw_t + h_{t-1} U                               (1) before the norm
                    a_k = gamma_k * LN(a_k) + b_k  (layer_norm), else a_k + b_k
                    i, f, g, c_t, o, h_t                               (2)-(7)
              GRU   h_{t-1} U [+ b^h], gamma^h * LN(h_{t-1} U) with layer_norm (L2)
                    z, r, h~, h_t                                      (1)-(4), (L3) in (3b)
              zoneout at inference (the cells' (Z2) / (Z3)): s_t = p s_{t-1} + (1 - p) s'_t
              for each state s with a rate p
    mask m_t: states and output held where m_t is False (Keras's semantics), the emitted output
              zeroed there with `zero_output_for_mask`.
LN is `cells.base.layer_norm_per_gate`: each gate's U units to mean 0 and variance 1.
A reverse direction scans with `scan_input_directions = 1` and writes its outputs back in
input order (`scan_output_directions = 1`), as the native nodes do.
"""

import numpy as np
from onnx import TensorProto, helper

from keras_gated.cells import GRUCell, LSTMCell
from keras_gated.cells.base import LAYER_NORM_EPSILON
from keras_gated.cells.gates import GRU_GATES, LSTM_GATES
from keras_gated.cells.lstm import PEEPHOLE_GATES

from .graph import FLOAT, GraphBuilder, rename_graph
from .layout import ONNX_ACTIVATIONS
from .lower_recurrent import Result
from .native import NotNative, activation_name, numpy_weight, state_kinds

BOOL = TensorProto.BOOL


def layer_norm_per_gate(b, a, units, hint):
    """LN(a_k) for every gate k of a (..., G*U), as `cells.base.layer_norm_per_gate`: one row
    per gate (Reshape to (-1, U)), mean 0 and variance 1 (epsilon inside the root), back."""
    rows = b.node("Reshape", [a, b.ints("gate_rows", [-1, units])], name=f"{hint}/rows")
    axes = b.ints("axes_last", [-1])
    inv_units = b.initializer("inv_units", np.float32(1.0 / units))

    def mean(t):  # ReduceSum (axes as an input at every opset >= 13) / U
        return b.node("Mul", [b.node("ReduceSum", [t, axes], keepdims=1), inv_units])

    centred = b.node("Sub", [rows, mean(rows)], name=f"{hint}/centred")
    var = mean(b.node("Mul", [centred, centred]))
    eps = b.initializer("epsilon", np.float32(LAYER_NORM_EPSILON))
    normed = b.node("Div", [centred, b.node("Sqrt", [b.node("Add", [var, eps])])])
    return b.node("Reshape", [normed, b.node("Shape", [a])], name=hint)


def normed(b, cell, t, gain, bias, hint):
    """gain * LN(t) + bias with the cell's layer_norm, else t + bias; no Add when `bias` (an
    array) is None."""
    if cell.layer_norm:
        t = layer_norm_per_gate(b, t, cell.units, f"{hint}/norm")
        t = b.node("Mul", [t, b.initializer(f"{hint}_gamma", gain)], name=f"{hint}_scaled")
    return t if bias is None else b.node("Add", [t, b.initializer(f"{hint}_bias", bias)], name=hint)


def gains(cell):
    """The cell's layer-norm gains as float32 numpy, or None without layer_norm."""
    return numpy_weight(cell.gamma) if cell.layer_norm else None


def expected_zoneout(b, cell, states, new):
    """Each new state s'_t as zoneout's expectation p s_{t-1} + (1 - p) s'_t (the cells'
    inference equations), where the state has a rate p."""
    rates = cell.zoneout_rates()
    out = []
    for kind, state, value in zip(state_kinds(cell), states, new):
        p = rates.get(kind, 0.0)
        if p > 0.0:
            value = b.node(
                "Add",
                [
                    b.node("Mul", [b.initializer(f"p_{kind}", np.float32(p)), state]),
                    b.node("Mul", [b.initializer(f"q_{kind}", np.float32(1 - p)), value]),
                ],
                name=f"{kind}_zoned",
            )
        out.append(value)
    return out


def activation(b, fn, x, hint):
    """A Keras activation of the cell as one ONNX node."""
    name = activation_name(fn)
    if name not in ONNX_ACTIVATIONS:
        raise NotNative(
            f"activation {name!r} has no ONNX equivalent here; supported: "
            f"{sorted(ONNX_ACTIVATIONS)}"
        )
    op, alpha, beta = ONNX_ACTIVATIONS[name]
    if op == "Affine":  # linear: alpha 1, beta 0
        return b.node("Identity", [x], name=hint)
    extra = {} if alpha is None else {"alpha": alpha, "beta": beta}
    return b.node(op, [x], name=hint, **extra)


def bias_of(cell):
    """The cell's bias as float32 numpy, or None without `use_bias`."""
    return None if cell.bias is None else numpy_weight(cell.bias)


def project_lstm(g, cell, x, name):
    """x W (B, T, 4U): the bias comes after the norm, in the step."""
    return g.node(
        "MatMul", [x, g.initializer(f"{name}/kernel", numpy_weight(cell.kernel))], name=f"{name}/xw"
    )


def project_gru(g, cell, x, name):
    """x W + b^x, or gamma^x * LN(x W) + b^x (L1) (B, T, 3U); b for reset_after=False."""
    xw = project_lstm(g, cell, x, name)
    bias, gamma = bias_of(cell), gains(cell)
    b_x = bias[0] if bias is not None and cell.reset_after else bias
    return normed(g, cell, xw, None if gamma is None else gamma[0], b_x, f"{name}/xw_b")


def lstm_step(b, cell, xw_t, states):
    """The LSTM cell's (1)-(7): [h'_t, c'_t] (B, U), before zoneout."""
    units, (h, c) = cell.units, states
    U = b.initializer("recurrent_kernel", numpy_weight(cell.recurrent_kernel))
    a = b.node("Add", [xw_t, b.node("MatMul", [h, U])], name="a")  # (1)
    a = normed(b, cell, a, gains(cell), bias_of(cell), "a_b")
    parts = dict(
        zip(
            LSTM_GATES,
            b.node("Split", [a, b.ints("split", [units] * 4)], outputs=len(LSTM_GATES), axis=1),
        )
    )
    if cell.peephole:
        P = numpy_weight(cell.peephole_kernel)
        p = {gate: b.initializer(f"p_{gate}", P[k]) for k, gate in enumerate(PEEPHOLE_GATES)}

    def peep(gate, state):
        return (
            parts[gate]
            if not cell.peephole
            else b.node("Add", [parts[gate], b.node("Mul", [p[gate], state])])
        )

    sigmoid = lambda t, name: activation(b, cell.recurrent_activation, t, name)  # noqa: E731
    tanh = lambda t, name: activation(b, cell.activation, t, name)  # noqa: E731
    i = sigmoid(peep("i", c), "i")  # (2)
    f = sigmoid(peep("f", c), "f")  # (3)
    g = tanh(parts["g"], "g")  # (4)
    c_t = b.node("Add", [b.node("Mul", [f, c]), b.node("Mul", [i, g])], name="c_t")  # (5)
    o = sigmoid(peep("o", c_t), "o")  # (6)
    h_t = b.node("Mul", [o, tanh(c_t, "tanh_c")], name="h_t")  # (7)
    return [h_t, c_t]


def gru_step(b, cell, xw_t, states):
    """The GRU cell's (1)-(4) (with (L2)/(L3), xw_t already (L1)): [h'_t] (B, U), before
    zoneout."""
    units, (h,) = cell.units, states
    R, gamma, bias = numpy_weight(cell.recurrent_kernel), gains(cell), bias_of(cell)
    gamma_h = None if gamma is None else gamma[1]
    xw = dict(
        zip(
            GRU_GATES,
            b.node("Split", [xw_t, b.ints("split3", [units] * 3)], outputs=3, axis=1, name="xw"),
        )
    )
    sigmoid = lambda t, name: activation(b, cell.recurrent_activation, t, name)  # noqa: E731
    if cell.reset_after:  # (L2) over all three gates, then b^h
        hU = b.node("MatMul", [h, b.initializer("U", R)], name="hU")
        hU = normed(b, cell, hU, gamma_h, None if bias is None else bias[1], "hU_b")
        u = dict(
            zip(
                GRU_GATES,
                b.node("Split", [hU, b.ints("split3", [units] * 3)], outputs=3, axis=1, name="u"),
            )
        )
    else:  # (L2) over z and r; h~'s own matmul is (L3)
        hU = b.node("MatMul", [h, b.initializer("U_zr", R[:, : 2 * units])], name="hU_zr")
        hU = normed(b, cell, hU, None if gamma_h is None else gamma_h[: 2 * units], None, "hU_zr_n")
        u = dict(
            zip(
                GRU_GATES[:2],
                b.node("Split", [hU, b.ints("split2", [units] * 2)], outputs=2, axis=1, name="u"),
            )
        )
    z = sigmoid(b.node("Add", [xw["z"], u["z"]]), "z")  # (1)
    r = sigmoid(b.node("Add", [xw["r"], u["r"]]), "r")  # (2)
    if cell.reset_after:
        candidate = b.node("Add", [xw["h"], b.node("Mul", [r, u["h"]])])  # (3a)
    else:
        rhU = b.node(
            "MatMul", [b.node("Mul", [r, h]), b.initializer("U_h", R[:, 2 * units :])], name="rhU_h"
        )
        rhU = normed(
            b, cell, rhU, None if gamma_h is None else gamma_h[2 * units :], None, "rhU_h_n"
        )  # (L3)
        candidate = b.node("Add", [xw["h"], rhU])  # (3b)
    h_tilde = activation(b, cell.activation, candidate, "h_tilde")
    one_minus_z = b.node("Sub", [b.initializer("one", np.float32(1.0)), z])
    h_t = b.node(
        "Add", [b.node("Mul", [z, h]), b.node("Mul", [one_minus_z, h_tilde])], name="h_t"
    )  # (4)
    return [h_t]


CELLS = ((LSTMCell, project_lstm, lstm_step), (GRUCell, project_gru, gru_step))


def _cell_functions(cell):
    for kind, project, step in CELLS:
        if isinstance(cell, kind):
            return project, step
    raise NotNative(f"cell {type(cell).__name__} has no Scan body")


def scan_body(cell, zero_output_for_mask):
    """The Scan body: (*states, out, xw_t (B, G*U), m_t (B, 1)) -> (*states, out, emitted
    (B, U)), states in `state_kinds(cell)` order."""
    _, step = _cell_functions(cell)
    units, kinds = cell.units, state_kinds(cell)
    b = GraphBuilder(f"{type(cell).__name__}_step")
    dims = ["batch", units]
    states = [b.add_input(kind, FLOAT, dims) for kind in kinds]
    out = b.add_input("out", FLOAT, dims)
    xw_t = b.add_input("xw_t", FLOAT, ["batch", len(cell.gates) * units])
    m_t = b.add_input("m_t", BOOL, ["batch", 1])
    new = expected_zoneout(b, cell, states, step(b, cell, xw_t, states))
    for kind, new_state, state in zip(kinds, new, states):
        b.node("Where", [m_t, new_state, state], outputs=[f"{kind}_next"])
    out_next = b.node("Where", [m_t, new[0], out], outputs=["out_next"])
    if zero_output_for_mask:
        b.node(
            "Where",
            [m_t, out_next, b.node("Mul", [out_next, b.initializer("zero", 0.0)])],
            outputs=["emitted"],
        )
    else:
        b.node("Identity", [out_next], outputs=["emitted"])
    for name in [f"{kind}_next" for kind in kinds] + ["out_next", "emitted"]:
        b.add_output(name, FLOAT, dims)
    return helper.make_graph(b.nodes, b.name, b.inputs, b.outputs, b.initializers)


def _own_names(body, prefix):
    """`body` with every name prefixed, so none shadows a tensor of the outer graph."""
    rename_graph(body, lambda name: f"{prefix}/{name}")
    return body


def run_scan(g, direction, x, sm, name, sequences):
    """One direction of a `native.runs_as_scan` cell over x (B, T, D) -> `recurrent.Result`."""
    cell = direction.cell
    project, _ = _cell_functions(cell)
    kinds = state_kinds(cell)
    xs = g.node("Transpose", [project(g, cell, x, name)], name=f"{name}/time_major", perm=[1, 0, 2])
    if sm is not None:
        mask = g.node("Cast", [g.node("Transpose", [sm.m], perm=[1, 0])], name=f"{name}/m", to=BOOL)
    else:
        shape = g.dims(xs, 0, 2, f"{name}/TB")
        mask = g.node(
            "Expand",
            [g.initializer("true", np.array([True]), dtype=bool), shape],
            name=f"{name}/no_mask",
        )
    mask = g.node("Unsqueeze", [mask, g.ints("axes_2", [2])], name=f"{name}/m_3d")  # (T, B, 1)
    batch = g.dims(x, 0, 1, f"{name}/B")
    zeros = g.node(
        "ConstantOfShape",
        [g.node("Concat", [batch, g.ints("U", [cell.units])], axis=0)],
        name=f"{name}/zeros",
        value=helper.make_tensor("value", FLOAT, [1], [0.0]),
    )
    initial = direction.initial or [zeros] * len(kinds)
    reverse = int(direction.reverse)
    *finals, _, ys = g.node(
        "Scan",
        [*initial, zeros, xs, mask],
        outputs=len(kinds) + 2,
        name=name,
        body=_own_names(scan_body(cell, direction.layer.zero_output_for_mask), f"{name}/step"),
        num_scan_inputs=2,
        scan_input_directions=[reverse, reverse],
        scan_output_directions=[reverse],
    )
    sequence = g.node("Transpose", [ys], name=f"{name}/batch_major", perm=[1, 0, 2])
    last = g.node(
        "Gather", [sequence, g.ints("step", 0 if reverse else -1)], name=f"{name}/last", axis=1
    )
    return Result(sequence, last, finals)
