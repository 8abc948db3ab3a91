"""Long short-term memory cell, with optional peepholes and layer normalisation.

Equations (gate order i, f, g, o: `LSTM_GATES`):
    (1) a_k = x_t W_k + h_{t-1} U_k + b_k                  for k in i, f, g, o
    (2) i_t = sigmoid(a_i + p_i * c_{t-1})                  input gate
    (3) f_t = sigmoid(a_f + p_f * c_{t-1})                  forget gate
    (4) g_t = tanh(a_g)                                     candidate C~_t
    (5) c_t = f_t * c_{t-1} + i_t * g_t                     cell state
    (6) o_t = sigmoid(a_o + p_o * c_t)                      output gate
    (7) h_t = o_t * tanh(c_t)                               hidden state and output

sigmoid is `recurrent_activation` and tanh `activation` (Keras's arguments and defaults);
with `use_bias=False` every b term is absent.

Symbols: x_t (B, D), h_t and c_t (B, U).
Packed layout: kernel (D, 4U) = [W_i | W_f | W_g | W_o], recurrent_kernel (U, 4U) likewise,
bias (4U,) = [b_i | b_f | b_g | b_o] (Keras's `LSTMCell` layout, where g is called c).

Options:
- `peephole=True` (Gers & Schmidhuber 2000): p_i, p_f, p_o are rows of `peephole` (3, U);
  without it the p terms are absent.
- `layer_norm=True` (Ba et al. 2016): (1) becomes
  a_k = gamma_k * LN(x_t W_k + h_{t-1} U_k) + b_k, LN normalising each gate's U units to mean 0
  and variance 1 (epsilon 1e-3); gamma = `gamma` (4U,), initialised to 1.
- `zoneout=p_h`, `cell_zoneout=p_c` (Krueger et al. 2016; `zoneout.py`): c'_t and h'_t the
  values of (5) and (7) ((6) and (7) read c'_t, as in the paper),
    (Z1) c_t = d^c_t * c_{t-1} + (1 - d^c_t) * c'_t   training, d^c_t ~ Bernoulli(p_c) (B, U)
    (Z2) h_t = d^h_t * h_{t-1} + (1 - d^h_t) * h'_t   training, d^h_t ~ Bernoulli(p_h) (B, U)
    (Z3) c_t = p_c c_{t-1} + (1 - p_c) c'_t,  h_t = p_h h_{t-1} + (1 - p_h) h'_t   inference
  the masks fresh at every step (the paper's, default) or one per sequence
  (`zoneout_variational`).
- `unit_forget_bias=True` (default, Jozefowicz et al. 2015): b_f is *set to* 1 at
  initialisation (not added to `bias_initializer`'s value); the other slices use `bias_initializer`.

Reference: Hochreiter & Schmidhuber 1997; Gers et al. 2000 (forget gate).
"""

import keras
from keras import ops

from keras_gated import checks
from keras_gated.cells.base import GatedCell, layer_norm_per_gate, masked, plus_bias
from keras_gated.cells.gates import LSTM_GATES, activate_gates, gate_slice, split_gates
from keras_gated.cells.zoneout import zoned

PEEPHOLE_GATES = ("i", "f", "o")


