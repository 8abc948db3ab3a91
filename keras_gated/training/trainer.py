"""`train`: fits a `TrainConfig` into a run directory, resuming it where it stopped.

The run directory's files are `training.run_dir`'s; the data, model and device choices come
from `training.data`, `training.build` and `training.devices`, each epoch's windows from
`training.windows` and weight averaging from `training.averaging`. A fresh run fits the
tokenizer on the training split and saves it; a resumed run reads the saved one and refuses a
corpus that changed since it started.

Each epoch is one `model.fit` call on that epoch's windows (Keras fixes an epoch's batch count
for a whole `fit`, and variable windows change it); `RestoreCounters` carries the learning-rate
and early-stopping counters from one call to the next.
"""

import contextlib
import os

import keras

from keras_gated.atomic import write_json
from keras_gated.data import bptt_batches
from keras_gated.training import callbacks as cbs
from keras_gated.training import generations, run_dir
from keras_gated.training.averaging import WeightAveraging
from keras_gated.training.build import build_model, stateless_copy
from keras_gated.training.data import fitting_batch_size, load_split_ids
from keras_gated.training.devices import distribution_strategy, fit_scope, uses_xla
from keras_gated.training.evaluate import split_perplexities
from keras_gated.training.grad_norm import GradientNormLogger
from keras_gated.training.uniform_check import WarnWorseThanUniform
from keras_gated.training.windows import LengthScaledLearningRate
from keras_gated.training.workers import (
    check_same_checkpoint,
    distribute,
    lost_workers,
    per_replica_batch,
    replica_stream,
    replica_windows,
    workers,
    written_dir,
)


def train(config, out, overwrite=False, verbose=1):
    """Trains `config` into the run directory `out`, resuming if it holds a checkpoint.

    With several workers (`--strategy multiworker`) every worker runs this with the same
    arguments; only the chief writes `out` (`training.workers`). With `overwrite`, the run
    already in `out` is removed only once the corpus, tokenizer, config and model have loaded:
    a command refused before then leaves it as it was.

    Returns a dict of results: valid and test perplexity, epochs run, and a stop message.
    """
    config.validate()
    # First, before any TensorFlow op: MultiWorkerMirroredStrategy configures the collective
    # ops at program start-up, and so refuses a context that is already initialised.
    strategy = distribution_strategy(config.strategy)
    chief = workers(strategy)[0] == 0
    keras.utils.set_random_seed(config.seed)
    if chief:  # checks only: --force clears the old run once everything below has loaded
        resuming = run_dir.check_start(out, config, overwrite)
    else:  # reads the chief's checkpoint, writes nothing there
        resuming = not overwrite and run_dir.has_checkpoint(out)
    # the newest usable checkpoint generation, or a warning and the one before it
    resumed = generations.last_good(out) if resuming else None
    if resuming:
        tokenizer, _, fingerprint = run_dir.load_tokenizer_and_config(out)
        tokenizer, ids, _ = load_split_ids(config, tokenizer, fingerprint, verbose=bool(verbose))
    else:
        tokenizer, ids, fingerprint = load_split_ids(config, verbose=bool(verbose))
    batch_size = fitting_batch_size(ids, config.batch_size, config.seq_len, verbose=bool(verbose))
    b = per_replica_batch(strategy, batch_size)
    progress = resumed.progress if resumed else dict(generations.FRESH)
    check_same_checkpoint(strategy, out, progress["epochs_done"])
    windows = replica_windows(
        strategy,
        ids["train"],
        batch_size,
        config.seq_len,
        config.variable_bptt,
        config.seed,
        config.steps_per_epoch,
    )
    valid = replica_windows(strategy, ids["valid"], batch_size, config.seq_len, False, 0, 0)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = _model(config, out, resumed, tokenizer, b, strategy)
    # the gradient norm is logged on the rows the model's batch holds (replica 0's)
    logged = bptt_batches(
        replica_stream(ids["train"], batch_size, 0, batch_size // b), b, config.seq_len
    )
    if chief:  # the corpus, tokenizer, config and model are good: only now is a run replaced
        run_dir.prepare(out, overwrite)
    with written_dir(out, chief) as written:
        if not resuming:
            tokenizer.save(os.path.join(written, run_dir.VOCAB))
            run_dir.save_config(written, config, fingerprint)
        elif chief:
            run_dir.trim_logs(out, progress["epochs_done"])
        epochs_run, stopped = _fit(
            model,
            config,
            strategy,
            windows,
            valid,
            logged,
            tokenizer,
            resumed,
            written,
            progress,
            verbose,
        )
        if not os.path.exists(os.path.join(written, run_dir.MODEL)):
            raise RuntimeError(stopped or "training ended before one complete epoch")
        best = run_dir.load_model_file(os.path.join(written, run_dir.MODEL))
        scores = split_perplexities(best, ids, config, strategy=strategy)
        results = {
            "valid_perplexity": scores["valid"][0],
            "test_perplexity": scores["test"][0],
            "epochs": epochs_run + progress["epochs_done"],
            "stopped": stopped,
        }
        write_json(os.path.join(written, run_dir.RESULTS), results)
    return results


def _model(config, out, resumed, tokenizer, batch_size, strategy):
    """The compiled model: the checkpoint generation `resumed`'s (None: a new one for batches
    of `batch_size`, each replica's)."""
    if resumed is None:
        return build_model(
            config, tokenizer.vocab_size, stateful=config.carry_state, batch_size=batch_size
        )
    model = resumed.model
    if strategy is not None:  # its variables must be made in the strategy's scope
        model = run_dir.load_model_file(os.path.join(out, resumed.folder, run_dir.STATE_FILE))
    if model.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{run_dir.VOCAB} has {tokenizer.vocab_size} tokens but the "
            f"checkpoint's model expects {model.vocab_size}"
        )
    if keras.backend.backend() == "tensorflow":  # elsewhere the file keeps Keras's
        model.jit_compile = uses_xla(config)  # this machine's choice (a GPU: no XLA)
    for variable, value in zip(cbs.seed_states(model), resumed.progress["seed_states"]):
        variable.assign(value)
    return model


