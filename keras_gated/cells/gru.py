"""Gated recurrent unit cell, with the reset gate before or after the recurrent matmul.

Equations (gate order z, r, h: `GRU_GATES`):
    (1) z_t = sigmoid(x_t W_z + h_{t-1} U_z + b_z)                       update gate
    (2) r_t = sigmoid(x_t W_r + h_{t-1} U_r + b_r)                       reset gate
    (3a) h~_t = tanh(x_t W_h + b_h^x + r_t * (h_{t-1} U_h + b_h^h))      reset_after=True
    (3b) h~_t = tanh(x_t W_h + (r_t * h_{t-1}) U_h + b_h)                 reset_after=False
    (4) h_t = z_t * h_{t-1} + (1 - z_t) * h~_t
sigmoid is `recurrent_activation` and tanh `activation` (Keras's arguments and defaults);
with `use_bias=False` every b term is absent.

Symbols: x_t (B, D), h_t (B, U). Packed layout: kernel (D, 3U) = [W_z | W_r | W_h],
recurrent_kernel (U, 3U) = [U_z | U_r | U_h]. bias: reset_after=True (2, 3U), row 0 the input
biases b^x, row 1 the recurrent biases b^h (b_z = b_z^x + b_z^h, likewise r);
reset_after=False (3U,). This is `keras.layers.GRUCell`'s layout.

(3b) is Cho et al. 2014; (3a) is the cuDNN variant (Keras's default, ONNX
`linear_before_reset=1`). (4) follows Keras, ONNX and PyTorch; the paper writes
h_t = (1 - z_t) * h_{t-1} + z_t * h~_t, i.e. its z is our 1 - z.

Options:
- `layer_norm=True` (Ba et al. 2016; haste's `LayerNormGRU`): the input projection and the
  recurrent projection are normalised separately, each with its own gain, before its bias;
  in (1)-(3)
    (L1) x_t W_k            becomes  gamma^x_k * LN(x_t W_k)               k in z, r, h
    (L2) h_{t-1} U_k        becomes  gamma^h_k * LN(h_{t-1} U_k)           k in z, r; h in (3a)
    (L3) (r_t * h_{t-1}) U_h  becomes  gamma^h_h * LN((r_t * h_{t-1}) U_h)   in (3b)
  LN normalises each gate's U units to mean 0 and variance 1 (epsilon 1e-3), as
  `LSTMCell(layer_norm=True)` does; gamma (2, 3U) = [gamma^x; gamma^h], initialised to 1.
  haste normalises the three gates' 3U units together and has (3a) only; per gate here, so
  the two cells normalise alike and (3b)'s candidate, a matmul of its own, gets its own
  statistics. The biases come after the norm, as in haste: with (3a) the input bias b^x and
  the recurrent bias b^h as above; with (3b) one bias, on the input side.
- `zoneout=p` (Krueger et al. 2016; `zoneout.py`): h'_t the value of (4),
    (Z1) h_t = d_t * h_{t-1} + (1 - d_t) * h'_t     training, d_t ~ Bernoulli(p) (B, U)
    (Z2) h_t = p * h_{t-1} + (1 - p) * h'_t         inference, the expectation of (Z1)
  d_t fresh at every step (the paper's, default) or one per sequence (`zoneout_variational`).
"""

import keras
from keras import ops

from keras_gated.cells.base import GatedCell, layer_norm_per_gate, masked, plus_bias
from keras_gated.cells.gates import GRU_GATES, activate_gates
from keras_gated.cells.zoneout import zoned