@keras.saving.register_keras_serializable(package="keras_gated")
class LSTMCell(GatedCell):
    """LSTM cell; equations and layout in the module docstring. States: [h (B, U), c (B, U)].

    Args:
        units: U (> 0).
        unit_forget_bias: set b_f to 1 at initialisation. Default True.
        peephole: add peephole connections p_i, p_f, p_o. Default False.
        layer_norm: layer-normalise each gate's pre-activation. Default False.
        cell_zoneout: zoneout rate p_c in [0, 1) on c (Z1, Z3). Default 0.
        **kwargs: `zoneout` (p_h, Z2-Z3) and `zoneout_variational`, and Keras's other cell
            arguments (activations, bias, initializers, regularizers, constraints, dropout),
            see `GatedCell` and `RecurrentCell`.
    """

    gates = LSTM_GATES

    def __init__(
        self,
        units,
        unit_forget_bias=True,
        peephole=False,
        layer_norm=False,
        cell_zoneout=0.0,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.cell_zoneout = checks.rate("cell_zoneout", cell_zoneout)

    def zoneout_rates(self):
        return {"h": self.zoneout, "c": self.cell_zoneout}

    @property
    def state_size(self):
        return [self.units, self.units]

    def build(self, input_shape):
        super().build(input_shape)
        if self.peephole:
            self.peephole_kernel = self.add_weight(
                shape=(len(PEEPHOLE_GATES), self.units), initializer="zeros", name="peephole"
            )
        if self.layer_norm:
            self.gamma = self.add_weight(
                shape=(len(self.gates) * self.units,), initializer="ones", name="gamma"
            )

    def has_plain_gates(self):
        return super().has_plain_gates() and not (self.peephole or self.layer_norm)

    def bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def init(shape, dtype=None):
            b = ops.convert_to_tensor(base(shape, dtype=dtype))
            f = gate_slice("f", self.gates, units)
            return ops.concatenate([b[: f.start], ops.ones((units,), dtype=b.dtype), b[f.stop :]])

        return init

    def input_weights(self):
        """{"kernel": W, "input_bias": b}; no bias with layer_norm, where b comes after the
        norm (`step_weights`)."""
        return {"kernel": self.kernel, "input_bias": None if self.layer_norm else self.bias}

    def step_weights(self, recurrent_kernel=None):
        """{"recurrent_kernel"}, plus "peephole" (3, U), and "gamma", "bias" (None without
        `use_bias`) with layer_norm."""
        w = super().step_weights(recurrent_kernel)
        if self.peephole:
            w["peephole"] = self.peephole_kernel
        if self.layer_norm:
            w["gamma"], w["bias"] = self.gamma, self.bias
        return w

    def _peep(self, gate, a, c, w):
        """a + p_gate * c with peepholes, else a (no op added)."""
        if not self.peephole:
            return a
        return a + w["peephole"][PEEPHOLE_GATES.index(gate)] * c

    def _norm(self, a, w):
        """gamma_k * LN(a_k) + b_k for each gate k of a (B, 4U)."""
        return plus_bias(layer_norm_per_gate(a, self.units) * w["gamma"], w["bias"])

    def gates_at(self, xw_t, states, recurrent_mask=None, weights=None, zoneout_masks=None):
        """One step's quantities: {"i", "f", "g", "o", "c", "h"}, each (B, U), and with
        `cell_zoneout` also "c'" (c'_t, the value of (5) before (Z1)/(Z3)). `weights`: see
        `step_weights`. `zoneout_masks`: {"h": d^h_t, "c": d^c_t} (B, U), either absent where
        its rate is 0, when training (Z1-Z2); None: (Z3)."""
        w = weights or self.step_weights()
        h_prev, c_prev = states
        a = xw_t + ops.matmul(masked(h_prev, recurrent_mask), w["recurrent_kernel"])  # (1)
        a = self._norm(a, w) if self.layer_norm else a
        sigmoid, tanh = self.recurrent_activation, self.activation
        # sigmoid(a_k + p_k c) of (2), (3), (6); without peepholes one call over all four gates
        sigmoids = None if self.peephole else activate_gates(sigmoid, a, self.gates)
        a = split_gates(a, self.gates)

        def gate(k, c):
            return sigmoids[k] if sigmoids else sigmoid(self._peep(k, a[k], c, w))

        i = gate("i", c_prev)  # (2)
        f = gate("f", c_prev)  # (3)
        g = tanh(a["g"])  # (4)
        c_new = f * c_prev + i * g  # (5)
        o = gate("o", c_new)  # (6)
        h = o * tanh(c_new)  # (7)
        d = zoneout_masks or {}
        c = zoned(c_prev, c_new, self.cell_zoneout, d.get("c"))  # (Z1) / (Z3)
        h = zoned(h_prev, h, self.zoneout, d.get("h"))  # (Z2) / (Z3)
        q = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}
        return {**q, "c'": c_new} if self.cell_zoneout > 0.0 else q

    def step(self, xw_t, states, recurrent_mask=None, weights=None, zoneout_masks=None):
        q = self.gates_at(xw_t, states, recurrent_mask, weights, zoneout_masks)
        return q["h"], [q["h"], q["c"]]

    def get_config(self):
        return {
            **super().get_config(),
            "unit_forget_bias": self.unit_forget_bias,
            "peephole": self.peephole,
            "layer_norm": self.layer_norm,
            "cell_zoneout": self.cell_zoneout,
        }
