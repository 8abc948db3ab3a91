"""Sequence layers, variational and embedding dropout."""

from keras_gated.layers.embedding_dropout import EmbeddingDropout
from keras_gated.layers.recurrent import Recurrent
from keras_gated.layers.sequence import GRU, LSTM, IndRNN, SimpleRNN
from keras_gated.layers.variational_dropout import VariationalDropout

__all__ = [
    "EmbeddingDropout",
    "GRU",
    "IndRNN",
    "LSTM",
    "Recurrent",
    "SimpleRNN",
    "VariationalDropout",
]