@keras.saving.register_keras_serializable(package="keras_gated")
class GRUCell(GatedCell):
    """GRU cell; equations and layout in the module docstring. States: [h (B, U)].

    Args:
        units: U (> 0).
        reset_after: apply the reset gate after the recurrent matmul (3a, default True) or
            before it (3b).
        layer_norm: layer-normalise the input and recurrent projections (L1-L3). Default False.
        **kwargs: `zoneout` and `zoneout_variational` (Z1-Z2) and Keras's other cell arguments
            (activations, bias, initializers, regularizers, constraints, dropout), see
            `GatedCell` and `RecurrentCell`.
    """

    gates = GRU_GATES

    def __init__(self, units, reset_after=True, layer_norm=False, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)
        self.layer_norm = bool(layer_norm)

    def build(self, input_shape):
        super().build(input_shape)
        if self.layer_norm:  # row 0 gamma^x, row 1 gamma^h
            self.gamma = self.add_weight(
                shape=(2, len(self.gates) * self.units), initializer="ones", name="gamma"
            )

    def has_plain_gates(self):
        return super().has_plain_gates() and not self.layer_norm

    def bias_shape(self):
        width = len(self.gates) * self.units
        return (2, width) if self.reset_after else (width,)

    def input_weights(self):
        """{"kernel": W, "input_bias": b^x (b for reset_after=False)}, and with layer_norm
        "gamma_x" (3U,)."""
        b_x = self.bias[0] if self.reset_after and self.use_bias else self.bias
        gamma_x = {"gamma_x": self.gamma[0]} if self.layer_norm else {}
        return {"kernel": self.kernel, "input_bias": b_x, **gamma_x}

    def project_inputs(self, x, weights=None):
        """x (..., D) -> x W + b^x (..., 3U); with layer_norm gamma^x * LN(x W) + b^x (L1).
        `weights`: as `RecurrentCell.project_inputs`."""
        w = weights or self.input_weights()
        return plus_bias(self._norm(ops.matmul(x, w["kernel"]), w.get("gamma_x")), w["input_bias"])

    def step_weights(self, recurrent_kernel=None):
        """reset_after: {"recurrent_kernel", "recurrent_bias" b^h (3U,) (absent without
        `use_bias`)}; otherwise U split once per call rather than every step:
        {"U_zr" (U, 2U), "U_h" (U, U)}. With layer_norm also gamma^h, split as U is:
        "gamma_h" (3U,), or "gamma_h_zr" (2U,) and "gamma_h_h" (U,)."""
        w = super().step_weights(recurrent_kernel)
        gamma_h = {"gamma_h": self.gamma[1]} if self.layer_norm else {}
        if self.reset_after:
            return {**w, **gamma_h, **({"recurrent_bias": self.bias[1]} if self.use_bias else {})}
        U_zr, U_h = ops.split(w["recurrent_kernel"], [2 * self.units], axis=1)
        if self.layer_norm:
            gamma_h = dict(
                zip(("gamma_h_zr", "gamma_h_h"), ops.split(gamma_h["gamma_h"], [2 * self.units]))
            )
        return {"U_zr": U_zr, "U_h": U_h, **gamma_h}

    def _norm(self, a, gamma):
        """gamma * LN(a) per gate with layer_norm (L1-L3), else a unchanged (no op added)."""
        return layer_norm_per_gate(a, self.units) * gamma if self.layer_norm else a

    def gates_at(self, xw_t, states, recurrent_mask=None, weights=None, zoneout_masks=None):
        """One step's quantities: {"z", "r", "h~", "h"}, each (B, U); with reset_after also
        "u_h" = h_{t-1} U_h + b_h^h, the recurrent term of (3a). `weights`: see `step_weights`.
        `zoneout_masks`: {"h": d_t (B, U)} when training (Z1); None: (Z2)."""
        w = weights or self.step_weights()
        (h_prev,) = states
        h_in = masked(h_prev, recurrent_mask)
        zr = 2 * self.units  # [z | r] of the packed (B, 3U), taken in one call (`activate_gates`)
        if self.reset_after:  # u = [u_z | u_r | u_h] (B, 3U); (L2) with layer_norm
            hU = self._norm(ops.matmul(h_in, w["recurrent_kernel"]), w.get("gamma_h"))
            u = plus_bias(hU, w.get("recurrent_bias"))
        else:  # u = [u_z | u_r] (B, 2U)
            u = self._norm(ops.matmul(h_in, w["U_zr"]), w.get("gamma_h_zr"))
        sigmoid, tanh = self.recurrent_activation, self.activation
        q = activate_gates(sigmoid, xw_t[..., :zr] + u[..., :zr], self.gates[:2])
        z, r = q["z"], q["r"]  # (1), (2)
        x_h = xw_t[..., zr:]
        if self.reset_after:
            u_h = u[..., zr:]
            h_tilde = tanh(x_h + r * u_h)  # (3a)
        else:  # (3b); (L3) with layer_norm
            h_tilde = tanh(x_h + self._norm(ops.matmul(r * h_in, w["U_h"]), w.get("gamma_h_h")))
        h = z * h_prev + (1.0 - z) * h_tilde  # (4)
        h = zoned(h_prev, h, self.zoneout, (zoneout_masks or {}).get("h"))  # (Z1) / (Z2)
        q = {"z": z, "r": r, "h~": h_tilde, "h": h}
        return {**q, "u_h": u_h} if self.reset_after else q

    def step(self, xw_t, states, recurrent_mask=None, weights=None, zoneout_masks=None):
        h = self.gates_at(xw_t, states, recurrent_mask, weights, zoneout_masks)["h"]
        return h, [h]

    def get_config(self):
        return {
            **super().get_config(),
            "reset_after": self.reset_after,
            "layer_norm": self.layer_norm,
        }
