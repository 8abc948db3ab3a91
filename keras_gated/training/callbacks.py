"""Callbacks for BPTT training: state resets, atomic checkpoints with resume, non-finite stops,
counters and progress kept across `fit` calls of one epoch each."""

import contextlib
import math
import os

import keras

from keras_gated.atomic import atomic_write
from keras_gated.training import run_dir
from keras_gated.training.run_dir import write_json


class ResetStates(keras.callbacks.Callback):
    """Zeroes a stateful model's carried state at each epoch start and before each evaluation."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_states()

    def on_test_begin(self, logs=None):
        self.model.reset_states()


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training when the loss becomes NaN or Inf, naming the epoch and step."""

    def __init__(self):
        super().__init__()
        self.message = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            epoch = getattr(self, "_epoch", 0)
            self.message = (
                f"non-finite loss ({loss}) at epoch {epoch + 1}, step {batch + 1}: training "
                "stopped; the last good checkpoint is kept"
            )
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch, atomically writes the resumable training state of a run directory.

    Writes `run_dir.TRAIN_STATE` (the raw weights) and `run_dir.PROGRESS` each epoch, and
    `run_dir.MODEL`, the best model so far (by `monitor`, stateless), each replaced whole,
    never half-written. With `averaging` (a `WeightAveraging`, before this callback), the best
    model holds the averaged weights once averaging has started, and the checkpoint its
    state and `run_dir.AVERAGE`.
    """

    def __init__(self, run, make_stateless, watched=(), monitor="val_perplexity",
                 averaging=None):
        super().__init__()
        self.run, self.make_stateless, self.watched = run, make_stateless, watched
        self.monitor, self.best, self.averaging = monitor, math.inf, averaging
        os.makedirs(os.path.join(run, run_dir.CHECKPOINT), exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not all(math.isfinite(float(v)) for v in logs.values()):
            return  # keep the last good checkpoint
        value = float(logs.get(self.monitor, logs.get("perplexity", math.inf)))
        if value < self.best:
            self.best = value
            with self.averaging.averaged() if self.averaging else contextlib.nullcontext():
                stateless = self.make_stateless(self.model)
            atomic_write(os.path.join(self.run, run_dir.MODEL), stateless.save)
        atomic_write(os.path.join(self.run, run_dir.TRAIN_STATE), self.model.save)
        progress = {
            "epochs_done": epoch + 1,
            "best": self.best,
            "seed_states": [v.numpy().tolist() for v in seed_states(self.model)],
            "callbacks": {type(cb).__name__: _cb_state(cb) for cb in self.watched},
        }
        if self.averaging:
            if self.averaging.count:
                atomic_write(os.path.join(self.run, run_dir.AVERAGE),
                             self.averaging.save_averages)
            progress["averaging"] = self.averaging.state()
        write_json(os.path.join(self.run, run_dir.PROGRESS), progress)


def seed_states(model):
    """The dropout RNG counters, which `.keras` files do not store but exact resume needs."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


_CB_FIELDS = ("best", "wait", "cooldown_counter", "stopped_epoch")


def _cb_state(cb):
    return {k: float(getattr(cb, k)) for k in _CB_FIELDS if getattr(cb, k, None) is not None}


class RestoreCounters(keras.callbacks.Callback):
    """Gives `ReduceLROnPlateau`/`EarlyStopping` back their counters at each `fit`'s start:
    a checkpoint's on resume, the previous `fit`'s after that.

    Must come after them in the callback list: their `on_train_begin` resets the counters.
    """

    def __init__(self, callbacks, saved):
        super().__init__()
        self.callbacks, self.saved = callbacks, saved

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            for key, value in self.saved.get(type(cb).__name__, {}).items():
                setattr(cb, key, value)

    def on_train_end(self, logs=None):
        self.saved = {type(cb).__name__: _cb_state(cb) for cb in self.callbacks}


class RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, numbering epochs out of the run's `epochs`, although each `fit`
    runs one."""

    def __init__(self, epochs):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs})
