"""Recurrent cells, one per module; gate order in `gates.py`."""

from keras_gated.cells.gates import GRU_GATES, LSTM_GATES
from keras_gated.cells.gru import GRUCell
from keras_gated.cells.indrnn import IndRNNCell
from keras_gated.cells.lstm import LSTMCell
from keras_gated.cells.simple_rnn import SimpleRNNCell

__all__ = ["GRUCell", "GRU_GATES", "IndRNNCell", "LSTMCell", "LSTM_GATES", "SimpleRNNCell"]
