"""Fused recurrence: the training fast path of `SimpleRNN`, `IndRNN`, `LSTM` and `GRU` (every
backend).

The reference path (`recurrent.scan_steps` over `cell.step`) is differentiated automatically:
TensorFlow's while-loop gradient pushes every intermediate onto stacks, pops them back one
op at a time, and at every step multiplies a (U, B) by a (B, G*U) matrix for the recurrent
weight gradient. This module computes the same function with a hand-written backward pass
(a custom gradient around the whole time loop):
- the forward loop runs each step through the cell's own `gates_at` (its weights passed
  explicitly, `cell.step_weights()`), and for narrow layers its `project_inputs(x_t)` first
  (`project`), so the forward equations are stated once, in the cell, and writes the states
  and the gate activations of a step as one row;
- the local derivatives of each step (the factors below that do not depend on the gradient
  flowing back) are computed for all T steps at once, outside the loop;
- the backward loop carries only dh (and dc): a few multiplications and one matmul per step;
- the weight gradients are then one matmul over all B*T rows.
Few ops per step matter as much as the arithmetic: at U = 32-128 a step's cost is mostly
TensorFlow's per-op overhead, and its copying kernels (stack, split) cost ~0.1 ms there, ten
times an elementwise op. So each saved tensor has its own output and factors are read by
slicing; the one copy per step left is the (B, G*U) gradient the recurrent matmul reads.
It reads the cell's `kernel`/`recurrent_kernel`/`bias` and creates no weights.
`tests/layers/test_fused.py` proves it equal to the reference path: outputs, final states and
gradients w.r.t. every weight, the inputs and the initial states, with and without masks and
zoneout, for both places of the input projection.

Masks and zoneout (Keras's mask semantics, as `scan_steps`; zoneout's (Z1),
`cells/zoneout.py`): with m_t in {0, 1} (B, 1) and zoneout's d^s_t in {0, 1} (B, U) (1 keeps
the unit's previous value) the carried states are
    (M1) s_t = mu^s_t s^new_t + (1 - mu^s_t) s_{t-1},   mu^s_t = m_t (1 - d^s_t)
for each state s (h, and c for the LSTM), s^new_t the cell's value before zoneout (c'_t,
h'_t); m_t = 1 without a mask, d^s_t = 0 without zoneout on s. Zoneout is the mask rule per
unit. The output y_t is h_t once the row has had a valid step, zeros before
(y_t = v_t h_t, v_t = [m_1 + ... + m_t > 0]), or y_t = m_t h_t with `zero_output_for_mask`.

Backward equations, in the cells' symbols (cells/lstm.py, cells/gru.py, cells/simple_rnn.py,
cells/indrnn.py).
dy_t is the gradient arriving at h_t from the output, dh'_t and dc'_t the gradients carried
back from step t + 1 (at t = T: those of the final states), m_h the recurrent dropout mask
(1 when absent), h^m = h_{t-1} * m_h, a_k the pre-activation of gate k, x~_t = x_t W + b
the projected input, p^s_t = 1 - mu^s_t (0 without a mask or zoneout); factors named K are
computed before the loop, with mu folded in (they vanish at a masked step):
    (B1) dh_t = dy_t + dh'_t                                                   every cell
LSTM (c' = f c_{t-1} + i g, c_t itself without cell zoneout; A_t = mu^h o (1 - tanh(c'_t)^2)):
    (L1) e_t = mu^c_t dc'_t + dh_t A_t                the gradient at c'_t
    (L2) da_t = [e_t, e_t, e_t, dh_t] * K_t,
         K_t = [g i (1 - i), c_{t-1} f (1 - f), i (1 - g^2), mu^h tanh(c'_t) o (1 - o)]
    (L3) dh'_{t-1} = (da_t U^T) * m_h + p^h_t dh_t;  dc'_{t-1} = e_t f_t + p^c_t dc'_t
    (L4) dx~_t = da_t;  dU = sum_t (h^m)^T da_t
    Without zoneout both states share mu = m_t (or none), so e_t = m_t (dc'_t + dh_t A'_t),
    A'_t = o (1 - tanh(c'_t)^2): m_t goes into K's first three parts and into f_t, computed
    before the loop, and the loop multiplies dc' by nothing.
GRU (both variants; n_t = h~_t, mu = mu^h; K_z = mu (h_{t-1} - n) z (1 - z),
K_n = mu (1 - z) (1 - n^2)):
    (G1) dz = dh_t K_z;  dn = dh_t K_n
GRU reset_after=True (u_t = h^m U + b^h, split u_z, u_r, u_h):
    (G2) dr = dn u_h r (1 - r);  dx~_t = [dz, dr, dn];  du_t = [dz, dr, dn r]
    (G3) dh'_{t-1} = dh_t (mu z + p) + (du_t U^T) * m_h
    (G4) dU = sum_t (h^m)^T du_t;  db^h = sum_t du_t
GRU reset_after=False (s_t = r_t * h^m):
    (G5) ds = dn U_h^T;  dr = ds h^m r (1 - r);  dx~_t = [dz, dr, dn]
    (G6) dh'_{t-1} = dh_t (mu z + p) + ([dz, dr] [U_z | U_r]^T + ds r) * m_h
    (G7) [dU_z | dU_r] = sum_t (h^m)^T [dz, dr];  dU_h = sum_t s_t^T dn
SimpleRNN (act' written in h_t: tanh 1 - h^2, sigmoid h (1 - h), relu [h > 0], linear 1):
    (S1) da_t = dh_t mu act'(h_t);  dx~_t = da_t;  dh'_{t-1} = (da_t U^T) * m_h + p_t dh_t
    (S2) dU = sum_t (h^m)^T da_t
IndRNN (SimpleRNN with U = diag(u), u (U,); act' as SimpleRNN's):
    (I1) da_t = dh_t mu act'(h_t);  dx~_t = da_t;  dh'_{t-1} = da_t u m_h + p_t dh_t
    (I2) du = sum_t sum_b h^m da_t
The gradients w.r.t. W and b^x (b) follow from dx~ through `cell.project_inputs`: outside,
by automatic differentiation, when the layer projects all steps before the loop; here when
each step projects its own x_t (`project=True`: the (T, B, G*U) projection is never written),
    (P) x~_t = x_t W + b^x:  dW = sum_t x_t^T dx~_t;  db^x = sum_t sum_b dx~_t;  dx_t = dx~_t W^T

The equations here are backend-generic (`keras.ops`); the time loops and the custom gradient
are each backend's (`BACKEND_LOOPS`): `fused_tensorflow.py` (`tf.while_loop`,
`tf.custom_gradient`), `fused_jax.py` (`jax.lax.scan`, `jax.custom_vjp`) and `fused_torch.py`
(Python loops in one `torch.autograd.Function`). On TensorFlow on CPU each loop is compiled
by XLA on its own when the time axis is static, even under a plain `compile()` that leaves
XLA off (`fused_tensorflow.compiles`), and otherwise runs in the executor; a step compiled as a
whole (`jit_compile=True`, `keras_gated.train` on CPU) holds them too, since they are bounded
(`maximum_iterations`). On JAX they run inside Keras's jit-compiled step.
"""

