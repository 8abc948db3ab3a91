"""Fused recurrence: the training fast path of `SimpleRNN`, `LSTM` and `GRU` on TensorFlow.

The reference path (`recurrent.scan_steps` over `cell.step`) is differentiated automatically:
TensorFlow's while-loop gradient pushes every intermediate onto stacks, pops them back one
op at a time, and at every step multiplies a (U, B) by a (B, G*U) matrix for the recurrent
weight gradient. This module computes the same function with a hand-written backward pass
(`tf.custom_gradient` around the whole time loop):
- the forward loop runs each step through the cell's own `gates_at` (its weights passed
  explicitly, `cell.step_weights()`), so the forward equations are stated once, in the cell,
  and writes the states and the gate activations of a step as one row;
- the local derivatives of each step (the factors below that do not depend on the gradient
  flowing back) are computed for all T steps at once, outside the loop;
- the backward loop carries only dh (and dc): a few multiplications and one matmul per step;
- the weight gradients are then one matmul over all B*T rows.
Few ops per step matter as much as the arithmetic: at U = 32-128 a step's cost is mostly
TensorFlow's per-op overhead, and its copying kernels (concat, stack, split) cost ~0.1 ms
there, ten times an elementwise op. So the loops copy nothing: each saved tensor has its own
TensorArray, factors are read by slicing, and the (B, G*U) gradient the recurrent matmul needs
is made by broadcasting, [e, e, e, dh] * K = e K^e + dh K^h over a (B, G, U) view.
It reads the cell's `kernel`/`recurrent_kernel`/`bias` and creates no weights.
`tests/layers/test_fused.py` proves it equal to the reference path: outputs, final states and
gradients w.r.t. every weight, the inputs and the initial states, with and without masks.

Masks (Keras's semantics, as `scan_steps`): with m_t in {0, 1} (B, 1) the carried states are
    (M1) s_t = m_t s^new_t + (1 - m_t) s_{t-1}     for each state s (h, and c for the LSTM)
and the output y_t is h_t once the row has had a valid step, zeros before
(y_t = v_t h_t, v_t = [m_1 + ... + m_t > 0]), or y_t = m_t h_t with `zero_output_for_mask`.

Backward equations, in the cells' symbols (cells/lstm.py, cells/gru.py, cells/simple_rnn.py).
dy_t is the gradient arriving at h_t from the output, dh'_t and dc'_t the gradients carried
back from step t + 1 (at t = T: those of the final states), m_h the recurrent dropout mask
(1 when absent), h^m = h_{t-1} * m_h, a_k the pre-activation of gate k, x~_t = x_t W + b
the projected input, p_t = 1 - m_t (0 without a mask); factors named K are computed before
the loop, with m_t folded in (they vanish at a masked step):
    (B1) dh_t = dy_t + dh'_t                                                   every cell
LSTM (A_t = o_t (1 - tanh(c_t)^2)):
    (L1) e_t = dc'_t + dh_t A_t                       the gradient at c^new_t
    (L2) da_t = [e_t, e_t, e_t, dh_t] * K_t,  K_t = m_t [g i (1 - i), c_{t-1} f (1 - f), i (1 - g^2), tanh(c_t) o (1 - o)]
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
The gradients w.r.t. W and b^x (b) follow from dx~ through `cell.project_inputs`, outside.

On its own the layer's loops run in TensorFlow's executor; a step compiled as a whole
(`jit_compile=True`, and `keras_gated.train` on CPU) compiles them too, since they are bounded
(`maximum_iterations`).
"""

import collections

import tensorflow as tf

from keras_gated.cells import LSTM_GATES, GRUCell, LSTMCell, SimpleRNNCell

# One cell's recurrence for `_recurrence`:
#   states, saved: the names in `cell.gates_at`'s result of the carried states and of the
#       activations the backward pass reads;
#   factors(seqs, prev, saved, m) -> the per-step factors of the backward loop, each (T, B, .),
#       computed for all steps at once (seqs: the carried states, prev: the same one step
#       earlier, m: (T, B, 1) or None);
#   n_dx: how many parts `back` returns dx~_t in (concatenated after the loop);
#   back(dh, d_rest, factors_t, weights) -> ([dx~_t parts], [dh'_{t-1}, *d_rest_{t-1}]),
#       (B1) done; `weights` also holds "U^T", the recurrent kernel transposed;
#   weight_gradients(prev, saved, dxs, weights) -> the gradient of each weight, in order.
Chain = collections.namedtuple("Chain", "states saved n_dx factors back weight_gradients")

# Iterations TensorFlow's executor may run ahead: the recurrence itself is sequential, but a
# step's input slice and output write need not wait for the step before.
PARALLEL_ITERATIONS = 32

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


