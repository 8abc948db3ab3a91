"""The run directory: the files it holds, their formats, atomic writes, loading and resuming.

    config.json                   the `TrainConfig` fields, plus "corpus_fingerprint" (what the
                                  model was trained on; see `training.data.corpus_fingerprint`)
    vocab.json                    the tokenizer and its vocabulary (written once, when a run starts)
    model.keras                   the best model so far, stateless (loads with safe_mode=True);
                                  its weights are the averaged ones once averaging has started
    results.json                  final validation and test perplexity
    log.csv, grad_norm.csv        one row per epoch; tensorboard/ the same for TensorBoard
    checkpoint/                   the newest checkpoint generation (epoch n):
      train_state.keras           the training model with its optimizer state
      average.npz                 the averaged weights, once weight averaging has started
                                  (`training.averaging`)
      progress.json               epochs done, optimizer steps, best value, dropout RNG and
                                  callback counters
    checkpoint.prev/              the generation before it (epoch n - 1), the same files

Every file but the appended per-epoch logs (`trim_logs` drops what follows the checkpoint)
is written whole or not at all (`atomic_write`): a full disk leaves the previous file and no
temp file. A checkpoint generation is one folder, and a folder is only ever renamed whole, so
progress.json never sits beside another generation's state (`training.generations`):

    1. write checkpoint.new/: train_state.keras, average.npz, then progress.json (each atomic)
    2. rename checkpoint.prev/ -> checkpoint.old/
    3. rename checkpoint/      -> checkpoint.prev/
    4. rename checkpoint.new/  -> checkpoint/
    5. remove checkpoint.old/

(A run that resumed from checkpoint.prev/, checkpoint/ being unusable, does 3 as checkpoint/
-> checkpoint.old/ and skips 2: the unusable generation goes, the one it resumed from stays.)
A crash at any step leaves a complete generation in checkpoint/ (before step 3 or after 4) or
checkpoint.prev/ (between 3 and 4); a full disk can only stop step 1. A resumed run takes the
newest generation that loads and agrees with its progress.json (the state's optimizer steps,
its dropout RNG counters, the averages); falling back to an older one, it prints one warning
line naming the file it could not use. model.keras is written before the generation whose
"best" it is.

Importing this module imports neither TensorFlow nor Keras; `load_run` and `load_model_file`
import Keras when called.
"""

import csv
import dataclasses
import json
import os
import shutil

from keras_gated.atomic import atomic_write, json_text, write_json
from keras_gated.data.tokenizers import load_tokenizer
from keras_gated.training.config import TrainConfig

CONFIG = "config.json"
VOCAB = "vocab.json"
MODEL = "model.keras"
RESULTS = "results.json"
LOG = "log.csv"
GRAD_NORM = "grad_norm.csv"
TENSORBOARD = "tensorboard"
CHECKPOINT = "checkpoint"  # the newest generation
CHECKPOINT_PREV = "checkpoint.prev"  # the one before it
CHECKPOINT_NEW = "checkpoint.new"  # a generation being written
CHECKPOINT_OLD = "checkpoint.old"  # a generation being removed
GENERATIONS = (CHECKPOINT, CHECKPOINT_PREV)  # newest first
STATE_FILE, PROGRESS_FILE, AVERAGE_FILE = "train_state.keras", "progress.json", "average.npz"
TRAIN_STATE = os.path.join(CHECKPOINT, STATE_FILE)
PROGRESS = os.path.join(CHECKPOINT, PROGRESS_FILE)
AVERAGE = os.path.join(CHECKPOINT, AVERAGE_FILE)
FINGERPRINT_KEY = "corpus_fingerprint"

_FILES = (CONFIG, VOCAB, MODEL, RESULTS, LOG, GRAD_NORM)  # what `clear` removes, with the folders
_FOLDERS = (CHECKPOINT, CHECKPOINT_PREV, CHECKPOINT_NEW, CHECKPOINT_OLD, TENSORBOARD)


class RunExistsError(FileExistsError):
    pass


def write_json_file(path, obj):
    """Writes `obj` as `atomic.json_text` straight to `path` (a writer for `atomic_write`)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(json_text(obj))


def read_json(path):
    """Reads a JSON file; ValueError naming the file if it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


def save_config(run, config, fingerprint):
    saved = {**dataclasses.asdict(config), FINGERPRINT_KEY: fingerprint}
    write_json(os.path.join(run, CONFIG), saved)


