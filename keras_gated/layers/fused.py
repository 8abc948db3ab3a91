"""Fused recurrence: the training fast path of `SimpleRNN`, `IndRNN`, `LSTM` and `GRU` (every
backend).

The reference path (`recurrent.scan_steps` over `cell.step`) is differentiated automatically:
TensorFlow's while-loop gradient pushes every intermediate onto stacks, pops them back one
op at a time, and at every step multiplies a (U, B) by a (B, G*U) matrix for the recurrent
weight gradient. This module computes the same function with a hand-written backward pass
(a custom gradient around the whole time loop):
- the forward loop runs each step through the cell's own `gates_at` (its weights passed
  explicitly, `cell.step_weights()`), so the forward equations are stated once, in the cell,
  and writes the states and the gate activations of a step as one row;
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
gradients w.r.t. every weight, the inputs and the initial states, with and without masks.

Masks (Keras's semantics, as `scan_steps`): with m_t in {0, 1} (B, 1) the carried states are
    (M1) s_t = m_t s^new_t + (1 - m_t) s_{t-1}     for each state s (h, and c for the LSTM)
and the output y_t is h_t once the row has had a valid step, zeros before
(y_t = v_t h_t, v_t = [m_1 + ... + m_t > 0]), or y_t = m_t h_t with `zero_output_for_mask`.

Backward equations, in the cells' symbols (cells/lstm.py, cells/gru.py, cells/simple_rnn.py,
cells/indrnn.py).
dy_t is the gradient arriving at h_t from the output, dh'_t and dc'_t the gradients carried
back from step t + 1 (at t = T: those of the final states), m_h the recurrent dropout mask
(1 when absent), h^m = h_{t-1} * m_h, a_k the pre-activation of gate k, x~_t = x_t W + b
the projected input, p_t = 1 - m_t (0 without a mask); factors named K are computed before
the loop, with m_t folded in (they vanish at a masked step):
    (B1) dh_t = dy_t + dh'_t                                                   every cell
LSTM (A_t = o_t (1 - tanh(c_t)^2)):
    (L1) e_t = dc'_t + dh_t A_t                       the gradient at c^new_t
    (L2) da_t = [e_t, e_t, e_t, dh_t] * K_t,
         K_t = m_t [g i (1 - i), c_{t-1} f (1 - f), i (1 - g^2), tanh(c_t) o (1 - o)]
    (L3) dh'_{t-1} = (da_t U^T) * m_h + p_t dh_t;  dc'_{t-1} = e_t m_t f_t + p_t dc'_t
    (L4) dx~_t = da_t;  dU = sum_t (h^m)^T da_t
GRU (both variants; n_t = h~_t; K_z = m (h_{t-1} - n) z (1 - z), K_n = m (1 - z) (1 - n^2)):
    (G1) dz = dh_t K_z;  dn = dh_t K_n
GRU reset_after=True (u_t = h^m U + b^h, split u_z, u_r, u_h):
    (G2) dr = dn u_h r (1 - r);  dx~_t = [dz, dr, dn];  du_t = [dz, dr, dn r]
    (G3) dh'_{t-1} = dh_t (m z + p) + (du_t U^T) * m_h
    (G4) dU = sum_t (h^m)^T du_t;  db^h = sum_t du_t
GRU reset_after=False (s_t = r_t * h^m):
    (G5) ds = dn U_h^T;  dr = ds h^m r (1 - r);  dx~_t = [dz, dr, dn]
    (G6) dh'_{t-1} = dh_t (m z + p) + ([dz, dr] [U_z | U_r]^T + ds r) * m_h
    (G7) [dU_z | dU_r] = sum_t (h^m)^T [dz, dr];  dU_h = sum_t s_t^T dn
SimpleRNN (act' written in h_t: tanh 1 - h^2, sigmoid h (1 - h), relu [h > 0], linear 1):
    (S1) da_t = dh_t m act'(h_t);  dx~_t = da_t;  dh'_{t-1} = (da_t U^T) * m_h + p_t dh_t
    (S2) dU = sum_t (h^m)^T da_t
IndRNN (SimpleRNN with U = diag(u), u (U,); act' as SimpleRNN's):
    (I1) da_t = dh_t m act'(h_t);  dx~_t = da_t;  dh'_{t-1} = da_t u m_h + p_t dh_t
    (I2) du = sum_t sum_b h^m da_t
The gradients w.r.t. W and b^x (b) follow from dx~ through `cell.project_inputs`, outside.

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
#   factors(seqs, prev, saved, m) -> the per-step factors of the backward loop, each (T, B, .),
#       computed for all steps at once (seqs: the carried states, prev: the same one step
#       earlier, m: (T, B, 1) or None);
#   back(dh, d_rest, factors_t, weights) -> ([dx~_t parts], [dh'_{t-1}, *d_rest_{t-1}]),
#       (B1) done; `weights` also holds the transposes named in `transposed`;
#   weight_gradients(prev, saved, dxs, weights) -> the gradient of each weight, in order;
#   transposed: {name of a transpose: the step weight it transposes}, made once per call.
Chain = collections.namedtuple(
    "Chain",
    "states saved n_dx factors back weight_gradients transposed",
    defaults=({"U^T": "recurrent_kernel"},),
)

# What a backend's time loops run (`recurrence` of each module in `BACKEND_LOOPS`):
#   step(xw_t, valid_t or None, states, weights) -> (new states, rows_t: the states, then
#       the saved activations);
#   n_states, n_rows, n_dx: how many states a step carries, how many rows it writes, how
#       many parts dx~_t has;
#   backward_inputs(states0, rows, m, weights) -> (prev: the carried states one step earlier,
#       factors (T, B, .) list, weights with the chain's transposes);
#   back(dy_t, factors_t, d_states, weights) -> (dx~_t parts, d_states_{t-1});
#   gradients(prev, rows, dx_parts (T, B, .) list, weights) -> (dxs (T, B, G*U),
#       the weight gradients in `weights`' order).
Loops = collections.namedtuple("Loops", "step n_states n_rows n_dx backward_inputs back gradients")

ACTIVATION_DERIVATIVES = {  # SimpleRNN's and IndRNN's act'(a) as a function of h = act(a)
    keras.activations.tanh: lambda h: 1.0 - h * h,
    keras.activations.sigmoid: lambda h: h * (1.0 - h),
    keras.activations.relu: lambda h: ops.cast(h > 0.0, h.dtype),
    keras.activations.linear: lambda h: ops.ones_like(h),
}


# Each backend's module holding `recurrence(loops, xs, m, weights, states)`.
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
    subclass, whose step may differ) that are plain (`cell.is_plain()`: a bias, Keras's default
    activations, no peepholes or layer normalisation); a `SimpleRNNCell` or `IndRNNCell` also
    with the activations of `ACTIVATION_DERIVATIVES`."""
    if type(cell) in (SimpleRNNCell, IndRNNCell):
        return cell.use_bias and cell.activation in ACTIVATION_DERIVATIVES
    return type(cell) in (LSTMCell, GRUCell) and cell.is_plain()


