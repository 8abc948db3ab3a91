"""Fused recurrence: the training fast path of `SimpleRNN`, `LSTM` and `GRU`.

The reference path (`recurrent.scan_steps` over `cell.step`) is differentiated automatically,
which at every step multiplies a (U, B) by a (B, G*U) matrix for the recurrent weight gradient
and accumulates a (U, G*U) tensor. This module computes the same function with a hand-written
backward pass (`tf.custom_gradient` around the whole time loop): the forward loop runs each
step through the cell's own `gates_at` (its weights passed explicitly, `cell.step_weights()`),
so the forward equations are stated once, in the cell, and stores the gate activations the
backward pass needs; the backward loop carries only dh (and dc)
and stores the gradient of the pre-activations; the recurrent weight gradient is then one
matmul over all B*T rows. It reads the cell's `kernel`/`recurrent_kernel`/`bias` and creates no
weights. `tests/layers/test_fused.py` proves it equal to the reference path: outputs, final
states and gradients w.r.t. every weight, the inputs and the initial states.

Backward equations, in the cells' symbols (cells/lstm.py, cells/gru.py, cells/simple_rnn.py).
dy_t is the gradient arriving at output h_t, dh'_t and dc'_t the gradients carried back from
step t + 1 (at t = T: those of the final states), m the recurrent dropout mask (1 when absent),
h^m = h_{t-1} * m, a_k the pre-activation of gate k, x~_t = x_t W + b the projected input:
    (B1) dh_t = dy_t + dh'_t                                                   every cell
LSTM:
    (L1) dc_t = dc'_t + dh_t * o_t * (1 - tanh(c_t)^2)
    (L2) da_i = dc_t g_t i_t (1 - i_t);  da_f = dc_t c_{t-1} f_t (1 - f_t);  da_g = dc_t i_t (1 - g_t^2);  da_o = dh_t tanh(c_t) o_t (1 - o_t)
    (L3) dh'_{t-1} = (da_t U^T) * m;  dc'_{t-1} = dc_t * f_t
    (L4) dx~_t = da_t;  dU = sum_t (h^m)^T da_t
GRU (both variants; n_t = h~_t):
    (G1) dz = dh_t (h_{t-1} - n_t) z_t (1 - z_t);  dn = dh_t (1 - z_t) (1 - n_t^2)
GRU reset_after=True (u_t = h^m U + b^h, split u_z, u_r, u_h):
    (G2) dr = dn u_h r_t (1 - r_t);  dx~_t = [dz, dr, dn];  du_t = [dz, dr, dn r_t]
    (G3) dh'_{t-1} = dh_t z_t + (du_t U^T) * m
    (G4) dU = sum_t (h^m)^T du_t;  db^h = sum_t du_t
GRU reset_after=False (s_t = r_t * h^m):
    (G5) ds = dn U_h^T;  dr = ds h^m r_t (1 - r_t);  dx~_t = [dz, dr, dn]
    (G6) dh'_{t-1} = dh_t z_t + ([dz, dr] [U_z | U_r]^T + ds r_t) * m
    (G7) [dU_z | dU_r] = sum_t (h^m)^T [dz, dr];  dU_h = sum_t s_t^T dn
SimpleRNN (act' written in h_t: tanh 1 - h^2, sigmoid h (1 - h), relu [h > 0], linear 1):
    (S1) da_t = dh_t act'(h_t);  dx~_t = da_t;  dh'_{t-1} = (da_t U^T) * m;  dU = sum_t (h^m)^T da_t
The gradients w.r.t. W and b^x (b) follow from dx~ through `cell.project_inputs`, outside.

The loops are not compiled by XLA on their own (`tf.function(jit_compile=True)` per loop):
that measured a further ~8% faster at U=650 on CPU, but its forward is not bit-identical to
the reference path (so `training=True` with no dropout would differ from inference) and it
compiles once per (B, T). A step compiled as a whole works, since the loops are bounded
(`maximum_iterations`), and pays more (it also fuses the gate arithmetic, the loss and the
update): `keras_gated.train` compiles its step so on CPU (BENCHMARKS.md, `ours` vs `ours-noxla`).
"""

import collections

import tensorflow as tf

from keras_gated.cells import LSTM_GATES, GRUCell, LSTMCell, SimpleRNNCell

# One cell's recurrence for `_recurrence`: three functions and how many activations
# `forward` saves per step.
Steps = collections.namedtuple("Steps", "forward backward weight_gradients n_saved")

ACTIVATION_DERIVATIVES = {  # act'(a) as a function of h = act(a)
    "tanh": lambda h: 1.0 - h * h,
    "sigmoid": lambda h: h * (1.0 - h),
    "relu": lambda h: tf.cast(h > 0.0, h.dtype),
    "linear": lambda h: tf.ones_like(h),
}


def applies(cell):
    """Whether `fused_recurrence` computes `cell`'s recurrence: the library's own cells (not a
    subclass, whose step may differ) without peepholes or layer normalisation."""
    if type(cell) is LSTMCell:
        return not (cell.peephole or cell.layer_norm)
    return type(cell) in (GRUCell, SimpleRNNCell)


