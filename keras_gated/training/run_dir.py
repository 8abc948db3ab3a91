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
    """Reads a JSON file; ValueError naming the file if it is not JSON or nests too deeply
    for Python's parser."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(
            f"{path} is not a keras-gated file: its JSON nests deeper than Python's recursion limit"
        ) from None


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


def check_start(run, config, overwrite=False):
    """Whether training `config` into `run` resumes a checkpoint; checks, and changes nothing
    (`prepare` clears and creates `run` once the data and the model have loaded).

    Raises:
        ValueError: `run` is a file; or resuming with a config that differs in more than
            `epochs`.
        RunExistsError: `run` holds a run without a checkpoint to resume, and not `overwrite`.
    """
    if os.path.exists(run) and not os.path.isdir(run):
        raise ValueError(f"--out {os.fspath(run)!r} is a file, not a run directory")
    if overwrite:
        return False
    resuming = has_checkpoint(run)
    if os.path.exists(os.path.join(run, CONFIG)) and not resuming:
        raise RunExistsError(
            f"run directory {os.fspath(run)!r} already holds a run: pass overwrite/--force"
        )
    if resuming:
        check_resume(run, config)
    return resuming


def prepare(run, overwrite=False):
    """Creates `run`, first removing a previous run's files if `overwrite`."""
    if overwrite:
        clear(run)
    os.makedirs(run, exist_ok=True)


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
        keep = [
            r
            for r in rows[1:]
            if len(r) == width and r[col].isdigit() and int(r[col]) < epochs_done
        ]

        def write(tmp, lines=(rows[0], *keep)):
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(lines)

        atomic_write(path, write)


def clear(run):
    """Removes what a previous run left in `run` (only the files a run writes)."""
    for name in _FILES:
        if os.path.isfile(os.path.join(run, name)):
            os.remove(os.path.join(run, name))
    for folder in _FOLDERS:
        shutil.rmtree(os.path.join(run, folder), ignore_errors=True)


# Keras's words for a file naming code that safe_mode does not run: a Python lambda, or a
# class or function outside Keras and keras_gated's registered ones.
_SAFE_MODE_REFUSALS = ("safe_mode", "Could not locate class", "Could not locate function")


def load_model_file(path):
    """`keras.models.load_model(path, safe_mode=True)`; every failure is a ValueError whose
    one line starts with `path`: "refused under safe_mode" for code the file names (a Lambda,
    an unknown class or function), "truncated or not a .keras file" for a damaged archive."""
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
    except Exception as error:  # whatever a file's config makes Keras raise
        problem = _keras_problem(error)
        if any(words in problem for words in _SAFE_MODE_REFUSALS):
            raise ValueError(f"{path}: refused under safe_mode: {problem}") from error
        raise ValueError(f"{path}: {problem}") from error


def _keras_problem(error):
    """Keras's load error as one short line: its innermost "Exception encountered", without
    the model config Keras quotes after it (kilobytes)."""
    text = " ".join(str(error).split()) or type(error).__name__
    cause = text.rsplit("Exception encountered: ", 1)[-1]
    return cause.split(" Full object config:", 1)[0].split(" config={", 1)[0]


def load_tokenizer_and_config(run):
    """(tokenizer, TrainConfig, corpus fingerprint or None): what a run needs besides weights."""
    for name in (VOCAB, CONFIG):
        if not os.path.exists(os.path.join(run, name)):
            raise FileNotFoundError(f"{os.fspath(run)!r} is not a complete run: {name} is missing")
    config, fingerprint = load_config(run)
    return load_tokenizer(os.path.join(run, VOCAB)), config, fingerprint


def load_run(run):
    """Loads (model, tokenizer, config) from a run directory, checking they belong together."""
    from keras_gated.models import LanguageModel

    if not os.path.exists(os.path.join(run, MODEL)):
        raise FileNotFoundError(f"{os.fspath(run)!r} is not a complete run: {MODEL} is missing")
    tokenizer, config, _ = load_tokenizer_and_config(run)
    model = load_model_file(os.path.join(run, MODEL))
    if not isinstance(model, LanguageModel):
        raise ValueError(
            f"{os.path.join(run, MODEL)} holds a {type(model).__name__}, not a "
            "keras_gated.LanguageModel: it is not a keras-gated run's model"
        )
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(
            f"{VOCAB} has {tokenizer.vocab_size} tokens but the model expects "
            f"{model.vocab_size}: the vocabulary does not match the model"
        )
    return model, tokenizer, config