def _fit(
    model, config, strategy, windows, valid, logged, tokenizer, resumed, written, progress, verbose
):
    """Fits the remaining epochs, one `fit` each, writing into `written`; returns (epochs
    run, the non-finite stop message or None). `resumed`: the checkpoint generation a resumed
    run starts from (None for a fresh run)."""
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor="val_perplexity", mode="min", factor=config.lr_decay, patience=0, verbose=verbose
    )
    early = keras.callbacks.EarlyStopping(
        monitor="val_perplexity", mode="min", patience=config.patience
    )
    nonfinite = cbs.StopOnNonFinite()
    averaging = _averaging(config, resumed, progress)
    checkpoint = cbs.RunCheckpoint(
        written,
        stateless_copy,
        watched=(reduce_lr, early),
        averaging=averaging,
        resumed_from=resumed.folder if resumed else run_dir.CHECKPOINT,
    )
    checkpoint.best = progress["best"]
    log = keras.callbacks.CSVLogger(os.path.join(written, run_dir.LOG), append=bool(resumed))
    callbacks = [
        cbs.ResetStates(),
        nonfinite,
        WarnWorseThanUniform(tokenizer.vocab_size),
        *([LengthScaledLearningRate(windows[0])] if config.variable_bptt else []),
        *([averaging] if averaging else []),
        reduce_lr,
        early,
        cbs.RestoreCounters((reduce_lr, early), progress["callbacks"]),
        checkpoint,
        log,
        keras.callbacks.TensorBoard(os.path.join(written, run_dir.TENSORBOARD), write_graph=False),
        GradientNormLogger(written, logged, num_batches=2),
        cbs.RunProgbar(config.epochs),
    ]
    valid_ds = distribute(strategy, [v.dataset(0) for v in valid])
    epochs_run = 0
    with fit_scope(strategy, model, windows[0].dataset(0)), lost_workers(strategy):
        for epoch in range(progress["epochs_done"], config.epochs):
            history = model.fit(
                distribute(strategy, [w.dataset(epoch) for w in windows]),
                validation_data=valid_ds,
                initial_epoch=epoch,
                epochs=epoch + 1,
                # a distributed dataset does not tell Keras its length
                steps_per_epoch=len(windows[0].lengths(epoch)),
                validation_steps=len(valid[0].lengths(0)),
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,
            )
            epochs_run += len(history.epoch)
            log.append = True  # the next epochs add rows
            if model.stop_training:
                break
    return epochs_run, nonfinite.message


def _averaging(config, resumed, progress):
    """The run's `WeightAveraging` (None without `config.nonmono`), resumed from `progress`
    and the averages of the checkpoint generation `resumed`."""
    if not config.nonmono:
        return None
    return WeightAveraging(
        config.nonmono,
        state=progress.get("averaging"),
        averages=resumed.averages if resumed else None,
    )
