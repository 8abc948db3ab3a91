"""Train a language model into a run directory, resume it, and load it back.

A run directory holds:
    config.json              the `TrainConfig`
    vocab.json               the tokenizer and its vocabulary
    model.keras              the best model (stateless, loads with safe_mode=True)
    checkpoint/              resumable training state, rewritten atomically each epoch
    log.csv, tensorboard/    per-epoch metrics
"""

import contextlib
import dataclasses
import json
import os
import shutil

import keras
import numpy as np

from keras_gated.data import (
    CharTokenizer,
    WordTokenizer,
    bptt_batches,
    load_corpus,
    load_tokenizer,
)
from keras_gated.diagnostics.grad_norm_logger import GradientNormLogger
from keras_gated.layers import cudnn
from keras_gated.models import LanguageModel
from keras_gated.training import callbacks as cbs
from keras_gated.training.config import TrainConfig
from keras_gated.training.perplexity import Perplexity, perplexity


class RunExistsError(FileExistsError):
    pass


def stateless_copy(model):
    """The same weights in a non-stateful `LanguageModel` (any batch size)."""
    config = {**model.get_config(), "stateful": False}
    twin = LanguageModel.from_config(config)
    twin(np.zeros((1, 1), dtype="int32"))
    twin.set_weights(model.get_weights())
    return twin


def _tokenizer(config):
    if config.level == "char":
        return CharTokenizer()
    return WordTokenizer(max_vocab=config.max_vocab)


def prepare_data(config, verbose=True):
    """Corpus -> fitted tokenizer and the train/valid/test id streams."""
    corpus = load_corpus(config.corpus, seed=config.seed, verbose=verbose)
    tokenizer = _tokenizer(config).fit(corpus.text("train"))
    ids = {split: tokenizer.encode(corpus.text(split)) for split in ("train", "valid", "test")}
    return tokenizer, ids


def build_model(config, vocab_size, stateful=True):
    model = LanguageModel(
        vocab_size, cell=config.cell, embed_dim=config.embed_dim, units=config.units,
        num_layers=config.layers, dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout, embed_dropout=config.embed_dropout,
        tie_weights=config.tie_weights, stateful=stateful, seed=config.seed,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
        jit_compile=uses_xla(config),
    )
    return model


def uses_xla(config):
    """Whether the training step is compiled by XLA: `config.xla`, for our cells on one CPU.

    Keras's "auto" leaves XLA off on CPU, where it slows Keras's own recurrent layers
    (`keras-lstm`); our layers' bounded loops gain from it (BENCHMARKS.md: `ours` vs
    `ours-noxla`). XLA cannot compile a step whose variables sit on several devices, nor the
    cuDNN kernels our layers use on a GPU (layers/cudnn.py).
    """
    return (config.xla and config.cell != "keras-lstm" and config.strategy == "none"
            and not cudnn.gpu_available())