import collections
import importlib

import keras
from keras import ops

from keras_gated.cells import LSTM_GATES, GRUCell, IndRNNCell, LSTMCell, SimpleRNNCell

# One cell's recurrence:
#   states, saved: the names in `cell.gates_at`'s result of the carried states and of the
#       activations the backward pass reads;
#   n_dx: how many parts `back` returns dx~_t in (concatenated after the loop);
#   factors(seqs, prev, saved, mu) -> {name: the per-step factor (T, B, .)} of the backward
#       loop, computed for all steps at once (seqs: the carried states, prev: the same one
#       step earlier, saved: {name: activation (T, B, U)}, mu: {state: mu^s (T, B, 1 or U),
#       or None without a mask or zoneout} (M1));
#   back(dh, d_rest, factors_t, weights) -> ([dx~_t parts], [dh'_{t-1}, *d_rest_{t-1}]),
#       (B1) done; `weights` also holds the transposes named in `transposed`;
#   weight_gradients(prev, saved, dxs, weights) -> the gradient of each weight, in order;
#   transposed: {name of a transpose: the step weight it transposes}, made once per call.
Chain = collections.namedtuple(
    "Chain",
    "states saved n_dx factors back weight_gradients transposed",
    defaults=({"U^T": "recurrent_kernel"},),
)