def fused_recurrence(cell, xw, initial_state, recurrent_mask=None):
    """`scan_steps(cell.step, ...)` without mask or go_backwards, with the hand-written gradient.

    Args:
        cell: a cell for which `applies(cell)`.
        xw: (B, T, G*U) projected inputs `cell.project_inputs(x)`.
        initial_state: list of (B, U): [h] or, for the LSTM, [h, c].
        recurrent_mask: m (B, U) or None; no gradient flows to it.

    Returns:
        last_output (B, U), outputs (B, T, U), final states (list of (B, U)).
    """
    dtype = xw.dtype
    weights = {name: tf.cast(w, dtype) for name, w in cell.step_weights().items()}
    if type(cell) is LSTMCell:
        steps = _lstm_steps(cell, recurrent_mask)
    elif type(cell) is GRUCell and cell.reset_after:
        steps = _gru_steps(cell, recurrent_mask)
    elif type(cell) is GRUCell:
        steps = _gru_reset_before_steps(cell, recurrent_mask)
    else:
        steps = _simple_rnn_steps(cell, recurrent_mask)
    states = [tf.convert_to_tensor(s, dtype) for s in initial_state]
    ys, final = _recurrence(steps, tf.transpose(xw, (1, 0, 2)), weights, states)
    return ys[-1], tf.transpose(ys, (1, 0, 2)), final


# -- the time loops and the custom gradient ----------------------------------------------
def _recurrence(steps, xs, weights, states):
    """Runs `steps.forward` over time-major `xs` (T, B, G*U) with the gradient of `steps.backward`.

    steps.forward(x~_t, states, weights) -> (new states, the n_saved activations to keep).
    steps.backward(d states_t, states_t, states_{t-1}, saved_t, weights)
        -> (dx~_t, d states_{t-1}), where d states_t already holds (B1).
    steps.weight_gradients(states_{t-1}, saved, dx~, weights), all stacked over time (T, B, .)
        -> the gradient of each weight.
    `weights` is the cell's `step_weights()` dict (as tensors); the gradients come back in its
    order. Returns ys (T, B, U) (the first state at every step) and the final states.
    """
    names = list(weights)
    n_w = len(names)

    def forward(xs, weights, states):
        length = tf.shape(xs)[0]
        xs_ta = tf.TensorArray(xs.dtype, size=length, element_shape=xs.shape[1:]).unstack(xs)

        def body(t, states, seqs, saved):
            states, keep = steps.forward(xs_ta.read(t), states, weights)
            seqs = [ta.write(t, s) for ta, s in zip(seqs, states)]
            return t + 1, states, seqs, [ta.write(t, k) for ta, k in zip(saved, keep)]

        _, final, seqs, saved = tf.while_loop(
            lambda t, *_: t < length, body,
            (0, states, _arrays(xs, len(states)), _arrays(xs, steps.n_saved)),
            maximum_iterations=length,  # XLA (jit_compile=True) needs the bound
        )
        return final, [_stack(ta, states[0]) for ta in seqs], [_stack(ta, states[0]) for ta in saved]

    def backward(dys, d_final, weights, states0, seqs, saved):
        length = tf.shape(dys)[0]
        prev = [tf.concat([s0[None], s[:-1]], 0) for s0, s in zip(states0, seqs)]
        dys_ta = tf.TensorArray(dys.dtype, size=length).unstack(dys)

        def back(t, d_states, dxs):
            d_states = [dys_ta.read(t) + d_states[0], *d_states[1:]]  # (B1)
            dx, d_states = steps.backward(d_states, [s[t] for s in seqs], [p[t] for p in prev],
                                         [k[t] for k in saved], weights)
            return t - 1, d_states, dxs.write(t, dx)

        _, d_states0, dxs = tf.while_loop(
            lambda t, *_: t >= 0, back,
            (length - 1, list(d_final),
             tf.TensorArray(dys.dtype, size=length, element_shape=xs.shape[1:])),
            maximum_iterations=length,
        )
        dxs = dxs.stack()
        return dxs, steps.weight_gradients(prev, saved, dxs, weights), d_states0

    @tf.custom_gradient
    def run(xs, *args):
        # The loops are run on constants: their gradient is the hand-written one.
        weights = dict(zip(names, _constants(args[:n_w])))
        states = _constants(args[n_w:])
        final, seqs, saved = forward(tf.stop_gradient(xs), weights, states)

        def grad(dys, *d_final):
            dys, d_final = tf.stop_gradient(dys), _constants(d_final)
            dxs, d_weights, d_states0 = backward(dys, d_final, weights, states, seqs, saved)
            return (dxs, *d_weights, *d_states0)

        return (seqs[0], *final), grad

    ys, *final = run(xs, *weights.values(), *states)
    return ys, list(final)


def _constants(tensors):
    return [tf.stop_gradient(t) for t in tensors]


def _arrays(like, count):
    return [tf.TensorArray(like.dtype, size=tf.shape(like)[0]) for _ in range(count)]


def _stack(ta, like):
    out = ta.stack()
    out.set_shape([None, *like.shape])
    return out