def fused_recurrence(cell, weights, xw, initial_state, recurrent_mask=None, mask=None,
                     zero_output_for_mask=False):
    """`scan_steps(cell.step, ...)` (forward time order) with the hand-written gradient.

    Args:
        cell: a cell for which `applies(cell)`.
        weights: the cell's `step_weights()` as tensors (the gradient flows back to them).
        xw: (B, T, G*U) projected inputs `cell.project_inputs(x)`, in processing order.
        initial_state: list of (B, U): [h] or, for the LSTM, [h, c].
        recurrent_mask: m_h (B, U) or None; no gradient flows to it.
        mask: optional (B, T) bool, in processing order (M1).
        zero_output_for_mask: a masked step outputs zeros.

    Returns:
        last_output (B, U), outputs (B, T, U), final states (list of (B, U)).
    """
    dtype = xw.dtype
    weights = {name: tf.cast(w, dtype) for name, w in weights.items()}
    m = None if mask is None else tf.cast(tf.transpose(mask)[..., None], dtype)  # (T, B, 1)
    if type(cell) is LSTMCell:
        chain = _lstm_chain(recurrent_mask)
    elif type(cell) is GRUCell and cell.reset_after:
        chain = _gru_chain(recurrent_mask)
    elif type(cell) is GRUCell:
        chain = _gru_reset_before_chain(cell.units, recurrent_mask)
    else:
        chain = _simple_rnn_chain(cell.activation, recurrent_mask)
    states = [tf.convert_to_tensor(s, dtype) for s in initial_state]
    hs, final = _recurrence(cell, chain, tf.transpose(xw, (1, 0, 2)), m, recurrent_mask,
                            weights, states)
    if m is not None:
        shown = m if zero_output_for_mask else tf.cast(tf.cumsum(m, axis=0) > 0.0, dtype)
        hs = hs * shown  # y_t = v_t h_t (or m_t h_t)
    return hs[-1], tf.transpose(hs, (1, 0, 2)), final


# -- the time loops and the custom gradient ----------------------------------------------
def _recurrence(cell, chain, xs, m, m_h, weights, states):
    """Runs `cell.gates_at` over time-major `xs` (T, B, G*U) with the gradient of `chain`.

    m: (T, B, 1) or None (M1). Returns the carried h_t (T, B, U) and the final states.
    """
    names = list(weights)
    n_w, n_s = len(names), len(states)

    def forward(xs, weights, states):
        length = tf.shape(xs)[0]
        valid = None if m is None else m > 0.0

        def body(t, states, rows):
            q = cell.gates_at(xs[t], states, m_h, weights)
            new = [q[k] for k in chain.states]
            if valid is not None:
                new = [tf.where(valid[t], n, s) for n, s in zip(new, states)]  # (M1)
            rows = [ta.write(t, r) for ta, r in zip(rows, [*new, *(q[k] for k in chain.saved)])]
            return t + 1, new, rows

        _, final, rows = tf.while_loop(
            lambda t, *_: t < length, body,
            (0, states, [tf.TensorArray(xs.dtype, size=length)
                         for _ in range(n_s + len(chain.saved))]),
            maximum_iterations=length,  # XLA (jit_compile=True) needs the bound
            parallel_iterations=PARALLEL_ITERATIONS,
        )
        rows = [_stack(ta, states[0]) for ta in rows]
        return final, rows[:n_s], rows[n_s:]

    def backward(dys, d_final, weights, states0, seqs, saved):
        length = tf.shape(dys)[0]
        weights = {**weights, "U^T": tf.transpose(weights["recurrent_kernel"])}
        prev = [tf.concat([s0[None], s[:-1]], 0) for s0, s in zip(states0, seqs)]
        factors = chain.factors(seqs, prev, saved, m)

        def back(t, d_states, dxs):
            dh = dys[t] + d_states[0]  # (B1)
            dx, d_states = chain.back(dh, d_states[1:], [f[t] for f in factors], weights)
            return t - 1, d_states, [ta.write(t, d) for ta, d in zip(dxs, dx)]

        _, d_states0, dxs = tf.while_loop(
            lambda t, *_: t >= 0, back,
            (length - 1, list(d_final), [tf.TensorArray(dys.dtype, size=length)
                                         for _ in range(chain.n_dx)]),
            maximum_iterations=length,
            parallel_iterations=PARALLEL_ITERATIONS,
        )
        dxs = tf.concat([ta.stack() for ta in dxs], -1)
        dxs.set_shape(xs.shape)
        return dxs, chain.weight_gradients(prev, saved, dxs, weights), d_states0

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

    hs, *final = run(xs, *weights.values(), *states)
    return hs, list(final)


def _constants(tensors):
    return [tf.stop_gradient(t) for t in tensors]


def _stack(ta, like):
    out = ta.stack()
    out.set_shape([None, *like.shape])
    return out


def _masked(x, mask):
    return x if mask is None else x * mask


def _gates(*blocks):
    """(T, B, U) blocks, or 0 for a zero block -> (T, B, G, U), to broadcast a (B, 1, U) over."""
    like = next(b for b in blocks if not isinstance(b, float))
    return tf.stack([tf.zeros_like(like) if isinstance(b, float) else b for b in blocks], -2)


