"""On torch: ATen's recurrences (`torch.lstm`, `gru`, `rnn_tanh`) for the calls they compute.

PyTorch's `nn.LSTM`/`nn.GRU`/`nn.RNN` run `torch.lstm`/`torch.gru`/`torch.rnn_tanh` (also
`torch._VF.*`): the whole recurrence in one C++ call. Our layers can hand them our weights,
re-laid out (`aten_weights`), when the call is one ATen computes exactly:
    the cell is a plain `LSTMCell`, `GRUCell(reset_after=True)` or `SimpleRNNCell` (a bias,
    tanh and sigmoid: `cell.is_plain()`; not a subclass, whose step may differ);
    no recurrent dropout or weight dropout in this call (the input mask m_x is applied first);
    no `mask`.
PyTorch's layout (`ATEN_GATES`): weight_ih (G*U, D), weight_hh (G*U, U), bias_ih and bias_hh
(G*U,) each, gates LSTM i, f, g, o (ours too), GRU r, z, n (ours z, r, h); n is our h~ of
(3a), PyTorch's b_hn our b_h^h inside r * (.), so a reset_after GRU's bias (2, 3U) is
[b_ih; b_hh]. The LSTM and SimpleRNN have one bias: it is b_ih, b_hh = 0.

Why delegate, measured (CPU, torch 2.13, 2 threads; one layer call, B=32, T=50, D=U, float32,
median ms; reference = `scan_steps` under autograd, fused = `fused_torch.py`):
                training: forward + backward       inference (no_grad)
                reference    fused    ATen          reference    ATen
    LSTM U=32      16.3       10.9     2.0             4.9        1.0
    LSTM U=128     26.7       22.4    10.5            10.0        3.0
    GRU  U=32      14.0       11.3     8.7             5.6        1.6
    GRU  U=128     25.5       20.7    17.0             9.4        8.2
    RNN  U=32       5.0        7.8     2.6             3.2        1.4
    RNN  U=128     14.6       11.9     5.5             3.5        3.5
ATen is the fastest path for every cell it computes, training and at inference, so every such
call delegates. Its LSTM is oneDNN's kernel (`mkldnn_rnn_layer`, forward and backward); its GRU
and RNN are a C++ loop over cells that autograd records step by step, so the GRU's lead shrinks
with U: fused against ATen in training, interleaved, fastest of 20 (the machine was shared;
medians were level from U=256 on): U=128 28.6 / 22.1 ms, U=256 69.2 / 50.8, U=512 140 / 132.
"""

import keras
import torch
from keras import ops

from keras_gated.cells import GRUCell, LSTMCell, SimpleRNNCell

# Gate order of PyTorch's packed weights, our gate names ("h" is GRU's candidate n).
ATEN_GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "h"), "rnn": ("h",)}
# The ATen function of each: (x (B, T, D), hx, params, has_biases, num_layers, dropout, train,
# bidirectional, batch_first) -> (outputs (B, T, U), *final states (1, B, U)).
ATEN_RECURRENCES = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}


def _kind(cell):
    """ "lstm", "gru", "rnn" or None: which ATen recurrence computes `cell`'s equations."""
    if type(cell) is LSTMCell and cell.is_plain():
        return "lstm"
    if type(cell) is GRUCell and cell.reset_after and cell.is_plain():
        return "gru"
    if type(cell) is SimpleRNNCell and cell.is_plain():
        return "rnn"
    return None


def applies(cell):
    """Whether ATen computes `cell`'s recurrence exactly (dropout and mask checked by the
    caller)."""
    return _kind(cell) is not None


def aten_weights(cell, kernel, recurrent_kernel, bias):
    """Our (D, G*U), (U, G*U) and bias -> [weight_ih (G*U, D), weight_hh (G*U, U), bias_ih,
    bias_hh (G*U,)], gates reordered from `cell.gates` to `ATEN_GATES`."""
    target = ATEN_GATES[_kind(cell)]

    def reorder(w):  # the last axis, from cell.gates to target (the LSTM's is the same)
        if tuple(cell.gates) == target:
            return w
        parts = dict(zip(cell.gates, torch.chunk(w, len(cell.gates), dim=-1)))
        return torch.cat([parts[k] for k in target], dim=-1)

    b_ih, b_hh = (bias[0], bias[1]) if bias.ndim == 2 else (bias, torch.zeros_like(bias))
    return [reorder(kernel).T, reorder(recurrent_kernel).T, reorder(b_ih), reorder(b_hh)]


def recurrence(cell, x, initial_state, go_backwards):
    """ATen's recurrence of `cell` over x.

    Args:
        cell: a cell for which `applies(cell)`.
        x: (B, T, D) inputs, input dropout already applied.
        initial_state: list of (B, U): [h, c] for the LSTM, [h] otherwise.
        go_backwards: process time in reverse; outputs stay in processing order.

    Returns:
        (last_output (B, U), outputs (B, T, U), final states), as `keras.layers.RNN.inner_loop`
        returns them.
    """
    dtype = keras.backend.result_type(x.dtype, cell.compute_dtype)  # as x W (x may be ints)
    weights = (ops.cast(w, dtype) for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    hx = [ops.cast(s, dtype)[None] for s in initial_state]  # (1, B, U): one layer
    xs = ops.cast(ops.flip(x, 1) if go_backwards else x, dtype)
    outputs, *final = ATEN_RECURRENCES[_kind(cell)](
        xs,
        hx if len(hx) > 1 else hx[0],
        aten_weights(cell, *weights),
        True,
        1,
        0.0,
        False,
        False,
        True,
    )
    return outputs[:, -1], outputs, [s[0] for s in final]
