"""Weight reorders from our cells (Keras layout) to the ONNX `LSTM`, `GRU` and `RNN` operators.

ONNX names (operator spec, one direction, so num_directions = 1):
    W (1, G*U, D)   input weights, gate blocks stacked along rows: W = [W_a; W_b; ...]
    R (1, G*U, U)   recurrent weights, same block order
    B (1, 2*G*U)    [Wb | Rb]: input biases then recurrent biases, each in the same block order
    P (1, 3U)       LSTM peepholes [P_i | P_o | P_f]

Block orders: LSTM `iofc` (c is our candidate g), GRU `zrh`, RNN one block (IndRNN too: its
recurrent vector u (U,) becomes the diagonal matrix R = diag(u)). Ours are
`LSTM_GATES` = i, f, g, o and `GRU_GATES` = z, r, h with kernel (D, G*U) = [W_a | W_b | ...],
so every W is kernel^T with its blocks reordered (likewise R from recurrent_kernel).
Every reorder below is derived from those constants; no index lists.
"""

import numpy as np

from keras_gated.cells.gates import GRU_GATES, LSTM_GATES, gate_slice
from keras_gated.cells.lstm import PEEPHOLE_GATES

ONNX_LSTM_GATES = ("i", "o", "f", "c")
ONNX_GRU_GATES = ("z", "r", "h")
ONNX_PEEPHOLE_GATES = ("i", "o", "f")
ONNX_TO_KERAS_LSTM_GATE = {"i": "i", "o": "o", "f": "f", "c": "g"}  # ONNX calls g "c"

# Keras activation name -> (ONNX activation, alpha, beta); alpha/beta None where unused.
# "linear" is ONNX's Affine (alpha * x + beta); Keras's hard_sigmoid is relu6(x + 3) / 6,
# ONNX's HardSigmoid max(0, min(1, alpha * x + beta)) with alpha = 1/6, beta = 1/2.
ONNX_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "linear": ("Affine", 1.0, 0.0),
}


def reorder_gates(packed, source_gates, target_gates, units):
    """Reorders the gate blocks of the last axis of `packed` (..., G*U).

    Args:
        packed: array whose last axis holds len(source_gates) blocks of `units`.
        source_gates: gate names in `packed`'s order.
        target_gates: the same names in the wanted order.
        units: U, the width of one block.

    Returns:
        array (..., G*U) with blocks in `target_gates` order.
    """
    if sorted(source_gates) != sorted(target_gates):
        raise ValueError(f"gate sets differ: {source_gates} vs {target_gates}")
    blocks = [packed[..., gate_slice(g, source_gates, units)] for g in target_gates]
    return np.concatenate(blocks, axis=-1)


def _as_onnx_weight(matrix, source_gates, target_gates, units):
    """kernel (D, G*U) -> W (1, G*U, D) with blocks reordered."""
    return reorder_gates(np.asarray(matrix), source_gates, target_gates, units).T[None]


def _onnx_lstm_in_keras_names():
    return tuple(ONNX_TO_KERAS_LSTM_GATE[g] for g in ONNX_LSTM_GATES)


def keras_to_onnx_lstm(kernel, recurrent_kernel, bias):
    """Our LSTM weights -> ONNX (W, R, B).

    Args:
        kernel: (D, 4U) = [W_i | W_f | W_g | W_o].
        recurrent_kernel: (U, 4U), same order.
        bias: (4U,), same order.

    Returns:
        W (1, 4U, D), R (1, 4U, U), B (1, 8U) = [Wb | Rb] in `iofc` order, Rb = 0.
    """
    units = np.shape(recurrent_kernel)[0]
    target = _onnx_lstm_in_keras_names()
    W = _as_onnx_weight(kernel, LSTM_GATES, target, units)
    R = _as_onnx_weight(recurrent_kernel, LSTM_GATES, target, units)
    Wb = reorder_gates(np.asarray(bias), LSTM_GATES, target, units)
    B = np.concatenate([Wb, np.zeros_like(Wb)])[None]
    return W, R, B


def keras_to_onnx_lstm_peephole(peephole):
    """Our `peephole` (3, U), rows p_i, p_f, p_o -> ONNX P (1, 3U) = [P_i | P_o | P_f]."""
    peephole = np.asarray(peephole)
    rows = [peephole[PEEPHOLE_GATES.index(g)] for g in ONNX_PEEPHOLE_GATES]
    return np.concatenate(rows)[None]


def keras_to_onnx_gru(kernel, recurrent_kernel, bias, reset_after):
    """Our GRU weights -> ONNX (W, R, B, linear_before_reset).

    Both orders are `zrh`, so W and R are plain transposes. reset_after=True (bias (2, 3U),
    rows b^x, b^h) is ONNX `linear_before_reset=1` with B = [b^x | b^h]; reset_after=False
    (bias (3U,)) is `linear_before_reset=0` with B = [b | 0].

    Returns:
        W (1, 3U, D), R (1, 3U, U), B (1, 6U), linear_before_reset (0 or 1).
    """
    units = np.shape(recurrent_kernel)[0]
    W = _as_onnx_weight(kernel, GRU_GATES, ONNX_GRU_GATES, units)
    R = _as_onnx_weight(recurrent_kernel, GRU_GATES, ONNX_GRU_GATES, units)
    bias = np.asarray(bias)
    if reset_after:
        Wb, Rb = (reorder_gates(row, GRU_GATES, ONNX_GRU_GATES, units) for row in bias)
    else:
        Wb = reorder_gates(bias, GRU_GATES, ONNX_GRU_GATES, units)
        Rb = np.zeros_like(Wb)
    return W, R, np.concatenate([Wb, Rb])[None], int(bool(reset_after))


def keras_to_onnx_rnn(kernel, recurrent_kernel, bias):
    """Our SimpleRNN weights -> ONNX (W (1, U, D), R (1, U, U), B (1, 2U) = [b | 0])."""
    b = np.asarray(bias)
    return (
        np.asarray(kernel).T[None],
        np.asarray(recurrent_kernel).T[None],
        np.concatenate([b, np.zeros_like(b)])[None],
    )


def keras_to_onnx_indrnn(kernel, recurrent_kernel, bias):
    """Our IndRNN weights (u = recurrent_kernel (U,)) -> ONNX `RNN` operands: an RNN whose
    recurrent matrix is diagonal, R = diag(u): W (1, U, D), R (1, U, U), B (1, 2U) = [b | 0]."""
    return keras_to_onnx_rnn(kernel, np.diag(np.asarray(recurrent_kernel)), bias)


def onnx_activations(names):
    """ONNX recurrent-node attributes for Keras activation `names`, in the node's order.

    The node's `activation_alpha`/`activation_beta` lists are consumed in order by the
    activations that take them (HardSigmoid, Affine), so they hold only those values.

    Raises:
        NotImplementedError: an activation with no ONNX equivalent.
    """
    unknown = [name for name in names if name not in ONNX_ACTIVATIONS]
    if unknown:
        raise NotImplementedError(
            f"activation {unknown[0]!r} has no ONNX recurrent-node "
            f"equivalent; supported: {sorted(ONNX_ACTIVATIONS)}"
        )
    specs = [ONNX_ACTIVATIONS[name] for name in names]
    attrs = {"activations": [op for op, _, _ in specs]}
    alphas = [alpha for _, alpha, _ in specs if alpha is not None]
    if alphas:
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = [beta for _, _, beta in specs if beta is not None]
    return attrs


def onnx_rnn_activation(activation):
    """The ONNX `RNN` attributes for a SimpleRNN `activation` name."""
    return onnx_activations([activation])
