"""Float64 numpy references for the recurrent cells, written from docs/DESIGN.md.

These functions are the independent oracle for `keras_gated`: they never import the
library, TensorFlow or Keras. Each one is a plain step-by-step loop over time, with one
statement per equation and every gate taken from the packed weights by name.

Symbols:
    B: batch size, T: time steps, D: input features, U: units.
    x: (B, T, D) inputs; h0, c0: (B, U) initial states.
    kernel W: (D, G*U), recurrent_kernel U: (U, G*U), with G gates packed side by side
    in the order stated once below (Keras's order, so Keras weights copy over as is).

Equations (DESIGN.md, "Equations"):
    SimpleRNN  h_t = act(x_t W + h_{t-1} U + b)
    IndRNN     h_t = act(x_t W + u * h_{t-1} + b)                   u (U,), * elementwise
               (Li et al. 2018; SimpleRNN with U = diag(u))
    LSTM       a_k = x W_k + h U_k + b_k     for k in i, f, g, o    (1)
               i = sigma(a_i)                                       (2)
               f = sigma(a_f)                                       (3)
               g = tanh(a_g)                                        (4)
               c_t = f * c_{t-1} + i * g                            (5)
               o = sigma(a_o)                                       (6)
               h_t = o * tanh(c_t)                                  (7)
      (numbered as in keras_gated/cells/lstm.py)
      peephole (Gers & Schmidhuber): + p_i * c_{t-1} in (2), + p_f * c_{t-1} in (3),
               + p_o * c_t in (6); peephole weights (3, U) rows p_i, p_f, p_o.
      layer norm: a_k = x W_k + h U_k, normalised over its U units to mean 0 and
               (biased) variance 1 with epsilon 1e-3 inside the square root, then
               * gamma_k + b_k. With both variants the peephole term is added after the
               normalisation (DESIGN.md does not say; see `lstm`).
    GRU        z = sigma(x W_z + h U_z + b_z)                       (1)
               r = sigma(x W_r + h U_r + b_r)                       (2)
      reset_after=True, bias (2, 3U) = [input bias; recurrent bias]:
               h~ = tanh(x W_h + b^x_h + r * (h U_h + b^h_h))        (3a)
      reset_after=False, bias (3U,):
               h~ = tanh(x W_h + (r * h) U_h + b_h)                  (3b)
               h_t = z * h_{t-1} + (1 - z) * h~                      (4)
      layer norm, gamma (2, 3U) = [gamma^x; gamma^h]: every projection normalised per gate
               (over its U units, as the LSTM's) before its bias is added:
               x W_k -> gamma^x_k LN(x W_k)                          (L1)
               h U_k -> gamma^h_k LN(h U_k)      k in z, r; h in (3a) (L2)
               (r * h) U_h -> gamma^h_h LN((r * h) U_h)     in (3b)  (L3)

Zoneout (Krueger et al. 2016), on h (rate zoneout) and an LSTM's c (cell_zoneout), after the
equations above, which all read the new c_t (as the paper's h_t = o * tanh(c'_t)):
    training   s_t = d_t * s_{t-1} + (1 - d_t) * s'_t      d_t a given 0/1 mask
    inference  s_t = p * s_{t-1} + (1 - p) * s'_t

Masking follows Keras's `keras.layers.RNN` with `zero_output_for_mask=False`: at a
masked step every state keeps its previous value and the output repeats the previous
step's output; before the first step that previous output is zeros (not h0).
"""

import numpy as np

LSTM_GATES = ("i", "f", "g", "o")  # Keras's i, f, c, o; g is the candidate C~.
GRU_GATES = ("z", "r", "h")  # update, reset, candidate h~ (Keras and ONNX order).
GRU_CANDIDATE = "h~"  # key of the candidate in `gru`'s gate dict ("h" there would read as h_t)
PEEPHOLE_ROWS = ("i", "f", "o")  # rows of the (3, U) peephole weights.
LAYER_NORM_EPSILON = 1e-3


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "sigmoid": sigmoid,
    "linear": lambda a: a,
}