def fused_recurrence(
    cell, weights, xs, initial_state, recurrent_mask=None, mask=None, zero_output_for_mask=False
):
    """`scan_steps(cell.step, ...)` (forward time order) with the hand-written gradient.

    Args:
        cell: a cell for which `applies(cell)`.
        weights: the cell's `step_weights()` as tensors (the gradient flows back to them).
        xs: (T, B, G*U) projected inputs `cell.project_inputs(x)`, time-major, in
            processing order.
        initial_state: list of (B, U): [h] or, for the LSTM, [h, c].
        recurrent_mask: m_h (B, U) or None; no gradient flows to it.
        mask: optional (B, T) bool, in processing order (M1).
        zero_output_for_mask: a masked step outputs zeros.

    Returns:
        last_output (B, U), outputs (B, T, U), final states (list of (B, U)).
    """
    dtype = xs.dtype
    weights = {name: ops.cast(w, dtype) for name, w in weights.items()}
    m = None if mask is None else ops.cast(ops.transpose(mask)[..., None], dtype)  # (T, B, 1)
    loops = _loops(cell, _chain(cell, recurrent_mask), recurrent_mask)
    states = [ops.cast(s, dtype) for s in initial_state]
    recurrence = importlib.import_module(BACKEND_LOOPS[keras.backend.backend()]).recurrence
    hs, final = recurrence(loops, xs, m, weights, states)
    if m is not None:
        shown = m if zero_output_for_mask else ops.cast(ops.cumsum(m, axis=0) > 0.0, dtype)
        hs = hs * shown  # y_t = v_t h_t (or m_t h_t)
    return hs[-1], ops.transpose(hs, (1, 0, 2)), final


