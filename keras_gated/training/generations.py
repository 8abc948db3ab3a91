"""Checkpoint generations: each epoch's resumable state written beside the previous epoch's,
and on resume the newest one that loads and agrees with its own progress.json.

The folders and the order of writes and renames are `training.run_dir`'s (its docstring).
A generation is usable when its progress.json reads and has its fields, its
train_state.keras loads, the state's optimizer has taken progress["steps"] steps, it has as
many dropout RNG counters as progress["seed_states"], and (once averaging has started) its
average.npz loads with one array per trainable weight, of the same shapes. Progress files
from before "steps" was recorded skip that one comparison.
"""

import dataclasses
import os
import shutil
import sys

from keras_gated.atomic import atomic_write, fsync_dir, naming
from keras_gated.training import run_dir

FRESH = {"epochs_done": 0, "best": float("inf"), "seed_states": [], "callbacks": {}}
_FIELDS = {"epochs_done": int, "best": (int, float), "seed_states": list, "callbacks": dict}


def seed_states(model):
    """The dropout RNG counters, which `.keras` files do not store but exact resume needs."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def optimizer_steps(model):
    """The steps the model's optimizer has taken (a plain int, also under a strategy)."""
    import keras

    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def write_generation(run, files, resumed_from=run_dir.CHECKPOINT):
    """Writes a generation into `run`'s checkpoint/; the previous becomes checkpoint.prev/.

    Args:
        run: the run directory.
        files: [(file name, write)], progress.json last; `write(path)` writes one file.
        resumed_from: the folder of the last good generation (`run_dir.GENERATIONS`): after a
            fall-back to checkpoint.prev/, the unusable checkpoint/ is dropped, not kept.

    Raises:
        OSError: a file could not be written (a full disk), naming it; checkpoint/ and
            checkpoint.prev/ are as they were and checkpoint.new/ is removed.
    """
    folder = {
        name: os.path.join(run, name)
        for name in (
            run_dir.CHECKPOINT,
            run_dir.CHECKPOINT_PREV,
            run_dir.CHECKPOINT_NEW,
            run_dir.CHECKPOINT_OLD,
        )
    }
    new, old = folder[run_dir.CHECKPOINT_NEW], folder[run_dir.CHECKPOINT_OLD]
    shutil.rmtree(new, ignore_errors=True)  # a crashed write's leftovers
    try:
        os.makedirs(new)
        for name, write in files:
            try:
                atomic_write(os.path.join(new, name), write)
            except OSError as error:
                raise naming(error, os.path.join(folder[run_dir.CHECKPOINT], name)) from error
        fsync_dir(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if resumed_from == run_dir.CHECKPOINT_PREV:
        _rename_if_there(folder[run_dir.CHECKPOINT], old)
    else:
        _rename_if_there(folder[run_dir.CHECKPOINT_PREV], old)
        _rename_if_there(folder[run_dir.CHECKPOINT], folder[run_dir.CHECKPOINT_PREV])
    os.replace(new, folder[run_dir.CHECKPOINT])
    fsync_dir(run)
    shutil.rmtree(old, ignore_errors=True)


def _rename_if_there(source, target):
    if os.path.exists(source):
        os.replace(source, target)


@dataclasses.dataclass
class Generation:
    """A usable generation: its folder's name, progress, training model (loaded outside any
    distribution strategy) and averages (None before averaging starts)."""

    folder: str
    progress: dict
    model: object
    averages: list | None


def last_good(run, warn=None):
    """The newest usable generation in `run`, warning (one line each, on stderr unless `warn`
    is given) about each newer one that is not.

    Raises:
        ValueError: no generation is usable, naming what is wrong with each.
    """
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    problems = []
    for folder in run_dir.GENERATIONS:
        try:
            found = load_generation(run, folder)
        except ValueError as error:
            problems.append(" ".join(str(error).split()))
            continue
        for problem in problems:
            warn(
                f"warning: {problem}: resuming from the previous checkpoint, "
                f"{os.path.join(run, folder)} ({found.progress['epochs_done']} epochs done)"
            )
        return found
    raise ValueError(
        f"no checkpoint in {os.fspath(run)!r} can be resumed: {'; '.join(problems)}"
        " (start again with --force)"
    )


def load_generation(run, folder):
    """`run`/`folder` as a `Generation`; ValueError naming the file that is missing, damaged
    or does not belong with the others."""
    path = {
        name: os.path.join(run, folder, name)
        for name in (run_dir.PROGRESS_FILE, run_dir.STATE_FILE, run_dir.AVERAGE_FILE)
    }
    progress_path, state_path = path[run_dir.PROGRESS_FILE], path[run_dir.STATE_FILE]
    if not os.path.isfile(progress_path):
        raise ValueError(f"{progress_path} is missing")
    progress = run_dir.read_json(progress_path)
    wrong = (
        [k for k, kind in _FIELDS.items() if not isinstance(progress.get(k), kind)]
        if isinstance(progress, dict)
        else list(_FIELDS)
    )
    if wrong:
        raise ValueError(
            f"{progress_path} is not a checkpoint's progress ({', '.join(wrong)} "
            "missing or of the wrong type)"
        )
    try:
        model = run_dir.load_model_file(state_path)
    except Exception as error:  # whatever a damaged archive raises, it is not usable
        raise ValueError(
            str(error) if state_path in str(error) else f"{state_path} cannot be loaded ({error})"
        ) from None
    steps = optimizer_steps(model) if model.optimizer is not None else None
    if "steps" in progress and steps != progress["steps"]:
        raise ValueError(
            f"{state_path} has taken {steps} optimizer steps but {progress_path} "
            f"records {progress['steps']}: they are not one checkpoint"
        )
    if len(seed_states(model)) != len(progress["seed_states"]):
        raise ValueError(
            f"{state_path} has {len(seed_states(model))} dropout RNG counters but "
            f"{progress_path} records {len(progress['seed_states'])}"
        )
    count = (progress.get("averaging") or {}).get("count", 0)
    averages = _averages(path[run_dir.AVERAGE_FILE], model) if count else None
    return Generation(folder, progress, model, averages)


def _averages(path, model):
    from keras_gated.training.averaging import load_averages

    try:
        averages = load_averages(path)
    except Exception as error:  # missing, truncated, not an .npz
        raise ValueError(
            f"{path} cannot be loaded ({error})" if path not in str(error) else str(error)
        ) from None
    want = [tuple(w.shape) for w in model.trainable_weights]
    if [a.shape for a in averages] != want:
        raise ValueError(
            f"{path} does not hold one average per trainable weight of the checkpoint's model"
        )
    return averages
