"""The adding problem (Hochreiter & Schmidhuber 1997, section 5.4; in the form of Le et al. 2015):
add the two marked numbers of a sequence of T.

Each step reads x_t = (v_t, m_t) (B, T, 2): a value v_t ~ U[0, 1] and a marker m_t in {0, 1}
that is 1 at exactly two steps, one drawn in the first half [0, T/2) and one in the second
[T/2, T). The target is y = sum_t m_t v_t; the model reads it all and predicts y from its last
state:

    h_t = rnn(x_t, h_{t-1})             one recurrent layer, width U
    y^ = h_T P + b                      readout (U, 1); loss = mean (y^ - y)^2

The first marked value lies between T/2 and T - 1 steps back. Predicting the mean, y^ = 1,
scores MSE = Var(v_a + v_b) = 2/12 = 1/6 (`BASELINE_MSE`): a model that cannot carry the
first value that far stays there.

Unlike the recall task, the input cannot be silenced where it does not matter: a value counts
or not by its marker, so carrying one takes a multiplicative (gated) decision per step, not an
embedding that maps distractors to zero.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_gated.diagnostics.gradient_flow import layer_gradient_norms
from keras_gated.diagnostics.recall_task import CELLS

BASELINE_MSE = 1.0 / 6.0  # MSE of predicting E[y] = 1


def adding_batch(rng, size, seq_len):
    """`size` sequences: x (size, seq_len, 2) float32 (value, marker) and y (size, 1) float32.

    Args:
        rng: a `numpy.random.Generator`.
        seq_len: T (>= 2).
    """
    if seq_len < 2:
        raise ValueError(f"need seq_len >= 2, got {seq_len}")
    values = rng.uniform(0.0, 1.0, size=(size, seq_len))
    markers = np.zeros((size, seq_len))
    rows = np.arange(size)
    markers[rows, rng.integers(0, seq_len // 2, size=size)] = 1.0
    markers[rows, rng.integers(seq_len // 2, seq_len, size=size)] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = np.sum(values * markers, axis=1, keepdims=True).astype("float32")
    return x, y


def adding_model(cell, seq_len, units, learning_rate=1e-2, clipnorm=1.0, **cell_options):
    """One `cell` layer ("rnn", "lstm" or "gru") -> linear readout, compiled with Adam and MSE.

    The layers are named "rnn" and "readout"; `cell_options` go to the recurrent layer.
    """
    if cell not in CELLS:
        raise ValueError(f"`cell` must be one of {sorted(CELLS)}, got {cell!r}")
    model = keras.Sequential(
        [
            keras.Input((seq_len, 2)),
            CELLS[cell](units, name="rnn", **cell_options),
            keras.layers.Dense(1, name="readout"),
        ],
        name=f"adding_{cell}",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm), loss="mse"
    )
    return model


def adding_mse(model, x, y):
    """Mean squared error of the model on (x, y), computed through `model`'s layers."""
    return float(tf.reduce_mean(tf.square(model(x, training=False) - y)))


def adding_gradient_norms(model, x, y):
    """||d loss/d s_t|| for each step of the model's recurrent layer: dict "h" (, "c") -> (T,)."""
    readout, targets = model.get_layer("readout"), tf.convert_to_tensor(y)

    def loss_fn(outputs):
        return tf.reduce_mean(tf.square(readout(outputs[:, -1]) - targets))

    return layer_gradient_norms(model.get_layer("rnn"), x, loss_fn)