def distribution_strategy(name):
    """The `tf.distribute` strategy for `TrainConfig.strategy` (None for "none").

    "mirrored": data parallel over the local GPUs (or logical CPU devices); "multiworker":
    several machines, each started with its own TF_CONFIG (see the README). The batch size
    is the global batch, split evenly over replicas.
    """
    import tensorflow as tf

    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def train(config, out, overwrite=False, verbose=1):
    """Trains `config` into the run directory `out`, resuming if it holds a checkpoint.

    Returns a dict of results: valid and test perplexity, epochs run, and a stop message.
    """
    config.validate()
    keras.utils.set_random_seed(config.seed)
    ckpt = os.path.join(out, "checkpoint")
    progress_path = os.path.join(ckpt, "progress.json")
    if overwrite:
        _clear_run(out)
    resuming = os.path.exists(progress_path)
    if os.path.exists(os.path.join(out, "config.json")) and not resuming and not overwrite:
        raise RunExistsError(f"run directory {out!r} already holds a run: pass overwrite/--force")
    os.makedirs(out, exist_ok=True)
    if resuming:
        saved = json.load(open(os.path.join(out, "config.json")))
        now = dataclasses.asdict(config)
        defaults = dataclasses.asdict(TrainConfig())  # fields an older run did not record
        changed = sorted(k for k in now if k != "epochs" and saved.get(k, defaults[k]) != now[k])
        if changed:
            raise ValueError(
                f"{out!r} holds a run with another config ({', '.join(changed)} differ): "
                "resume with the same settings (only --epochs may grow), or use --force"
            )
    tokenizer, ids = prepare_data(config, verbose=bool(verbose))
    for split in ("train", "valid"):
        if len(ids[split]) < config.batch_size * (config.seq_len + 1):
            raise ValueError(
                f"the {split} split has {len(ids[split])} tokens, fewer than "
                f"batch_size x (seq_len + 1) = {config.batch_size * (config.seq_len + 1)}"
            )
    tokenizer.save(os.path.join(out, "vocab.json"))
    cbs.write_json(os.path.join(out, "config.json"), dataclasses.asdict(config))

    train_ds = bptt_batches(ids["train"], config.batch_size, config.seq_len)
    valid_ds = bptt_batches(ids["valid"], config.batch_size, config.seq_len)
    if resuming:
        done = json.load(open(progress_path))["epochs_done"]
        for name in ("log.csv", "grad_norm.csv"):
            trim_log(os.path.join(out, name), done)
    strategy = distribution_strategy(config.strategy)
    with strategy.scope() if strategy else contextlib.nullcontext():
        if resuming:
            progress = json.load(open(progress_path))
            model = load_model_file(os.path.join(ckpt, "train_state.keras"))
            model.jit_compile = uses_xla(config)  # this machine's choice (a GPU: no XLA)
            for variable, value in zip(cbs.seed_states(model), progress["seed_states"]):
                variable.assign(value)
        else:
            progress = {"epochs_done": 0, "best": float("inf"), "callbacks": {}}
            model = build_model(config, tokenizer.vocab_size, stateful=config.carry_state)

    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor="val_perplexity", mode="min", factor=config.lr_decay, patience=0, verbose=verbose
    )
    early = keras.callbacks.EarlyStopping(monitor="val_perplexity", mode="min", patience=config.patience)
    nonfinite = cbs.StopOnNonFinite()
    checkpoint = cbs.RunCheckpoint(out, stateless_copy, watched=(reduce_lr, early))
    checkpoint.best = progress["best"]
    callbacks = [
        cbs.ResetStates(), nonfinite, reduce_lr, early,
        cbs.RestoreCounters((reduce_lr, early), progress["callbacks"]), checkpoint,
        keras.callbacks.CSVLogger(os.path.join(out, "log.csv"), append=resuming),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False),
        GradientNormLogger(out, train_ds, num_batches=2),
    ]
    if config.steps_per_epoch:
        # Epochs are slices of one endless pass; a resumed run skips what was already seen.
        train_ds = train_ds.repeat().skip(progress["epochs_done"] * config.steps_per_epoch)
    history = model.fit(
        train_ds, validation_data=valid_ds, epochs=config.epochs,
        initial_epoch=progress["epochs_done"], callbacks=callbacks, verbose=verbose,
        steps_per_epoch=config.steps_per_epoch or None, shuffle=False,
    )
    if not os.path.exists(os.path.join(out, "model.keras")):
        raise RuntimeError(nonfinite.message or "training ended before one complete epoch")
    best = load_run(out)[0]
    results = {
        "valid_perplexity": perplexity(best, ids["valid"], config.batch_size, config.seq_len)[0],
        "test_perplexity": perplexity(best, ids["test"], config.batch_size, config.seq_len)[0],
        "epochs": len(history.epoch) + progress["epochs_done"],
        "stopped": nonfinite.message,
    }
    cbs.write_json(os.path.join(out, "results.json"), results)
    return results


def trim_log(path, epochs_done):
    """Keeps the header and the complete rows of epochs < `epochs_done` of a per-epoch CSV.

    A run killed mid-epoch (or mid-line) may have logged past its last checkpoint; the
    resumed run logs those epochs again. Rewritten atomically.
    """
    import csv

    if not os.path.exists(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    col, width = rows[0].index("epoch"), len(rows[0])
    keep = [r for r in rows[1:] if len(r) == width and r[col].isdigit() and int(r[col]) < epochs_done]

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([rows[0], *keep])

    cbs.atomic_write(path, write)


def load_model_file(path):
    """`keras.models.load_model(path, safe_mode=True)` with a clear error for a damaged file."""
    import zipfile

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is truncated or not a .keras file (no zip archive)")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise ValueError(f"{path} is truncated or not a .keras file ({error})") from None


RUN_FILES = ("config.json", "vocab.json", "model.keras", "log.csv", "grad_norm.csv", "results.json")


def _clear_run(out):
    """Removes what a previous run left in `out` (only the files a run writes)."""
    for name in RUN_FILES:
        if os.path.isfile(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    for folder in ("checkpoint", "tensorboard"):
        shutil.rmtree(os.path.join(out, folder), ignore_errors=True)


def load_run(run_dir):
    """Loads (model, tokenizer, config) from a run directory, checking they belong together."""
    for name in ("model.keras", "vocab.json", "config.json"):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise FileNotFoundError(f"{run_dir!r} is not a complete run: {name} is missing")
    model = load_model_file(os.path.join(run_dir, "model.keras"))
    tokenizer = load_tokenizer(os.path.join(run_dir, "vocab.json"))
    try:
        config = TrainConfig(**json.load(open(os.path.join(run_dir, "config.json"))))
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{run_dir}/config.json is not a keras-gated config: {error}") from None
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"vocab.json has {tokenizer.vocab_size} tokens but the model expects "
            f"{model.vocab_size}: the vocabulary does not match the model"
        )
    return model, tokenizer, config
