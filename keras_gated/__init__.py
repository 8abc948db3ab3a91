"""keras-gated: recurrent layers written from the textbook equations, for Keras 3."""

__version__ = "0.1.0"

from keras_gated.cells import GRUCell, LSTMCell, SimpleRNNCell
from keras_gated.layers import GRU, LSTM, SimpleRNN, VariationalDropout

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "SimpleRNN",
    "SimpleRNNCell",
    "VariationalDropout",
]
