"""Independently recurrent cell (IndRNN): each unit feeds back only its own previous value.

Equations:
    (1) h_t = act(x_t W + u * h_{t-1} + b)                 * elementwise
    (2) u <- clip(u, -u_max, u_max)                        after every optimizer update

Symbols: x_t (B, D) input, h_t (B, U) state and output, W = `kernel` (D, U),
u = `recurrent_kernel` (U,) one recurrent weight per unit (the diagonal of SimpleRNN's (U, U)
matrix: (1) is `SimpleRNNCell`'s equation with U = diag(u)), b = `bias` (U,),
act = `activation` (tanh by default; the paper's is ReLU); without `use_bias`, no b.
u_max = `recurrent_max_abs`; None: no clip.

The bound (Li et al. 2018, section 3.1): unit n's gradient from step T back to step t is
    dJ/dh_{n,t} = dJ/dh_{n,T} * u_n^(T-t) * prod_{k=t+1..T} act'_{n,k}
so keeping it between eps and gamma needs |u_n| in [(eps / prod act')^(1/(T-t)),
(gamma / prod act')^(1/(T-t))]. With ReLU (act' = 1 on active units) the upper bound over the
whole sequence is gamma^(1/T); the paper's experiments clip to 2^(1/T) (gamma = 2). Here
u_max defaults to 1, the limit of gamma^(1/T) as T grows for every gamma: the cell does not
know T (a language model streams without end), and with |u| <= 1 and |act'| <= 1 (ReLU, tanh)
no unit's gradient grows over any number of steps. Pass `recurrent_max_abs=2 ** (1 / T)` for
the paper's value at a known length T. The paper's lower bound (eps, for long memory) is not
enforced; the default initializer draws u in [0, u_max], positive decays inside the clip.

Departure from the paper: act defaults to tanh (as `SimpleRNNCell`'s, Keras's), not ReLU.
Recurrent dropout multiplies h_{t-1} by m_h, whose kept entries are 1 / (1 - p), so while
training a kept unit recurs with u / (1 - p), past u_max; with ReLU a state carried from one
BPTT window to the next then grows without bound. Measured: `keras-gated train --cell indrnn`
with its default recipe (recurrent_dropout 0.2, carried state) on tests/conftest.py's tiny
corpus, E = U = 16, batch 4: ReLU's loss 2.79, 6.93, 167 over the first three steps; tanh,
which keeps h in (-1, 1), 2.63 falling to 2.60 over 20 steps. Pass `activation="relu"` for
the paper's cell.

Reference: Li, Li, Cook, Zhu & Gao, "Independently Recurrent Neural Network (IndRNN):
Building a Longer and Deeper RNN", CVPR 2018 (arXiv:1803.04831).
"""

import keras
from keras import ops

from keras_gated.cells.base import RecurrentCell, masked

RECURRENT_MAX_ABS = 1.0  # u_max of (2); see the module docstring


@keras.saving.register_keras_serializable(package="keras_gated")
class Clip(keras.constraints.Constraint):
    """w -> clip(w, -max_abs, max_abs), elementwise: equation (2)."""

    def __init__(self, max_abs):
        self.max_abs = float(max_abs)

    def __call__(self, w):
        return ops.clip(w, -self.max_abs, self.max_abs)

    def get_config(self):
        return {"max_abs": self.max_abs}


@keras.saving.register_keras_serializable(package="keras_gated")
class IndRNNCell(RecurrentCell):
    """h_t = act(x_t W + u * h_{t-1} + b), |u| <= u_max; see the module docstring.

    Args:
        units: U (> 0).
        activation: act, any Keras activation. Default "tanh" (the paper's is "relu": see
            the module docstring).
        recurrent_initializer: for u (U,). Default None: uniform in [0, u_max] (in [0, 1]
            without a clip).
        recurrent_max_abs: u_max > 0 of (2), or None for no clip. Default `RECURRENT_MAX_ABS`
            (1). The clip applies after `recurrent_constraint`, if one is given.
        **kwargs: Keras's other cell arguments (bias, initializers, regularizers, constraints,
            dropout), see `RecurrentCell`.
    """

    gates = ("h",)

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_initializer=None,
        recurrent_max_abs=RECURRENT_MAX_ABS,
        **kwargs,
    ):
        self.recurrent_max_abs = _check_max_abs(recurrent_max_abs)
        if recurrent_initializer is None:
            recurrent_initializer = keras.initializers.RandomUniform(
                0.0, self.recurrent_max_abs or 1.0
            )
        super().__init__(
            units, activation=activation, recurrent_initializer=recurrent_initializer, **kwargs
        )

    def recurrent_shape(self):
        return (self.units,)

    def recurrent_kernel_constraint(self):
        """clip (2) after `recurrent_constraint`, if any."""
        first, clip = self.recurrent_constraint, None
        if self.recurrent_max_abs is not None:
            clip = Clip(self.recurrent_max_abs)
        if first is None or clip is None:
            return first or clip
        return lambda u: clip(first(u))

    def gates_at(self, xw_t, states, recurrent_mask=None, weights=None):
        """One step's quantities: {"h"}, each (B, U). `weights`: see `step_weights`."""
        u = (weights or self.step_weights())["recurrent_kernel"]
        (h_prev,) = states
        h = self.activation(xw_t + u * masked(h_prev, recurrent_mask))  # (1)
        return {"h": h}

    def step(self, xw_t, states, recurrent_mask=None, weights=None):
        h = self.gates_at(xw_t, states, recurrent_mask, weights)["h"]
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "recurrent_max_abs": self.recurrent_max_abs}


def _check_max_abs(value):
    """`recurrent_max_abs` as a float > 0, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            f"`recurrent_max_abs` must be a number > 0 or None, got recurrent_max_abs={value!r}"
        )
    return float(value)
