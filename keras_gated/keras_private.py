"""The one door to Keras's private modules (`keras.src`): every private name we use, and why.

Each import below has no public equivalent in the Keras versions we support (setup.cfg).
A Keras release that moves one fails here, at import, with the name that is missing,
rather than switching anything off silently.
"""

import importlib

# `keras.layers.RNN` pre-creates the dropout masks of a cell that is a `DropoutRNNCell`
# (once per sequence, before the time loop, so the loop stays stateless on JAX) and clears
# them after the call; `StackedRNNCells` does so for each cell. A cell that wants per-sequence
# (variational) masks inside `keras.layers.RNN` has to be one: there is no public hook.
DropoutRNNCell = importlib.import_module("keras.src.layers.rnn.dropout_rnn_cell").DropoutRNNCell


def tensorflow_rnn():
    """`keras.src.backend.tensorflow.rnn`, whose `lstm`/`gru` run cuDNN's fused kernels on a
    GPU (the public `keras.layers.LSTM` hides them behind its own cell). TensorFlow only.
    The package re-exports a function named `rnn`, so `from ... import rnn` may not give
    the module."""
    return importlib.import_module("keras.src.backend.tensorflow.rnn")
