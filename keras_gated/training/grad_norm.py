"""The global gradient norm before clipping, logged once per epoch into a run directory.

    ||g|| = sqrt(sum over trainable variables w of ||d loss/d w||^2)

is what `global_clipnorm` compares with the clip value: above it, every gradient is scaled
by clipnorm / ||g||. Sparse (IndexedSlices) gradients are made dense first, so a token that
repeats in a batch counts once with its summed gradient (Keras's own clipping measures the
un-summed rows instead, which can differ).
"""

import csv
import itertools
import os

import keras
import numpy as np

from keras_gated.layers.carried_states import kept_states, stateful_layers
from keras_gated.training.autodiff import gradients
from keras_gated.training.run_dir import GRAD_NORM  # columns: epoch, grad_norm, grad_norm_max


def global_gradient_norm(model, inputs, targets, loss_fn=None):
    """||d loss/d w|| over all trainable variables for one batch, at inference (no dropout).

    Args:
        model: a Keras model.
        inputs, targets: one batch.
        loss_fn: loss(targets, predictions), averaged if it returns per-example values;
            default: the model's compiled loss plus its regularisation losses
            (`model.compute_loss`).

    Returns:
        float, the global L2 norm.
    """

    def loss():
        predictions = model(inputs, training=False)
        if loss_fn is None:
            return model.compute_loss(x=inputs, y=targets, y_pred=predictions, training=False)
        return keras.ops.mean(loss_fn(targets, predictions))

    grads = gradients(loss, model.trainable_variables)
    return float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads)))


class GradientNormLogger(keras.callbacks.Callback):
    """After each epoch, appends the global gradient norm before clipping to `grad_norm.csv`.

    The norm is measured on the same `num_batches` batches every epoch, without dropout, so
    epochs compare like for like (the optimizer's own gradients add dropout noise). A stateful
    model's carried states are saved before and restored after, so training is unaffected.
    Rows are appended, so a resumed run continues the file.

    Args:
        run_dir: the run directory; the file is `run_dir/grad_norm.csv`.
        data: batches (inputs, targets), e.g. a `tf.data.Dataset` of training batches; the
            first `num_batches` are kept.
        num_batches: how many batches the norm is averaged over. Default 4.
        loss_fn: loss(targets, predictions); default: the model's compiled loss.
    """

    def __init__(self, run_dir, data, num_batches=4, loss_fn=None):
        super().__init__()
        if num_batches <= 0:
            raise ValueError(f"`num_batches` must be > 0, got {num_batches}")
        self.path = os.path.join(run_dir, GRAD_NORM)
        self.batches = [
            (np.asarray(x), np.asarray(y)) for x, y in itertools.islice(iter(data), num_batches)
        ]
        if not self.batches:
            raise ValueError("`data` holds no batches")
        self.loss_fn = loss_fn

    def measure(self):
        """(mean, max) of the global gradient norm over the kept batches."""
        with kept_states(stateful_layers(self.model)):
            norms = [global_gradient_norm(self.model, x, y, self.loss_fn) for x, y in self.batches]
        return float(np.mean(norms)), float(np.max(norms))

    def on_epoch_end(self, epoch, logs=None):
        mean, largest = self.measure()
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "grad_norm", "grad_norm_max"])
            writer.writerow([epoch, repr(mean), repr(largest)])