# What a backend's time loops run (`recurrence` of each module in `BACKEND_LOOPS`), with
# `masks` = {"m": m (T, B, 1), "d^h": d^h (T, B, U), "d^c": d^c}, each present only where
# given (M1):
#   step_inputs(masks) -> {name: (T, B, .)}: what `step` reads at each t, made before the loop;
#   step(xw_t, inputs_t, states, weights) -> (new states, rows_t: the states, then the saved
#       activations);
#   n_states, n_rows, n_dx: how many states a step carries, how many rows it writes, how
#       many parts dx~_t has;
#   backward_inputs(states0, rows, masks, weights) -> (prev: the carried states one step
#       earlier, factors {name: (T, B, .)}, weights with the chain's transposes);
#   back(dy_t, factors_t, d_states, weights) -> (dx~_t parts, d_states_{t-1});
#   gradients(prev, rows, dx_parts (T, B, .) list, weights) -> (dxs (T, B, G*U), the
#       gradients of the step weights, in `weights`' order);
#   input_gradients(xs, dxs, weights) -> (the gradient of the loops' inputs xs, the gradients
#       of the input weights, after the step weights' in `weights`): (P) with `project`,
#       else (dxs, []). TensorFlow runs it outside the compiled backward loop, so a gradient
#       nobody reads (dx of a model's input) is pruned.
#   recurrent_mask: m_h (B, U), the one constant the steps close over, or None.
Loops = collections.namedtuple(
    "Loops",
    "step_inputs step n_states n_rows n_dx backward_inputs back gradients input_gradients "
    "recurrent_mask",
)

ACTIVATION_DERIVATIVES = {  # SimpleRNN's and IndRNN's act'(a) as a function of h = act(a)
    keras.activations.tanh: lambda h: 1.0 - h * h,
    keras.activations.sigmoid: lambda h: h * (1.0 - h),
    keras.activations.relu: lambda h: ops.cast(h > 0.0, h.dtype),
    keras.activations.linear: lambda h: ops.ones_like(h),
}


# Each backend's module holding `recurrence(loops, xs, masks, weights, states)`.
BACKEND_LOOPS = {
    "tensorflow": "keras_gated.layers.fused_tensorflow",
    "jax": "keras_gated.layers.fused_jax",
    "torch": "keras_gated.layers.fused_torch",
}


def available():
    """Whether this Keras backend has the fused loops (`BACKEND_LOOPS`)."""
    return keras.backend.backend() in BACKEND_LOOPS


def applies(cell):
    """Whether `fused_recurrence` computes `cell`'s recurrence: the library's own cells (not a
    subclass, whose step may differ) whose gates are plain (`cell.has_plain_gates()`: a bias,
    Keras's default activations, no peepholes or layer normalisation; zoneout allowed); a
    `SimpleRNNCell` or `IndRNNCell` also with the activations of `ACTIVATION_DERIVATIVES`."""
    if type(cell) in (SimpleRNNCell, IndRNNCell):
        return cell.use_bias and cell.activation in ACTIVATION_DERIVATIVES
    return type(cell) in (LSTMCell, GRUCell) and cell.has_plain_gates()


