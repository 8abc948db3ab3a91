"""Gate order, stated once. Every weight slice, bias init and export reorder derives from here.

LSTM follows Keras: kernel = [W_i | W_f | W_g | W_o] (Keras calls g "c").
GRU follows Keras and ONNX: kernel = [W_z | W_r | W_h].
"""

from keras import ops

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("z", "r", "h")


def split_gates(x, gates):
    """Splits the last axis of `x` (..., len(gates) * U) into a dict gate -> (..., U)."""
    return dict(zip(gates, ops.split(x, len(gates), axis=-1)))


def gate_slice(gate, gates, units):
    """The `slice` of a packed (..., len(gates) * U) axis that holds `gate`."""
    k = gates.index(gate)
    return slice(k * units, (k + 1) * units)
