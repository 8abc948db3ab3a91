"""Perplexity = exp(total negative log-likelihood / number of predicted tokens).

Exact over a whole token stream: sums are accumulated, never averaged per batch.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_gated.models.language_model import inference_fn


@keras.saving.register_keras_serializable(package="keras_gated")
class Perplexity(keras.metrics.Metric):
    """exp(sum of token NLL / token count) over everything seen since the last reset.

    update_state(y_true (B, T) int, y_pred (B, T, V) logits).
    """

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total_nll = self.add_variable(
            (), initializer="zeros", name="total_nll", dtype="float64"
        )
        self.count = self.add_variable((), initializer="zeros", name="count", dtype="float64")

    def update_state(self, y_true, y_pred, sample_weight=None):
        nll = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        self.total_nll.assign_add(ops.cast(ops.sum(nll), "float64"))
        self.count.assign_add(ops.cast(ops.size(nll), "float64"))

    def result(self):
        return ops.exp(self.total_nll / ops.maximum(self.count, 1.0))


def token_nll(logits, targets):
    """Per-token NLL (B, T) from logits (B, T, V) and targets (B, T), in float64 numpy."""
    logits = np.asarray(ops.convert_to_numpy(logits), dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    picked = np.take_along_axis(shifted, np.asarray(targets)[..., None], axis=-1)[..., 0]
    return log_z - picked


def perplexity(model, ids, batch_size=1, seq_len=64):
    """Exact perplexity of a `LanguageModel` (stateless) on a token stream.

    The stream is cut into `batch_size` contiguous rows (the remainder of fewer than
    `batch_size` tokens is dropped) and run window by window with carried state, the
    last window shorter if need be, so every token after a row's first is predicted once.

    Args:
        ids: (N,) token ids.

    Returns:
        (perplexity, number of predicted tokens).
    """
    ids = np.asarray(ids, dtype=np.int32)
    rows = len(ids) // batch_size
    if rows < 2:
        raise ValueError(f"the stream has {len(ids)} tokens: too short for batch_size={batch_size}")
    stream = ids[: rows * batch_size].reshape(batch_size, rows)
    states, total, count = None, 0.0, 0
    step = inference_fn(model)
    for start in range(0, rows - 1, seq_len):
        x = stream[:, start : min(start + seq_len, rows - 1)]
        y = stream[:, start + 1 : start + 1 + x.shape[1]]
        if states is None:
            states = model.initial_states(batch_size)
        logits, states = step(x, states)
        total += float(token_nll(logits, y).sum())
        count += y.size
    return math.exp(total / count), count
