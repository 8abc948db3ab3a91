"""Callbacks for BPTT training: state resets, checkpoint generations, non-finite stops,
counters and progress kept across `fit` calls of one epoch each."""

import contextlib
import math
import os

import keras

from keras_gated.atomic import atomic_write
from keras_gated.keras_private import callback_counters, restore_callback_counters
from keras_gated.training import run_dir
from keras_gated.training.generations import optimizer_steps, seed_states, write_generation


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
    """After each epoch, writes the run directory's next checkpoint generation
    (`training.generations`), keeping the one before it.

    A generation holds `run_dir.STATE_FILE` (the raw weights with the optimizer state),
    `run_dir.AVERAGE_FILE` and `run_dir.PROGRESS_FILE`. `run_dir.MODEL`, the best model so far
    (by `monitor`, stateless), is replaced before the generation that records its value. Every
    file is replaced whole, never half-written. With `averaging` (a `WeightAveraging`, before
    this callback), the best model holds the averaged weights once averaging has started, and
    the generation its state and averages. `resumed_from`: the folder of the generation the
    run resumed from (`run_dir.GENERATIONS`).
    """

    def __init__(
        self,
        run,
        make_stateless,
        watched=(),
        monitor="val_perplexity",
        averaging=None,
        resumed_from=run_dir.CHECKPOINT,
    ):
        super().__init__()
        self.run, self.make_stateless, self.watched = run, make_stateless, watched
        self.monitor, self.best, self.averaging = monitor, math.inf, averaging
        self.resumed_from = resumed_from

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not all(math.isfinite(float(v)) for v in logs.values()):
            return  # keep the last good checkpoint
        value = float(logs.get(self.monitor, logs.get("perplexity", math.inf)))
        if value < self.best:
            with self.averaging.averaged() if self.averaging else contextlib.nullcontext():
                stateless = self.make_stateless(self.model)
            atomic_write(os.path.join(self.run, run_dir.MODEL), stateless.save)
            self.best = value
        progress = {
            "epochs_done": epoch + 1,
            "steps": optimizer_steps(self.model),
            "best": self.best,
            "seed_states": [v.numpy().tolist() for v in seed_states(self.model)],
            "callbacks": {type(cb).__name__: callback_counters(cb) for cb in self.watched},
        }
        files = [(run_dir.STATE_FILE, self.model.save)]
        if self.averaging:
            if self.averaging.count:
                files.append((run_dir.AVERAGE_FILE, self.averaging.save_averages))
            progress["averaging"] = self.averaging.state()
        files.append((run_dir.PROGRESS_FILE, lambda path: run_dir.write_json_file(path, progress)))
        write_generation(self.run, files, self.resumed_from)
        self.resumed_from = run_dir.CHECKPOINT


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
            restore_callback_counters(cb, self.saved.get(type(cb).__name__, {}))

    def on_train_end(self, logs=None):
        self.saved = {type(cb).__name__: callback_counters(cb) for cb in self.callbacks}


class RunProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, numbering epochs out of the run's `epochs`, although each `fit`
    runs one."""

    def __init__(self, epochs):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs})