def fused_recurrence(
    cell,
    weights,
    xs,
    initial_state,
    recurrent_mask=None,
    mask=None,
    zero_output_for_mask=False,
    zoneout=None,
    project=False,
):
    """`scan_steps(cell.step, ...)` (forward time order) with the hand-written gradient.

    Args:
        cell: a cell for which `applies(cell)`.
        weights: the cell's `step_weights()` as tensors (the gradient flows back to them).
        xs: (T, B, G*U) projected inputs `cell.project_inputs(x)`, time-major, in
            processing order; with `project` the inputs x (T, B, D) themselves.
        project: each step projects its own x_t (P), reading `cell.input_weights()`.
        initial_state: list of (B, U): [h] or, for the LSTM, [h, c].
        recurrent_mask: m_h (B, U) or None; no gradient flows to it.
        mask: optional (B, T) bool, in processing order (M1).
        zero_output_for_mask: a masked step outputs zeros.
        zoneout: zoneout's training masks {state: d^s}, each (T, B, U) in processing order or
            (B, U) for every step, for the states with a rate; None without (M1).

    Returns:
        last_output (B, U), outputs (B, T, U), final states (list of (B, U)).
    """
    dtype = xs.dtype
    if project:  # after the step weights: their gradients come in this order
        inputs = {k: w for k, w in cell.input_weights().items() if w is not None}
        weights = {**weights, **inputs}
    weights = {name: ops.cast(w, dtype) for name, w in weights.items()}
    masks = {}
    if mask is not None:
        masks["m"] = ops.cast(ops.transpose(mask)[..., None], dtype)  # (T, B, 1)
    for state, d in (zoneout or {}).items():
        d = ops.cast(d, dtype)
        masks[f"d^{state}"] = d if len(d.shape) == 3 else ops.ones_like(xs[..., :1]) * d
    loops = _loops(cell, _chain(cell, recurrent_mask), recurrent_mask, project)
    states = [ops.cast(s, dtype) for s in initial_state]
    recurrence = importlib.import_module(BACKEND_LOOPS[keras.backend.backend()]).recurrence
    hs, final = recurrence(loops, xs, masks, weights, states)
    if "m" in masks:
        m = masks["m"]
        shown = m if zero_output_for_mask else ops.cast(ops.cumsum(m, axis=0) > 0.0, dtype)
        hs = hs * shown  # y_t = v_t h_t (or m_t h_t)
    return hs[-1], ops.transpose(hs, (1, 0, 2)), final


def _chain(cell, m_h):
    if type(cell) is LSTMCell:
        return _lstm_chain(m_h, cell.cell_zoneout > 0.0)
    if type(cell) is GRUCell and cell.reset_after:
        return _gru_chain(m_h)
    if type(cell) is GRUCell:
        return _gru_reset_before_chain(cell.units, m_h)
    if type(cell) is IndRNNCell:
        return _indrnn_chain(cell.activation, m_h)
    return _simple_rnn_chain(cell.activation, m_h)


def _loops(cell, chain, m_h, project):
    """The per-step work of both loops and what surrounds them, for any backend."""
    n_s = len(chain.states)

    def step_inputs(masks):
        inputs = {k: d for k, d in masks.items() if k != "m"}
        return inputs if "m" not in masks else {**inputs, "valid": masks["m"] > 0.0}

    def step(x_t, inputs_t, states, weights):
        xw_t = cell.project_inputs(x_t, weights) if project else x_t
        d = {s: inputs_t[f"d^{s}"] for s in chain.states if f"d^{s}" in inputs_t}
        q = cell.gates_at(xw_t, states, m_h, weights, **({"zoneout_masks": d} if d else {}))
        new = [q[k] for k in chain.states]  # (Z1) done by the cell
        if "valid" in inputs_t:
            new = [ops.where(inputs_t["valid"], n, s) for n, s in zip(new, states)]  # (M1)
        return new, [*new, *(q[k] for k in chain.saved)]

    def backward_inputs(states0, rows, masks, weights):
        prev = [ops.concatenate([s0[None], s[:-1]], 0) for s0, s in zip(states0, rows[:n_s])]
        saved = dict(zip(chain.saved, rows[n_s:]))
        factors = chain.factors(rows[:n_s], prev, saved, _kept_new(masks, chain.states))
        transposes = {t: ops.transpose(weights[name]) for t, name in chain.transposed.items()}
        return prev, factors, {**weights, **transposes}

    def back(dy_t, factors_t, d_states, weights):
        return chain.back(dy_t + d_states[0], d_states[1:], factors_t, weights)  # (B1)

    def gradients(prev, rows, dx_parts, weights):
        dxs = ops.concatenate(dx_parts, -1) if len(dx_parts) > 1 else dx_parts[0]
        saved = dict(zip(chain.saved, rows[n_s:]))
        return dxs, chain.weight_gradients(prev, saved, dxs, weights)

    def input_gradients(xs, dxs, weights):
        if not project:
            return dxs, []
        d_inputs = {"kernel": _gram(xs, dxs), "input_bias": ops.sum(dxs, axis=(0, 1))}  # (P)
        names = [name for name in ("kernel", "input_bias") if name in weights]
        return ops.matmul(dxs, ops.transpose(weights["kernel"])), [d_inputs[n] for n in names]

    return Loops(
        step_inputs,
        step,
        n_s,
        n_s + len(chain.saved),
        chain.n_dx,
        backward_inputs,
        back,
        gradients,
        input_gradients,
        m_h,
    )