def split_gates(packed, gates):
    """Splits the last axis of `packed` (..., G*U) into {gate name: (..., U)}."""
    units = packed.shape[-1] // len(gates)
    return {name: packed[..., k * units : (k + 1) * units] for k, name in enumerate(gates)}


def layer_norm(a, eps=LAYER_NORM_EPSILON):
    """Normalises a (B, U) over its last axis to mean 0 and biased variance 1."""
    mean = a.mean(axis=-1, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=-1, keepdims=True)
    return (a - mean) / np.sqrt(var + eps)


def zone_out(prev, new, rate, keep=None):
    """Zoneout (Krueger et al. 2016): keep * prev + (1 - keep) * new with a 0/1 mask `keep`
    (training), else the expectation rate * prev + (1 - rate) * new (inference)."""
    if keep is None:
        return rate * prev + (1.0 - rate) * new
    return keep * prev + (1.0 - keep) * new


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _scan(step, x, states, mask, per_step=()):
    """Runs `step(x_t, states, *per_step_t) -> (output, new_states, gates)` over the time
    axis; `per_step` are (B, T, ...) arrays sliced at t like x.

    Returns outputs (B, T, U), the final states (list) and the gates stacked to (B, T, U).
    """
    batch, steps = x.shape[:2]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool).reshape(batch, steps)
    outputs, gate_steps = [], []
    prev_output = np.zeros_like(states[0])  # Keras starts the masked scan from zeros.
    for t in range(steps):
        output, new_states, gates = step(x[:, t], states, *[a[:, t] for a in per_step])
        if mask is not None:
            keep = mask[:, t, None]
            output = np.where(keep, output, prev_output)
            new_states = [np.where(keep, new, old) for new, old in zip(new_states, states)]
        outputs.append(output)
        gate_steps.append(gates)
        states, prev_output = new_states, output
    gates = {name: np.stack([g[name] for g in gate_steps], axis=1) for name in gate_steps[0]}
    return np.stack(outputs, axis=1), list(states), gates


def simple_rnn(x, h0, kernel, recurrent_kernel, bias, activation="tanh", mask=None):
    """Elman RNN. Returns (outputs (B, T, U), [h_T])."""
    W, R = _f64(kernel), _f64(recurrent_kernel)
    b = np.zeros(W.shape[1]) if bias is None else _f64(bias)
    act = ACTIVATIONS[activation]

    def step(x_t, states):
        (h_prev,) = states
        h = act(x_t @ W + h_prev @ R + b)
        return h, [h], {}

    outputs, states, _ = _scan(step, _f64(x), [_f64(h0)], mask)
    return outputs, states


def indrnn(x, h0, kernel, recurrent_kernel, bias, activation="relu", mask=None):
    """Independently recurrent RNN, recurrent_kernel u (U,). Returns (outputs (B, T, U), [h_T])."""
    W, u = _f64(kernel), _f64(recurrent_kernel)
    b = np.zeros(W.shape[1]) if bias is None else _f64(bias)
    act = ACTIVATIONS[activation]

    def step(x_t, states):
        (h_prev,) = states
        h = act(x_t @ W + u * h_prev + b)
        return h, [h], {}

    outputs, states, _ = _scan(step, _f64(x), [_f64(h0)], mask)
    return outputs, states


