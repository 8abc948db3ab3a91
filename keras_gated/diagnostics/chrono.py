"""Chrono initialisation of gate biases (Tallec & Ollivier 2018), for the demo and the sweep.

Tasks that reward only units keeping information for T steps need gates that start open to the
past: with Keras's default biases (LSTM f = sigmoid(1) = 0.73, GRU z = sigmoid(0) = 0.5) the
gradient through the gates shrinks like 0.73^k and 0.5^k at initialisation.
"""

import numpy as np

from keras_gated.cells.gates import gate_slice
from keras_gated.layers import GRU, LSTM

CHRONO_GATES = {LSTM: ("f", "i"), GRU: ("z", None)}  # (gate set to log u, gate set to -log u)


def chrono_gate_bias(layer, max_delay, rng):
    """Chrono initialisation of a built LSTM's or GRU's gate bias; returns the time constants u.

    Each unit draws u ~ U[1, max_delay - 1] and keeps its state for about u steps:
        LSTM  b_f = log(u), b_i = -b_f     f = sigmoid(b_f) = u / (1 + u) at zero input
        GRU   b_z = log(u)                 (z is the weight of h_{t-1} in our GRU's (4); the
                                            paper's z is our 1 - z, hence its minus sign)
    The other biases are left as they are (zero). A GRU with reset_after has b_z = b_z^x + b_z^h:
    b_z^x is set, b_z^h zeroed. Reference: Tallec & Ollivier 2018, "Can recurrent neural
    networks warp time?" (ICLR).

    Args:
        layer: a built `LSTM` or `GRU` layer of ours.
        max_delay: T_max (>= 3), the longest dependency expected.
        rng: a `numpy.random.Generator`.

    Returns:
        u, (U,) float64.
    """
    if type(layer) not in CHRONO_GATES:
        raise ValueError(f"chrono initialisation needs an LSTM or GRU layer, got {layer.name}")
    cell = layer.cell
    u = rng.uniform(1.0, max_delay - 1.0, size=cell.units)
    bias = np.asarray(cell.bias.numpy(), dtype="float64")
    rows = bias if bias.ndim == 1 else bias[0]  # a view: GRU(reset_after) sets b^x
    keep, write = CHRONO_GATES[type(layer)]
    rows[gate_slice(keep, cell.gates, cell.units)] = np.log(u)
    if bias.ndim == 2:
        bias[1, gate_slice(keep, cell.gates, cell.units)] = 0.0
    if write is not None:
        rows[gate_slice(write, cell.gates, cell.units)] = -np.log(u)
    cell.bias.assign(bias.astype(cell.bias.dtype))
    return u
