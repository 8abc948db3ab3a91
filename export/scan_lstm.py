"""A layer-normalised LSTM (`LSTMCell(layer_norm=True)`) as an explicit ONNX `Scan`.

No ONNX operator normalises gate pre-activations, so the cell's equations (numbered as in
`keras_gated/cells/lstm.py`) become the body of a `Scan` over time:

    outside:  xw = x W                                    (B, T, 4U), time-major for the scan
    body:     a   = xw_t + h_{t-1} U                      (1) before the norm
              a_k = gamma_k * LN(a_k) + b_k               per gate k, over its U units, eps 1e-3
              i = sigmoid(a_i + p_i c_{t-1})              (2)
              f = sigmoid(a_f + p_f c_{t-1})              (3)
              g = tanh(a_g)                               (4)
              c_t = f c_{t-1} + i g                       (5)
              o = sigmoid(a_o + p_o c_t)                  (6)
              h_t = o tanh(c_t)                           (7)
    mask m_t: states and output held where m_t is False (Keras's semantics), the emitted output
              zeroed there with `zero_output_for_mask`.
A reverse direction scans with `scan_input_directions = 1` and writes its outputs back in
input order (`scan_output_directions = 1`), as the native nodes do.
"""

import numpy as np
from onnx import TensorProto, helper

from .graph import FLOAT, GraphBuilder, rename_graph
from .native import numpy_weight
from .recurrent import Result
from keras_gated.cells.gates import LSTM_GATES
from keras_gated.cells.lstm import LAYER_NORM_EPSILON, PEEPHOLE_GATES

BOOL = TensorProto.BOOL


def lstm_body(cell, zero_output_for_mask):
    """The Scan body: (h, c, out, xw_t (B, 4U), m_t (B, 1)) -> (h, c, out, emitted (B, U))."""
    units, width = cell.units, len(LSTM_GATES) * cell.units
    b = GraphBuilder("layer_norm_lstm_step")
    dims = ["batch", units]
    h, c, out = (b.add_input(name, FLOAT, dims) for name in ("h", "c", "out"))
    xw_t = b.add_input("xw_t", FLOAT, ["batch", width])
    m_t = b.add_input("m_t", BOOL, ["batch", 1])
    U = b.initializer("recurrent_kernel", numpy_weight(cell.recurrent_kernel))
    a = b.node("Add", [xw_t, b.node("MatMul", [h, U])], name="a")  # (1)
    per_gate = b.node("Reshape", [a, b.ints("gate_shape", [0, len(LSTM_GATES), units])])
    axes, inv_units = b.ints("axes", [-1]), b.initializer("inv_units", np.float32(1.0 / units))

    def mean(t):  # ReduceSum (axes as an input at every opset >= 13) / U
        return b.node("Mul", [b.node("ReduceSum", [t, axes], keepdims=1), inv_units])

    centred = b.node("Sub", [per_gate, mean(per_gate)])
    var = mean(b.node("Mul", [centred, centred]))
    eps = b.initializer("epsilon", np.float32(LAYER_NORM_EPSILON))
    normed = b.node("Div", [centred, b.node("Sqrt", [b.node("Add", [var, eps])])])
    flat = b.node("Reshape", [normed, b.ints("flat_shape", [0, width])])
    a = b.node("Add", [b.node("Mul", [flat, b.initializer("gamma", numpy_weight(cell.gamma))]),
                       b.initializer("bias", numpy_weight(cell.bias))], name="a_normed")
    parts = dict(zip(LSTM_GATES, b.node("Split", [a, b.ints("split", [units] * 4)],
                                        outputs=len(LSTM_GATES), axis=1)))
    if cell.peephole:
        P = numpy_weight(cell.peephole_kernel)
        p = {gate: b.initializer(f"p_{gate}", P[k]) for k, gate in enumerate(PEEPHOLE_GATES)}

    def peep(gate, state):
        return parts[gate] if not cell.peephole else b.node("Add", [parts[gate], b.node(
            "Mul", [p[gate], state])])

    i = b.node("Sigmoid", [peep("i", c)], name="i")  # (2)
    f = b.node("Sigmoid", [peep("f", c)], name="f")  # (3)
    g = b.node("Tanh", [parts["g"]], name="g")  # (4)
    c_t = b.node("Add", [b.node("Mul", [f, c]), b.node("Mul", [i, g])], name="c_t")  # (5)
    o = b.node("Sigmoid", [peep("o", c_t)], name="o")  # (6)
    h_t = b.node("Mul", [o, b.node("Tanh", [c_t])], name="h_t")  # (7)
    b.node("Where", [m_t, h_t, h], outputs=["h_next"])
    b.node("Where", [m_t, c_t, c], outputs=["c_next"])
    out_next = b.node("Where", [m_t, h_t, out], outputs=["out_next"])
    if zero_output_for_mask:
        b.node("Where", [m_t, out_next, b.node("Mul", [out_next, b.initializer("zero", 0.0)])],
               outputs=["emitted"])
    else:
        b.node("Identity", [out_next], outputs=["emitted"])
    for name in ("h_next", "c_next", "out_next", "emitted"):
        b.add_output(name, FLOAT, dims)
    return helper.make_graph(b.nodes, b.name, b.inputs, b.outputs, b.initializers)


def _own_names(body, prefix):
    """`body` with every name prefixed, so none shadows a tensor of the outer graph."""
    rename_graph(body, lambda name: f"{prefix}/{name}")
    return body


def run_layer_norm_lstm(g, direction, x, sm, name, sequences):
    """One direction of a layer-normalised LSTM over x (B, T, D) -> `recurrent.Result`."""
    cell = direction.cell
    xw = g.node("MatMul", [x, g.initializer(f"{name}/kernel", numpy_weight(cell.kernel))],
                name=f"{name}/xw")
    xs = g.node("Transpose", [xw], name=f"{name}/time_major", perm=[1, 0, 2])
    if sm is not None:
        mask = g.node("Cast", [g.node("Transpose", [sm.m], perm=[1, 0])], name=f"{name}/m",
                      to=BOOL)
    else:
        shape = g.dims(xs, 0, 2, f"{name}/TB")
        mask = g.node("Expand", [g.initializer("true", np.array([True]), dtype=bool), shape],
                      name=f"{name}/no_mask")
    mask = g.node("Unsqueeze", [mask, g.ints("axes_2", [2])], name=f"{name}/m_3d")  # (T, B, 1)
    batch = g.dims(x, 0, 1, f"{name}/B")
    zeros = g.node("ConstantOfShape", [g.node("Concat", [batch, g.ints("U", [cell.units])],
                                              axis=0)], name=f"{name}/zeros",
                   value=helper.make_tensor("value", FLOAT, [1], [0.0]))
    h0, c0 = direction.initial or (zeros, zeros)
    reverse = int(direction.reverse)
    h, c, _, ys = g.node("Scan", [h0, c0, zeros, xs, mask], outputs=4, name=name,
                         body=_own_names(lstm_body(cell, direction.layer.zero_output_for_mask),
                                         f"{name}/step"),
                         num_scan_inputs=2, scan_input_directions=[reverse, reverse],
                         scan_output_directions=[reverse])
    sequence = g.node("Transpose", [ys], name=f"{name}/batch_major", perm=[1, 0, 2])
    last = g.node("Gather", [sequence, g.ints("step", 0 if reverse else -1)],
                  name=f"{name}/last", axis=1)
    return Result(sequence, last, [h, c])