def _chain(cell, m_h):
    if type(cell) is LSTMCell:
        return _lstm_chain(m_h)
    if type(cell) is GRUCell and cell.reset_after:
        return _gru_chain(m_h)
    if type(cell) is GRUCell:
        return _gru_reset_before_chain(cell.units, m_h)
    if type(cell) is IndRNNCell:
        return _indrnn_chain(cell.activation, m_h)
    return _simple_rnn_chain(cell.activation, m_h)


def _loops(cell, chain, m_h):
    """The per-step work of both loops and what surrounds them, for any backend."""
    n_s = len(chain.states)

    def step(xw_t, valid_t, states, weights):
        q = cell.gates_at(xw_t, states, m_h, weights)
        new = [q[k] for k in chain.states]
        if valid_t is not None:
            new = [ops.where(valid_t, n, s) for n, s in zip(new, states)]  # (M1)
        return new, [*new, *(q[k] for k in chain.saved)]

    def backward_inputs(states0, rows, m, weights):
        prev = [ops.concatenate([s0[None], s[:-1]], 0) for s0, s in zip(states0, rows[:n_s])]
        factors = chain.factors(rows[:n_s], prev, rows[n_s:], m)
        transposes = {t: ops.transpose(weights[name]) for t, name in chain.transposed.items()}
        return prev, factors, {**weights, **transposes}

    def back(dy_t, factors_t, d_states, weights):
        return chain.back(dy_t + d_states[0], d_states[1:], factors_t, weights)  # (B1)

    def gradients(prev, rows, dx_parts, weights):
        dxs = ops.concatenate(dx_parts, -1) if len(dx_parts) > 1 else dx_parts[0]
        return dxs, chain.weight_gradients(prev, rows[n_s:], dxs, weights)

    return Loops(step, n_s, n_s + len(chain.saved), chain.n_dx, backward_inputs, back, gradients)


def _masked(x, mask):
    return x if mask is None else x * mask


def _gram(rows_a, rows_b):
    """sum_t a_t^T b_t for a (T, B, P), b (T, B, Q): one matmul over all T*B rows -> (P, Q)."""
    a = ops.reshape(rows_a, (-1, rows_a.shape[-1]))
    b = ops.reshape(rows_b, (-1, rows_b.shape[-1]))
    return ops.matmul(ops.transpose(a), b)


def _passed(m):
    """p_t = 1 - m_t (T, B, 1): the share of a gradient a masked step passes straight back."""
    return [] if m is None else [1.0 - m]


# -- the cells: forward from the cell itself (`gates_at`), backward as above ----------------
def _lstm_chain(m_h):
    def factors(seqs, prev, saved, m):
        (_, c), (_, c_prev), (i, f, g, o) = seqs, prev, saved
        tanh_c = ops.tanh(c)
        K = ops.concatenate(
            [
                g * i * (1.0 - i),
                c_prev * f * (1.0 - f),  # (L2)
                i * (1.0 - g * g),
                tanh_c * o * (1.0 - o),
            ],
            -1,
        )
        return [o * (1.0 - tanh_c * tanh_c), _masked(K, m), _masked(f, m), *_passed(m)]

    def back(dh, d_rest, factors_t, weights):
        (dc,), (A, K, mf, *p) = d_rest, factors_t
        e = dc + dh * A  # (L1)
        da = ops.concatenate([e, e, e, dh], -1) * K  # (L2)
        dh_prev = _masked(ops.matmul(da, weights["U^T"]), m_h)  # (L3)
        dc_prev = e * mf
        if p:
            dh_prev, dc_prev = dh_prev + p[0] * dh, dc_prev + p[0] * dc
        return [da], [dh_prev, dc_prev]

    def weight_gradients(prev, saved, dxs, weights):
        return [_gram(_masked(prev[0], m_h), dxs)]  # (L4)

    return Chain(("h", "c"), LSTM_GATES, 1, factors, back, weight_gradients)