def _kept_new(masks, states):
    """{state s: mu^s = m (1 - d^s) (T, B, 1 or U), or None where neither is given} (M1)."""
    m = masks.get("m")
    mu = {}
    for s in states:
        d = masks.get(f"d^{s}")
        mu[s] = m if d is None else (1.0 - d if m is None else m * (1.0 - d))
    return mu


def _masked(x, mask):
    return x if mask is None else x * mask


def _gram(rows_a, rows_b):
    """sum_t a_t^T b_t for a (T, B, P), b (T, B, Q): one matmul over all T*B rows -> (P, Q)."""
    a = ops.reshape(rows_a, (-1, rows_a.shape[-1]))
    b = ops.reshape(rows_b, (-1, rows_b.shape[-1]))
    return ops.matmul(ops.transpose(a), b)


def _passed(mu, name):
    """{name: p = 1 - mu} (T, B, 1 or U), the share of a state's gradient a step passes
    straight back (M1); nothing without a mask or zoneout."""
    return {} if mu is None else {name: 1.0 - mu}


def _plus_passed(d_prev, factors_t, name, d):
    """d_prev + p d, or d_prev where nothing passes (`_passed`)."""
    return d_prev + factors_t[name] * d if name in factors_t else d_prev


# -- the cells: forward from the cell itself (`gates_at`), backward as above ----------------
def _lstm_chain(m_h, saves_c_new):
    """`saves_c_new`: with cell zoneout the carried c_t is not c'_t, which the step saves."""

    def factors(seqs, prev, saved, mu):
        (_, c), (_, c_prev) = seqs, prev
        i, f, g, o = (saved[k] for k in LSTM_GATES)
        tanh_c = ops.tanh(saved["c'"] if saves_c_new else c)  # c_t = c'_t where it matters
        apart = mu["c"] is not mu["h"]  # zoneout: h and c keep their values by own masks
        fold = None if apart else mu["h"]  # one mask for both: folded in, not applied per step
        K = [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g)]  # (L2)
        K = [_masked(k, fold) for k in K] + [_masked(tanh_c * o * (1.0 - o), mu["h"])]
        A = _masked(o * (1.0 - tanh_c * tanh_c), mu["h"] if apart else None)
        return {
            "A": A,
            "K": ops.concatenate(K, -1),
            "f": _masked(f, fold),
            **({"mu^c": mu["c"]} if apart and mu["c"] is not None else {}),
            **_passed(mu["h"], "p^h"),
            **_passed(mu["c"], "p^c"),
        }

    def back(dh, d_rest, factors_t, weights):
        (dc,) = d_rest
        e = _masked(dc, factors_t.get("mu^c")) + dh * factors_t["A"]  # (L1)
        da = ops.concatenate([e, e, e, dh], -1) * factors_t["K"]  # (L2)
        dh_prev = _masked(ops.matmul(da, weights["U^T"]), m_h)  # (L3)
        dh_prev = _plus_passed(dh_prev, factors_t, "p^h", dh)
        dc_prev = _plus_passed(e * factors_t["f"], factors_t, "p^c", dc)
        return [da], [dh_prev, dc_prev]

    def weight_gradients(prev, saved, dxs, weights):
        return [_gram(_masked(prev[0], m_h), dxs)]  # (L4)

    saved = (*LSTM_GATES, "c'") if saves_c_new else LSTM_GATES
    return Chain(("h", "c"), saved, 1, factors, back, weight_gradients)


def _gru_factors(prev, z, n, mu):
    """K_z and K_n of (G1), each (T, B, U), and (mu z + p) of (G3)/(G6)."""
    (h_prev,) = prev
    K_z = _masked((h_prev - n) * z * (1.0 - z), mu)
    K_n = _masked((1.0 - z) * (1.0 - n * n), mu)
    return K_z, K_n, z if mu is None else mu * z + (1.0 - mu)


