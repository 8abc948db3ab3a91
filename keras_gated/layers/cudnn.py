"""On a GPU: cuDNN's fused LSTM/GRU kernels, through Keras, for the calls cuDNN computes exactly.

Keras's built-in LSTM and GRU run cuDNN's kernel (the whole recurrence, forward and backward,
in one call) on a GPU. Our layers hand the same kernel the same weights (same names, layout
and gate order: LSTM i, f, g, o; GRU z, r, h) when the call is one cuDNN computes exactly:
    the cell is a plain `LSTMCell` or `GRUCell(reset_after=True)` (`cell.is_plain()`: a bias,
    Keras's default activations, no peephole or layer_norm; not a subclass, whose step may
    differ) and the layer's `use_cudnn` is not False;
    no recurrent dropout in this call (the input mask m_x is applied to x first, as Keras does);
    no `mask`;
    float16, float32 or float64 inputs (cuDNN has no bfloat16 RNN).
Keras's TensorFlow backend (`lstm`/`gru`) then uses cuDNN when a GPU is visible and raises
NotImplementedError otherwise; the layer then runs its own loops, as it does for every other
call. cuDNN kernels cannot be XLA-compiled, so `keras_gated.train` uses XLA only on CPU, and
tf2onnx cannot convert them, so the export traces with `disabled()`.
"""

import contextlib

import tensorflow as tf

from keras_gated import keras_private
from keras_gated.cells import GRUCell, LSTMCell

_keras_rnn = keras_private.tensorflow_rnn()


_enabled = [True]
CUDNN_DTYPES = (tf.float16, tf.float32, tf.float64)


@contextlib.contextmanager
def disabled():
    """Within the block, layers traced or called run their own loops (for tf2onnx)."""
    _enabled.append(False)
    try:
        yield
    finally:
        _enabled.pop()


def gpu_available():
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_logical_devices("GPU"))


def applies(cell):
    """Whether cuDNN computes `cell`'s recurrence exactly (dropout and mask checked by the
    caller)."""
    if type(cell) is LSTMCell:
        return cell.is_plain()
    return type(cell) is GRUCell and cell.reset_after and cell.is_plain()


def recurrence(cell, x, initial_state, return_sequences, go_backwards):
    """cuDNN's recurrence of `cell` over x, or None when Keras cannot run it here (no GPU).

    Args:
        cell: a cell for which `applies(cell)`.
        x: (B, T, D) inputs, input dropout already applied.
        initial_state: list of (B, U): [h, c] for the LSTM, [h] for the GRU.

    Returns:
        (last_output (B, U), outputs (B, T, U), or (B, 1, U) without return_sequences,
        final states), as `keras.layers.RNN.inner_loop` returns them; or None.
    """
    if not _enabled[-1] or tf.as_dtype(x.dtype) not in CUDNN_DTYPES:
        return None
    common = {
        "kernel": cell.kernel,
        "recurrent_kernel": cell.recurrent_kernel,
        "bias": cell.bias,
        "activation": tf.tanh,
        "recurrent_activation": tf.sigmoid,
        "return_sequences": return_sequences,
        "go_backwards": go_backwards,
    }
    try:
        if type(cell) is LSTMCell:
            return _keras_rnn.lstm(x, initial_state[0], initial_state[1], None, **common)
        return _keras_rnn.gru(x, initial_state[0], None, reset_after=True, **common)
    except NotImplementedError:
        return None