def _gru_factors(prev, z, n, m):
    """K_z and K_n of (G1), each (T, B, U), and (m z + p) of (G3)/(G6)."""
    (h_prev,) = prev
    K_z = _masked((h_prev - n) * z * (1.0 - z), m)
    K_n = _masked((1.0 - z) * (1.0 - n * n), m)
    return K_z, K_n, z if m is None else m * z + (1.0 - m)


def _gru_chain(m_h):
    """reset_after=True."""

    def factors(seqs, prev, saved, m):
        z, r, n, u_h = saved
        K_z, K_n, carry = _gru_factors(prev, z, n, m)
        K_r = K_n * u_h * r * (1.0 - r)  # (G2)
        return [
            ops.concatenate([K_z, K_r, K_n], -1),
            ops.concatenate([K_z, K_r, K_n * r], -1),
            carry,
        ]

    def back(dh, d_rest, factors_t, weights):
        K, K_u, carry = factors_t
        dh3 = ops.concatenate([dh, dh, dh], -1)
        dx = dh3 * K  # (G1), (G2): [dz, dr, dn]
        du = dh3 * K_u  # [dz, dr, dn r]
        dh_prev = dh * carry + _masked(ops.matmul(du, weights["U^T"]), m_h)  # (G3)
        return [dx], [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dz, dr, dn = ops.split(dxs, 3, axis=-1)
        du = ops.concatenate([dz, dr, dn * saved[1]], -1)  # (G2), r = saved[1]
        return [_gram(_masked(prev[0], m_h), du), ops.sum(du, axis=(0, 1))]  # (G4)

    return Chain(("h",), ("z", "r", "h~", "u_h"), 1, factors, back, weight_gradients)


def _gru_reset_before_chain(units, m_h):
    """reset_after=False."""

    def factors(seqs, prev, saved, m):
        z, r, n = saved
        K_z, K_n, carry = _gru_factors(prev, z, n, m)
        K_r = _masked(prev[0], m_h) * r * (1.0 - r)
        return [K_z, K_n, K_r, r, carry]

    def back(dh, d_rest, factors_t, weights):
        K_z, K_n, K_r, r, carry = factors_t
        dn = dh * K_n  # (G1)
        ds = ops.matmul(dn, weights["U_h^T"])  # (G5)
        dzr = ops.concatenate([dh * K_z, ds * K_r], -1)  # [dz, dr]
        dh_prev = dh * carry + _masked(ops.matmul(dzr, weights["U_zr^T"]) + ds * r, m_h)  # (G6)
        return [dzr, dn], [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dzr, dn = ops.split(dxs, [2 * units], axis=-1)
        h_in = _masked(prev[0], m_h)
        return [_gram(h_in, dzr), _gram(saved[1] * h_in, dn)]  # (G7): dU_zr, dU_h

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

    def factors(seqs, prev, saved, m):
        return [_masked(derivative(seqs[0]), m), *_passed(m)]

    def back(dh, d_rest, factors_t, weights):
        K, *p = factors_t
        da = dh * K  # (S1), (I1)
        dh_prev = _masked(recur(da, weights), m_h)
        return [da], [dh_prev + p[0] * dh if p else dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        return [gradient(_masked(prev[0], m_h), dxs)]  # (S2), (I2)

    return Chain(("h",), (), 1, factors, back, weight_gradients, transposed)
