"""Vanilla (Elman) recurrent cell.

Equation:
    (1) h_t = act(x_t W + h_{t-1} U + b)

Symbols: x_t (B, D) input, h_t (B, U) state and output, W = `kernel` (D, U),
U = `recurrent_kernel` (U, U), b = `bias` (U,), act = `activation` (tanh by default); without `use_bias`, no b.

Reference: Elman, "Finding structure in time", 1990. Weights match `keras.layers.SimpleRNNCell`.
"""

import keras
from keras import ops

from keras_gated.cells.base import RecurrentCell, masked


@keras.saving.register_keras_serializable(package="keras_gated")
class SimpleRNNCell(RecurrentCell):
    """h_t = act(x_t W + h_{t-1} U + b).

    Args:
        units: U (> 0).
        activation: act, any Keras activation. Default "tanh"; "linear" gives the linear
            recurrence used to study gradient flow.
        **kwargs: Keras's other cell arguments (bias, initializers, regularizers, constraints,
            dropout), see `RecurrentCell`.
    """

    gates = ("h",)

    def gates_at(self, xw_t, states, recurrent_mask=None, weights=None):
        """One step's quantities: {"h"}, each (B, U). `weights`: see `step_weights`."""
        U = (weights or self.step_weights())["recurrent_kernel"]
        (h_prev,) = states
        h = self.activation(xw_t + ops.matmul(masked(h_prev, recurrent_mask), U))  # (1)
        return {"h": h}

    def step(self, xw_t, states, recurrent_mask=None, weights=None):
        h = self.gates_at(xw_t, states, recurrent_mask, weights)["h"]
        return h, [h]
