"""`SimpleRNN`, `IndRNN`, `LSTM` and `GRU` sequence layers; the equations live in their cells."""

import keras

from keras_gated.cells import GRUCell, IndRNNCell, LSTMCell, SimpleRNNCell
from keras_gated.layers.recurrent import Recurrent, cell_property


@keras.saving.register_keras_serializable(package="keras_gated")
class SimpleRNN(Recurrent):
    """Vanilla RNN over (B, T, D); cell arguments as `SimpleRNNCell`, the rest as `Recurrent`."""

    cell_class = SimpleRNNCell


@keras.saving.register_keras_serializable(package="keras_gated")
class IndRNN(Recurrent):
    """Independently recurrent RNN over (B, T, D); cell arguments as `IndRNNCell` (tanh and
    |u| <= 1 by default), the rest as `Recurrent`."""

    cell_class = IndRNNCell
    recurrent_max_abs = cell_property("recurrent_max_abs")


@keras.saving.register_keras_serializable(package="keras_gated")
class LSTM(Recurrent):
    """LSTM over (B, T, D); cell arguments as `LSTMCell`, the rest as `Recurrent`. States [h, c]."""

    cell_class = LSTMCell
    takes_use_cudnn = True
    recurrent_activation = cell_property("recurrent_activation")
    unit_forget_bias = cell_property("unit_forget_bias")


@keras.saving.register_keras_serializable(package="keras_gated")
class GRU(Recurrent):
    """GRU over (B, T, D); cell arguments as `GRUCell`, the rest as `Recurrent`."""

    cell_class = GRUCell
    takes_use_cudnn = True
    recurrent_activation = cell_property("recurrent_activation")
    reset_after = cell_property("reset_after")
