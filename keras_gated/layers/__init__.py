"""Sequence layers and variational dropout."""

from keras_gated.layers.recurrent import Recurrent
from keras_gated.layers.sequence import GRU, LSTM, SimpleRNN
from keras_gated.layers.variational_dropout import VariationalDropout

__all__ = ["GRU", "LSTM", "Recurrent", "SimpleRNN", "VariationalDropout"]
