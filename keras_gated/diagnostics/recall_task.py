"""A task that needs memory, for the gradient-flow demo: recall the first token.

A sequence x (B, T) starts with a label y in [0, C) and continues with T - 1 distractors
drawn uniformly from [C, V); the model reads it all and predicts y from its last state:

    e_t = E[x_t]          embedding (V, E)
    h_t = rnn(e_t, h_{t-1})                         one recurrent layer, width U
    logits = h_T P + b    readout (U, C); loss = mean cross-entropy against y

The only useful information sits T - 1 steps back, so the loss at the last step reaches it only
through the gradient carried back through time. Chance accuracy is 1 / C.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_gated.diagnostics.gradient_flow import layer_gradient_norms
from keras_gated.layers import GRU, LSTM, SimpleRNN

CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}
NUM_CLASSES = 4  # C: chance accuracy is 1 / C
VOCAB_SIZE = 8  # V: labels [0, C), distractors [C, V)


def recall_batch(rng, size, seq_len, num_classes=NUM_CLASSES, vocab_size=VOCAB_SIZE):
    """`size` sequences of the task: x (size, seq_len) int32 and labels y (size,) int32.

    Args:
        rng: a `numpy.random.Generator`.
        seq_len: T (>= 2).
        num_classes: C, labels in [0, C).
        vocab_size: V > C; distractors lie in [C, V).
    """
    if seq_len < 2 or not 0 < num_classes < vocab_size:
        raise ValueError(
            f"need seq_len >= 2 and 0 < num_classes < vocab_size, got "
            f"{seq_len}, {num_classes}, {vocab_size}"
        )
    x = rng.integers(num_classes, vocab_size, size=(size, seq_len)).astype("int32")
    y = rng.integers(0, num_classes, size=size).astype("int32")
    x[:, 0] = y
    return x, y


def recall_model(
    cell,
    seq_len,
    units,
    num_classes=NUM_CLASSES,
    vocab_size=VOCAB_SIZE,
    embed_dim=16,
    learning_rate=1e-2,
    clipnorm=1.0,
    **cell_options,
):
    """Embedding -> one `cell` layer ("rnn", "lstm" or "gru") -> readout, compiled with Adam.

    The layers are named "embedding", "rnn" and "readout"; `cell_options` go to the layer
    (e.g. activation="linear" for "rnn").
    """
    if cell not in CELLS:
        raise ValueError(f"`cell` must be one of {sorted(CELLS)}, got {cell!r}")
    model = keras.Sequential(
        [
            keras.Input((seq_len,), dtype="int32"),
            keras.layers.Embedding(vocab_size, embed_dim, name="embedding"),
            CELLS[cell](units, name="rnn", **cell_options),
            keras.layers.Dense(num_classes, name="readout"),
        ],
        name=f"recall_{cell}",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def recall_loss(model, x, y):
    """Mean cross-entropy of the model on (x, y), computed through `model`'s layers."""
    logits = model(x, training=False)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))


def recall_accuracy(model, x, y):
    """Fraction of (x, y) recalled, from one inference call."""
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def recall_gradient_norms(model, x, y):
    """||d loss/d s_t|| for each step of the model's recurrent layer: dict "h" (, "c") -> (T,)."""
    readout, rnn = model.get_layer("readout"), model.get_layer("rnn")
    labels = tf.convert_to_tensor(y, dtype="int32")

    def loss_fn(outputs):
        logits = readout(outputs[:, -1])
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    return layer_gradient_norms(rnn, model.get_layer("embedding")(x), loss_fn)


def scale_recurrent_kernel(layer, sigma):
    """Rescales a SimpleRNN's recurrent matrix U so that its largest singular value is `sigma`.

    Returns sigma_1 before scaling. With the default orthogonal U every singular value
    equals sigma_1, so afterwards ||g U^T|| = sigma ||g|| for every gradient row g.
    """
    matrix = np.asarray(layer.cell.recurrent_kernel.numpy(), dtype="float64")
    before = float(np.linalg.svd(matrix, compute_uv=False)[0])
    layer.cell.recurrent_kernel.assign((matrix * (sigma / before)).astype("float32"))
    return before