def load_config(run):
    """(TrainConfig, corpus fingerprint or None for a run that recorded none)."""
    saved = read_json(os.path.join(run, CONFIG))
    if not isinstance(saved, dict):
        raise ValueError(f"{run}/{CONFIG} is not a keras-gated config")
    fingerprint = saved.pop(FINGERPRINT_KEY, None)
    try:
        return TrainConfig(**saved), fingerprint
    except TypeError as error:
        raise ValueError(f"{run}/{CONFIG} is not a keras-gated config: {error}") from None


def start(run, config, overwrite=False):
    """Prepares `run` for training `config`; returns True if it resumes a checkpoint.

    Raises:
        RunExistsError: `run` holds a run without a checkpoint to resume, and not `overwrite`.
        ValueError: resuming with a config that differs in more than `epochs`.
    """
    if overwrite:
        clear(run)
    resuming = has_checkpoint(run)
    if os.path.exists(os.path.join(run, CONFIG)) and not resuming:
        raise RunExistsError(f"run directory {os.fspath(run)!r} already holds a run: pass "
                             "overwrite/--force")
    if resuming:
        check_resume(run, config)
    os.makedirs(run, exist_ok=True)
    return resuming


def check_resume(run, config):
    """Raises ValueError if `config` differs from the run's in anything but `epochs`."""
    saved = read_json(os.path.join(run, CONFIG))
    now = dataclasses.asdict(config)
    defaults = dataclasses.asdict(TrainConfig())  # fields an older run did not record
    changed = sorted(k for k in now if k != "epochs" and saved.get(k, defaults[k]) != now[k])
    if changed:
        raise ValueError(
            f"{os.fspath(run)!r} holds a run with another config ({', '.join(changed)} differ): "
            "resume with the same settings (only --epochs may grow), or use --force"
        )


def has_checkpoint(run):
    """True if `run` holds a checkpoint generation (readable or not: resuming says which)."""
    return any(os.path.exists(os.path.join(run, g, PROGRESS_FILE)) for g in GENERATIONS)


def trim_logs(run, epochs_done):
    """Keeps the header and the complete rows of epochs < `epochs_done` of the per-epoch CSVs.

    A run killed mid-epoch (or mid-line) may have logged past its last checkpoint; the
    resumed run logs those epochs again. Rewritten atomically.
    """
    for name in (LOG, GRAD_NORM):
        path = os.path.join(run, name)
        if not os.path.exists(path):
            continue
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows or "epoch" not in rows[0]:
            continue
        col, width = rows[0].index("epoch"), len(rows[0])
        keep = [r for r in rows[1:]
                if len(r) == width and r[col].isdigit() and int(r[col]) < epochs_done]

        def write(tmp, rows=[rows[0], *keep]):
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(rows)

        atomic_write(path, write)


def clear(run):
    """Removes what a previous run left in `run` (only the files a run writes)."""
    for name in _FILES:
        if os.path.isfile(os.path.join(run, name)):
            os.remove(os.path.join(run, name))
    for folder in _FOLDERS:
        shutil.rmtree(os.path.join(run, folder), ignore_errors=True)


def load_model_file(path):
    """`keras.models.load_model(path, safe_mode=True)` with a clear error for a damaged file."""
    import zipfile

    import keras

    import keras_gated.models  # noqa: F401  (registers the classes a .keras file names)
    import keras_gated.training.metrics  # noqa: F401

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is truncated or not a .keras file (no zip archive)")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise ValueError(f"{path} is truncated or not a .keras file ({error})") from None


def load_tokenizer_and_config(run):
    """(tokenizer, TrainConfig, corpus fingerprint or None): what a run needs besides weights."""
    for name in (VOCAB, CONFIG):
        if not os.path.exists(os.path.join(run, name)):
            raise FileNotFoundError(f"{os.fspath(run)!r} is not a complete run: {name} is missing")
    config, fingerprint = load_config(run)
    return load_tokenizer(os.path.join(run, VOCAB)), config, fingerprint


def load_run(run):
    """Loads (model, tokenizer, config) from a run directory, checking they belong together."""
    if not os.path.exists(os.path.join(run, MODEL)):
        raise FileNotFoundError(f"{os.fspath(run)!r} is not a complete run: {MODEL} is missing")
    tokenizer, config, _ = load_tokenizer_and_config(run)
    model = load_model_file(os.path.join(run, MODEL))
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"{VOCAB} has {tokenizer.vocab_size} tokens but the model expects "
            f"{model.vocab_size}: the vocabulary does not match the model"
        )
    return model, tokenizer, config
