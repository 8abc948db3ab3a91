"""On torch: ATen's own recurrences (`torch.lstm`, `torch.rnn_tanh`, ...) for the calls they compute exactly.

PyTorch's `nn.LSTM`/`nn.GRU`/`nn.RNN` run `torch.lstm`/`torch.gru`/`torch.rnn_tanh` (also
`torch._VF.*`): the whole recurrence in one C++ call. Our layers can hand them our weights,
re-laid out (`aten_weights`), when the call is one ATen computes exactly:
    the cell is a plain `LSTMCell`, `GRUCell(reset_after=True)` or a `SimpleRNNCell` with a
    bias and tanh (relu: `torch.rnn_relu`) (`cell.is_plain()`; not a subclass);
    no recurrent dropout or weight dropout in this call (the input mask m_x is applied first);
    no `mask`.
PyTorch's layout (`ATEN_GATES`): weight_ih (G*U, D), weight_hh (G*U, U), bias_ih and bias_hh
(G*U,) each, gates LSTM i, f, g, o (ours too), GRU r, z, n (ours z, r, h); n is our h~ of
(3a), PyTorch's b_hn our b_h^h inside r * (.), so a reset_after GRU's bias (2, 3U) is
[b_ih; b_hh]. The LSTM and SimpleRNN have one bias: it is b_ih, b_hh = 0.
"""

import torch
from keras import ops

from keras_gated.cells import GRU_GATES, LSTM_GATES, GRUCell, LSTMCell, SimpleRNNCell
from keras_gated.cells.base import TANH

# Gate order of PyTorch's packed weights, our gate names ("h" is GRU's candidate n).
ATEN_GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "h"), "rnn": ("h",)}


def _kind(cell):
    """"lstm", "gru", "rnn" or None: which ATen recurrence computes `cell`'s equations."""
    if type(cell) is LSTMCell and cell.is_plain():
        return "lstm"
    if type(cell) is GRUCell and cell.reset_after and cell.is_plain():
        return "gru"
    if type(cell) is SimpleRNNCell and cell.is_plain():
        return "rnn"
    return None

# The ATen function for each kind: (x (B, T, D), hx, params, has_biases, num_layers, dropout,
# train, bidirectional, batch_first) -> (outputs (B, T, U), *final states (1, B, U)).
ATEN_RECURRENCES = {
    "lstm": torch.lstm,
    "gru": torch.gru,
    "rnn": torch.rnn_tanh,
}


def applies(cell):
    """Whether ATen computes `cell`'s recurrence exactly (dropout and mask checked by the
    caller)."""
    return _kind(cell) is not None


def aten_weights(cell, kernel, recurrent_kernel, bias):
    """Our (D, G*U), (U, G*U) and bias -> [weight_ih (G*U, D), weight_hh (G*U, U), bias_ih,
    bias_hh (G*U,)], gates reordered from `cell.gates` to `ATEN_GATES`."""
    target = ATEN_GATES[_kind(cell)]

    def reorder(w):  # the last axis, from cell.gates to target
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
    dtype = x.dtype
    weights = (ops.cast(w, dtype) for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    hx = [ops.cast(s, dtype)[None] for s in initial_state]  # (1, B, U): one layer
    xs = torch.flip(x, (1,)) if go_backwards else x
    outputs, *final = ATEN_RECURRENCES[_kind(cell)](
        xs, hx if len(hx) > 1 else hx[0], aten_weights(cell, *weights), True, 1, 0.0, False,
        False, True)
    return outputs[:, -1], outputs, [s[0] for s in final]