def _masked(x, mask):
    return x if mask is None else x * mask


def _gram(rows_a, rows_b):
    """sum_t a_t^T b_t for a (T, B, P), b (T, B, Q): one matmul over all T*B rows -> (P, Q)."""
    a = tf.reshape(rows_a, (-1, rows_a.shape[-1]))
    b = tf.reshape(rows_b, (-1, rows_b.shape[-1]))
    return tf.matmul(a, b, transpose_a=True)


# -- the cells: forward from the cell itself (`gates_at`), backward as above ----------------
def _lstm_steps(cell, m):
    def forward_step(xw_t, states, weights):
        q = cell.gates_at(xw_t, states, m, weights)
        return [q["h"], q["c"]], [q[k] for k in LSTM_GATES]

    def backward_step(d_states, states, prev, saved, weights):
        dh, dc = d_states
        (_, c), (_, c_prev), (i, f, g, o) = states, prev, saved
        tanh_c = tf.tanh(c)
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # (L1)
        da = tf.concat([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),  # (L2)
                        dc * i * (1.0 - g * g), dh * tanh_c * o * (1.0 - o)], -1)
        dh_prev = _masked(tf.matmul(da, weights["recurrent_kernel"], transpose_b=True), m)  # (L3)
        return da, [dh_prev, dc * f]

    def weight_gradients(prev, saved, dxs, weights):
        return [_gram(_masked(prev[0], m), dxs)]  # (L4)

    return Steps(forward_step, backward_step, weight_gradients, n_saved=len(LSTM_GATES))


def _gru_steps(cell, m):
    """reset_after=True."""
    saved_names = ("z", "r", "h~", "u_h")  # n = h~, u_h as `GRUCell.gates_at` names them

    def forward_step(xw_t, states, weights):
        q = cell.gates_at(xw_t, states, m, weights)
        return [q["h"]], [q[k] for k in saved_names]

    def backward_step(d_states, states, prev, saved, weights):
        (dh,), (h_prev,), (z, r, n, u_h) = d_states, prev, saved
        dz = dh * (h_prev - n) * z * (1.0 - z)  # (G1)
        dn = dh * (1.0 - z) * (1.0 - n * n)
        dr = dn * u_h * r * (1.0 - r)  # (G2)
        du = tf.concat([dz, dr, dn * r], -1)
        dh_prev = dh * z + _masked(tf.matmul(du, weights["recurrent_kernel"], transpose_b=True), m)  # (G3)
        return tf.concat([dz, dr, dn], -1), [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dz, dr, dn = tf.split(dxs, 3, axis=-1)
        du = tf.concat([dz, dr, dn * saved[1]], -1)  # (G2), r = saved[1]
        return [_gram(_masked(prev[0], m), du), tf.reduce_sum(du, [0, 1])]  # (G4)

    return Steps(forward_step, backward_step, weight_gradients, n_saved=len(saved_names))


def _gru_reset_before_steps(cell, m):
    """reset_after=False."""
    units = cell.units

    def kernels(kernel):
        return tf.split(kernel, [2 * units, units], axis=1)  # [U_z | U_r], U_h

    def forward_step(xw_t, states, weights):
        q = cell.gates_at(xw_t, states, m, weights)
        return [q["h"]], [q["z"], q["r"], q["h~"]]

    def backward_step(d_states, states, prev, saved, weights):
        U_zr, U_h = kernels(weights["recurrent_kernel"])
        (dh,), (h_prev,), (z, r, n) = d_states, prev, saved
        h_in = _masked(h_prev, m)
        dz = dh * (h_prev - n) * z * (1.0 - z)  # (G1)
        dn = dh * (1.0 - z) * (1.0 - n * n)
        ds = tf.matmul(dn, U_h, transpose_b=True)  # (G5)
        dr = ds * h_in * r * (1.0 - r)
        dzr = tf.concat([dz, dr], -1)
        dh_prev = dh * z + _masked(tf.matmul(dzr, U_zr, transpose_b=True) + ds * r, m)  # (G6)
        return tf.concat([dzr, dn], -1), [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dzr, dn = tf.split(dxs, [2 * units, units], axis=-1)
        h_in = _masked(prev[0], m)
        return [tf.concat([_gram(h_in, dzr), _gram(saved[1] * h_in, dn)], 1)]  # (G7)

    return Steps(forward_step, backward_step, weight_gradients, n_saved=3)


def _simple_rnn_steps(cell, m):
    derivative = ACTIVATION_DERIVATIVES[cell.activation]

    def forward_step(xw_t, states, weights):
        return [cell.gates_at(xw_t, states, m, weights)["h"]], []

    def backward_step(d_states, states, prev, saved, weights):
        (dh,), (h,) = d_states, states
        da = dh * derivative(h)  # (S1)
        return da, [_masked(tf.matmul(da, weights["recurrent_kernel"], transpose_b=True), m)]

    def weight_gradients(prev, saved, dxs, weights):
        return [_gram(_masked(prev[0], m), dxs)]  # (S1)

    return Steps(forward_step, backward_step, weight_gradients, n_saved=0)