def lstm(
    x,
    h0,
    c0,
    kernel,
    recurrent_kernel,
    bias,
    peephole=None,
    gamma=None,
    mask=None,
    zoneout=0.0,
    cell_zoneout=0.0,
    keep_h=None,
    keep_c=None,
):
    """LSTM, optionally with peepholes (3, U), layer norm gains gamma (4U,) and zoneout on h
    and c: rates (inference) or 0/1 masks keep_h, keep_c (B, T, U) (training).

    Returns (outputs (B, T, U), [h_T, c_T], {"i", "f", "g", "o": (B, T, U)}).
    """
    W = split_gates(_f64(kernel), LSTM_GATES)
    R = split_gates(_f64(recurrent_kernel), LSTM_GATES)
    b = split_gates(np.zeros(_f64(kernel).shape[1]) if bias is None else _f64(bias), LSTM_GATES)
    p = {k: np.zeros(W["i"].shape[1]) for k in PEEPHOLE_ROWS}
    if peephole is not None:
        p = dict(zip(PEEPHOLE_ROWS, _f64(peephole)))
    gain = None if gamma is None else split_gates(_f64(gamma), LSTM_GATES)

    def pre(k, x_t, h_prev):
        """a_k (1) without the peephole term."""
        a = x_t @ W[k] + h_prev @ R[k]
        if gain is None:
            return a + b[k]
        return layer_norm(a) * gain[k] + b[k]

    keeps = [a for a in (keep_h, keep_c) if a is not None]

    def step(x_t, states, *keep_t):
        h_prev, c_prev = states
        i = sigmoid(pre("i", x_t, h_prev) + p["i"] * c_prev)  # (2)
        f = sigmoid(pre("f", x_t, h_prev) + p["f"] * c_prev)  # (3)
        g = np.tanh(pre("g", x_t, h_prev))  # (4)
        c = f * c_prev + i * g  # (5)
        o = sigmoid(pre("o", x_t, h_prev) + p["o"] * c)  # (6), peephole sees c_t
        h = o * np.tanh(c)  # (7)
        d_h, d_c = keep_t if keep_t else (None, None)
        c = zone_out(c_prev, c, cell_zoneout, d_c)  # o and h above saw the new c, as the paper
        h = zone_out(h_prev, h, zoneout, d_h)
        return h, [h, c], {"i": i, "f": f, "g": g, "o": o}

    assert len(keeps) in (0, 2), "give both keep_h and keep_c (zeros for a rate of 0)"
    return _scan(step, _f64(x), [_f64(h0), _f64(c0)], mask, [_f64(k) for k in keeps])


def gru(
    x,
    h0,
    kernel,
    recurrent_kernel,
    bias,
    reset_after=True,
    gamma=None,
    mask=None,
    zoneout=0.0,
    keep=None,
):
    """GRU in Keras's convention, optionally with layer norm gains gamma (2, 3U) and zoneout
    on h: a rate (inference) or a 0/1 mask keep (B, T, U) (training).
    Returns (outputs, [h_T], {"z", "r", "h~": (B, T, U)}).

    The "h~" entry is the candidate (GRU_GATES's third gate, "h"), not the state h_t.
    """
    W = split_gates(_f64(kernel), GRU_GATES)
    R = split_gates(_f64(recurrent_kernel), GRU_GATES)
    zero = np.zeros(_f64(kernel).shape[1])
    if reset_after:
        bias = np.stack([zero, zero]) if bias is None else _f64(bias)
        b_x, b_h = split_gates(bias[0], GRU_GATES), split_gates(bias[1], GRU_GATES)
    else:
        b_x = split_gates(zero if bias is None else _f64(bias), GRU_GATES)
        b_h = split_gates(zero, GRU_GATES)
    gains = None if gamma is None else [split_gates(row, GRU_GATES) for row in _f64(gamma)]

    def norm(a, side, k):
        """(L1) side 0 (x W_k), (L2)/(L3) side 1 (the recurrent projections); or a."""
        return a if gains is None else layer_norm(a) * gains[side][k]

    def step(x_t, states, keep_t=None):
        (h_prev,) = states
        xw = {k: norm(x_t @ W[k], 0, k) + b_x[k] for k in GRU_GATES}
        z = sigmoid(xw["z"] + norm(h_prev @ R["z"], 1, "z") + b_h["z"])  # (1)
        r = sigmoid(xw["r"] + norm(h_prev @ R["r"], 1, "r") + b_h["r"])  # (2)
        if reset_after:
            h_cand = np.tanh(xw["h"] + r * (norm(h_prev @ R["h"], 1, "h") + b_h["h"]))  # (3a)
        else:
            h_cand = np.tanh(xw["h"] + norm((r * h_prev) @ R["h"], 1, "h"))  # (3b)
        h = z * h_prev + (1.0 - z) * h_cand  # (4)
        h = zone_out(h_prev, h, zoneout, keep_t)
        return h, [h], {"z": z, "r": r, GRU_CANDIDATE: h_cand}

    return _scan(step, _f64(x), [_f64(h0)], mask, [] if keep is None else [_f64(keep)])
