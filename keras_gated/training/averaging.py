"""Non-monotonically triggered weight averaging (NT-ASGD; Merity et al. 2017, section 3).

With v_1, v_2, ... the validation perplexities of the evaluations before averaging starts,
averaging starts after evaluation k when

    k > n + 1   and   v_k > min(v_1, ..., v_{k-n-1})                      (1)

(AWD-LSTM's `val_loss > min(best_val_loss[:-nonmono])`, n = `nonmono`, 5 there): this
evaluation is worse than the best one before the last n. From then on, after each training
step s = 1, 2, ...,

    w_avg = (1 / s) * (w_1 + ... + w_s)                                   (2)

the uniform mean of the trainable weights w_s after every step since the start, kept as a
running mean w_avg += (w_s - w_avg) / s. Validation, the best-model file (and so the test
perplexity and the export) use w_avg; training continues from w_s.

AWD-LSTM switches SGD to ASGD, whose iterates it averages; here the trainer's optimizer
(Adam) keeps stepping and its iterates are averaged (Polyak averaging, as stochastic weight
averaging does). Keras's `use_ema=True` is not (2): it keeps w_ema = m w_ema + (1 - m) w_s
from the first step on, an exponential window of about 1 / (1 - m) recent steps with a
momentum m to choose, where (2) weighs every step since the plateau alike and starts there.
"""

import contextlib
import math

import keras
import numpy as np

from keras_gated import checks

MONITOR = "val_perplexity"  # the log entry holding v_k


def should_start(history, value, nonmono):
    """Equation (1): whether averaging starts after an evaluation of `value`.

    Args:
        history: the earlier evaluations v_1 .. v_{k-1}.
        value: this evaluation v_k.
        nonmono: n (> 0).
    """
    return len(history) > nonmono and value > min(history[:-nonmono])


class WeightAveraging(keras.callbacks.Callback):
    """Averages the weights once validation stalls; evaluates and saves with the average.

    The average swaps into the model for each evaluation (`on_test_begin`/`on_test_end`)
    and inside `averaged()`; the raw weights are back for training.

    Args:
        nonmono: n of equation (1) (> 0).
        state: `state()` of a checkpoint to resume from. Default None: a fresh start.
        averages: `averages()` of that checkpoint, (list of arrays, one per trainable
            weight) when its count is > 0.
    """

    def __init__(self, nonmono, state=None, averages=None):
        super().__init__()
        self.nonmono = checks.positive_int("nonmono", nonmono)
        state = state or {"history": [], "started": False, "count": 0}
        self.history, self.started = list(state["history"]), bool(state["started"])
        self.count = int(state["count"])
        if self.count and averages is None:
            raise ValueError(f"a checkpoint that averaged {self.count} steps needs its averages")
        self._restored, self._average, self._raw = averages, None, None

    def on_train_batch_end(self, batch, logs=None):
        if not self.started:
            return
        self.count += 1
        rate = 1.0 / self.count
        for average, weight in zip(self._variables(), self.model.trainable_variables):
            average.assign(average + (keras.ops.convert_to_tensor(weight) - average) * rate)

    def _variables(self):
        """w_avg as variables, made on first use (once the model is built)."""
        if self._average is None:
            weights = self.model.trainable_variables
            start = self._restored or [np.zeros(w.shape, w.dtype) for w in weights]
            self._average = [keras.Variable(value, trainable=False) for value in start]
        return self._average

    def on_test_begin(self, logs=None):
        self._swap_in()

    def on_test_end(self, logs=None):
        self._swap_out()

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get(MONITOR, math.nan))
        if self.started or not math.isfinite(value):
            return
        self.started = should_start(self.history, value, self.nonmono)
        self.history.append(value)

    @contextlib.contextmanager
    def averaged(self):
        """Inside, the model holds w_avg (if averaging has started); after, the raw weights."""
        self._swap_in()
        try:
            yield
        finally:
            self._swap_out()

    def _swap_in(self):
        if not self.count or self._raw is not None:
            return
        weights = self.model.trainable_variables
        self._raw = [keras.ops.convert_to_numpy(w) for w in weights]
        for weight, average in zip(weights, self.averages()):
            weight.assign(average)  # a copy: JAX's step donates (deletes) the weights' buffers

    def _swap_out(self):
        if self._raw is None:
            return
        for weight, value in zip(self.model.trainable_variables, self._raw):
            weight.assign(value)
        self._raw = None

    def state(self):
        """What a checkpoint records besides `averages()`: JSON-serialisable."""
        return {"history": self.history, "started": self.started, "count": self.count}

    def averages(self):
        """w_avg as numpy arrays, one per trainable weight."""
        return [keras.ops.convert_to_numpy(average) for average in self._variables()]

    def save_averages(self, path):
        """Writes `averages()` to `path` (.npz); `load_averages` reads them back."""
        np.savez(path, *self.averages())


def load_averages(path):
    """The arrays `WeightAveraging.save_averages` wrote, in order."""
    with np.load(path) as saved:
        return [saved[f"arr_{k}"] for k in range(len(saved.files))]