def _flat(x):
    """(B, G, U) -> (B, G*U), a view."""
    return tf.reshape(x, (-1, x.shape[-2] * x.shape[-1]))


def _gram(rows_a, rows_b):
    """sum_t a_t^T b_t for a (T, B, P), b (T, B, Q): one matmul over all T*B rows -> (P, Q)."""
    a = tf.reshape(rows_a, (-1, rows_a.shape[-1]))
    b = tf.reshape(rows_b, (-1, rows_b.shape[-1]))
    return tf.matmul(a, b, transpose_a=True)


def _passed(m):
    """p_t = 1 - m_t (T, B, 1): the share of a gradient a masked step passes straight back."""
    return [] if m is None else [1.0 - m]


# -- the cells: forward from the cell itself (`gates_at`), backward as above ----------------
def _lstm_chain(m_h):
    def factors(seqs, prev, saved, m):
        (_, c), (_, c_prev), (i, f, g, o) = seqs, prev, saved
        tanh_c = tf.tanh(c)
        K = [_masked(k, m) for k in (g * i * (1.0 - i), c_prev * f * (1.0 - f),  # (L2)
                                     i * (1.0 - g * g), tanh_c * o * (1.0 - o))]
        K_e, K_h = _gates(*K[:3], 0.0), _gates(0.0, 0.0, 0.0, K[3])
        return [o * (1.0 - tanh_c * tanh_c), K_e, K_h, _masked(f, m), *_passed(m)]

    def back(dh, d_rest, factors_t, weights):
        (dc,), (A, K_e, K_h, mf, *p) = d_rest, factors_t
        e = dc + dh * A  # (L1)
        da = _flat(e[:, None] * K_e + dh[:, None] * K_h)  # (L2)
        dh_prev = _masked(tf.matmul(da, weights["U^T"]), m_h)  # (L3)
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
        return [_gates(K_z, K_r, K_n), _gates(K_z, K_r, K_n * r), carry]

    def back(dh, d_rest, factors_t, weights):
        K, K_u, carry = factors_t
        dx = _flat(dh[:, None] * K)  # (G1), (G2): [dz, dr, dn]
        du = _flat(dh[:, None] * K_u)  # [dz, dr, dn r]
        dh_prev = dh * carry + _masked(tf.matmul(du, weights["U^T"]), m_h)  # (G3)
        return [dx], [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dz, dr, dn = tf.split(dxs, 3, axis=-1)
        du = tf.concat([dz, dr, dn * saved[1]], -1)  # (G2), r = saved[1]
        return [_gram(_masked(prev[0], m_h), du), tf.reduce_sum(du, [0, 1])]  # (G4)

    return Chain(("h",), ("z", "r", "h~", "u_h"), 1, factors, back, weight_gradients)


def _gru_reset_before_chain(units, m_h):
    """reset_after=False."""

    def factors(seqs, prev, saved, m):
        z, r, n = saved
        K_z, K_n, carry = _gru_factors(prev, z, n, m)
        K_r = _masked(prev[0], m_h) * r * (1.0 - r)
        return [K_z, K_n, _gates(K_z, 0.0), _gates(0.0, K_r), r, carry]

    def back(dh, d_rest, factors_t, weights):
        K_z, K_n, K_z0, K_0r, r, carry = factors_t
        U_zr_T, U_h_T = weights["U^T"][: 2 * units], weights["U^T"][2 * units:]  # slices, no copy
        dn = dh * K_n  # (G1)
        ds = tf.matmul(dn, U_h_T)  # (G5)
        dzr = _flat(dh[:, None] * K_z0 + ds[:, None] * K_0r)  # [dz, dr]
        dh_prev = dh * carry + _masked(tf.matmul(dzr, U_zr_T) + ds * r, m_h)  # (G6)
        return [dzr, dn], [dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        dzr, dn = tf.split(dxs, [2 * units, units], axis=-1)
        h_in = _masked(prev[0], m_h)
        return [tf.concat([_gram(h_in, dzr), _gram(saved[1] * h_in, dn)], 1)]  # (G7)

    return Chain(("h",), ("z", "r", "h~"), 2, factors, back, weight_gradients)


def _simple_rnn_chain(activation, m_h):
    derivative = ACTIVATION_DERIVATIVES[activation]

    def factors(seqs, prev, saved, m):
        return [_masked(derivative(seqs[0]), m), *_passed(m)]

    def back(dh, d_rest, factors_t, weights):
        K, *p = factors_t
        da = dh * K  # (S1)
        dh_prev = _masked(tf.matmul(da, weights["U^T"]), m_h)
        return [da], [dh_prev + p[0] * dh if p else dh_prev]

    def weight_gradients(prev, saved, dxs, weights):
        return [_gram(_masked(prev[0], m_h), dxs)]  # (S2)

    return Chain(("h",), (), 1, factors, back, weight_gradients)