def _gru_chain(m_h):
    """reset_after=True."""

    def factors(seqs, prev, saved, mu):
        z, r, n, u_h = (saved[k] for k in ("z", "r", "h~", "u_h"))
        K_z, K_n, carry = _gru_factors(prev, z, n, mu["h"])
        K_r = K_n * u_h * r * (1.0 - r)  # (G2)
        return {
            "K": ops.concatenate([K_z, K_r, K_n], -1),
            "K_u": ops.concatenate([K_z, K_r, K_n * r], -1),
            "carry": carry,
        }

    def back(dh, d_rest, factors_t, weights):
        dh3 = ops.concatenate([dh, dh, dh], -1)
        dx = dh3 * factors_t["K"]  # (G1), (G2): [dz, dr, dn]
        du = dh3 * factors_t["K_u"]  # [dz, dr, dn r]
        dh_prev = dh * factors_t["carry"] + _masked(ops.matmul(du, weights["U^T"]), m_h)  # (G3)
        return [dx], [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dz, dr, dn = ops.split(dxs, 3, axis=-1)
        du = ops.concatenate([dz, dr, dn * saved["r"]], -1)  # (G2)
        return [_gram(_masked(prev[0], m_h), du), ops.sum(du, axis=(0, 1))]  # (G4)

    return Chain(("h",), ("z", "r", "h~", "u_h"), 1, factors, back, weight_gradients)


def _gru_reset_before_chain(units, m_h):
    """reset_after=False."""

    def factors(seqs, prev, saved, mu):
        z, r, n = (saved[k] for k in ("z", "r", "h~"))
        K_z, K_n, carry = _gru_factors(prev, z, n, mu["h"])
        K_r = _masked(prev[0], m_h) * r * (1.0 - r)
        return {"K_z": K_z, "K_n": K_n, "K_r": K_r, "r": r, "carry": carry}

    def back(dh, d_rest, factors_t, weights):
        dn = dh * factors_t["K_n"]  # (G1)
        ds = ops.matmul(dn, weights["U_h^T"])  # (G5)
        dzr = ops.concatenate([dh * factors_t["K_z"], ds * factors_t["K_r"]], -1)  # [dz, dr]
        recurrent = ops.matmul(dzr, weights["U_zr^T"]) + ds * factors_t["r"]
        dh_prev = dh * factors_t["carry"] + _masked(recurrent, m_h)  # (G6)
        return [dzr, dn], [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dzr, dn = ops.split(dxs, [2 * units], axis=-1)
        h_in = _masked(prev[0], m_h)
        return [_gram(h_in, dzr), _gram(saved["r"] * h_in, dn)]  # (G7): dU_zr, dU_h

    return Chain(
        ("h",),
        ("z", "r", "h~"),
        2,
        factors,
        back,
        weight_gradients,
        {"U_zr^T": "U_zr", "U_h^T": "U_h"},
    )


def _simple_rnn_chain(activation, m_h):
    return _elman_chain(
        activation,
        m_h,
        recur=lambda da, weights: ops.matmul(da, weights["U^T"]),  # (S1)
        gradient=lambda h_in, dxs: _gram(h_in, dxs),  # (S2)
        transposed={"U^T": "recurrent_kernel"},
    )


def _indrnn_chain(activation, m_h):
    return _elman_chain(
        activation,
        m_h,
        recur=lambda da, weights: da * weights["recurrent_kernel"],  # (I1)
        gradient=lambda h_in, dxs: ops.sum(h_in * dxs, axis=(0, 1)),  # (I2)
        transposed={},
    )


def _elman_chain(activation, m_h, recur, gradient, transposed):
    """SimpleRNN's and IndRNN's chain, (S1)-(S2) and (I1)-(I2): they differ only in how dh'
    crosses the recurrent weight (`recur`) and in that weight's gradient (`gradient`)."""
    derivative = ACTIVATION_DERIVATIVES[activation]

    def factors(seqs, prev, saved, mu):
        return {"K": _masked(derivative(seqs[0]), mu["h"]), **_passed(mu["h"], "p^h")}

    def back(dh, d_rest, factors_t, weights):
        da = dh * factors_t["K"]  # (S1), (I1)
        dh_prev = _masked(recur(da, weights), m_h)
        return [da], [_plus_passed(dh_prev, factors_t, "p^h", dh)]

    def weight_gradients(prev, saved, dxs, weights):
        return [gradient(_masked(prev[0], m_h), dxs)]  # (S2), (I2)

    return Chain(("h",), (), 1, factors, back, weight_gradients, transposed)
