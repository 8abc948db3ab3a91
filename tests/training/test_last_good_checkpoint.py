"""The last good checkpoint: a damaged newest generation is named in one warning line and the
run resumes from the one before it, never from a state that does not match its progress."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_gated.training import generations, run_dir
from tests.training.conftest import assert_same_train_state, copy_run, train_argv, tree_bytes

STATE, PROGRESS, AVERAGE = run_dir.TRAIN_STATE, run_dir.PROGRESS, run_dir.AVERAGE
PREV = run_dir.CHECKPOINT_PREV


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_progress(run, change):
    progress = json.loads((run / PROGRESS).read_text())
    change(progress)
    (run / PROGRESS).write_text(json.dumps(progress))


def _averaging_started(run, shapes=None):
    """Makes the newest generation's progress say averaging has run, with an average.npz of
    `shapes` (default: the model's trainable weights')."""
    if shapes is None:
        model = run_dir.load_model_file(run / STATE)
        shapes = [tuple(w.shape) for w in model.trainable_weights]
    np.savez(run / AVERAGE, *[np.zeros(s, "float32") for s in shapes])
    _edit_progress(
        run, lambda p: p.update(averaging={"history": [3.0], "started": True, "count": 2})
    )


# damage to the newest generation -> the file the warning must name
DAMAGE = {
    "state truncated": (lambda run: _truncate(run / STATE), STATE),
    "state emptied": (lambda run: _truncate(run / STATE, 0), STATE),
    "state not a zip": (lambda run: (run / STATE).write_bytes(b"not a keras file"), STATE),
    "state with a flipped byte": (lambda run: _flip_a_byte(run / STATE), STATE),
    "state missing": (lambda run: (run / STATE).unlink(), STATE),
    "state of the previous generation": (
        lambda run: shutil.copy(run / PREV / run_dir.STATE_FILE, run / STATE),
        STATE,
    ),
    "progress truncated": (lambda run: _truncate(run / PROGRESS), PROGRESS),
    "progress emptied": (lambda run: _truncate(run / PROGRESS, 0), PROGRESS),
    "progress not an object": (lambda run: (run / PROGRESS).write_text("[1, 2]"), PROGRESS),
    "progress without seed_states": (
        lambda run: _edit_progress(run, lambda p: p.pop("seed_states")),
        PROGRESS,
    ),
    "progress with epochs_done a string": (
        lambda run: _edit_progress(run, lambda p: p.update(epochs_done="2")),
        PROGRESS,
    ),
    "progress of the previous generation": (
        lambda run: shutil.copy(run / PREV / run_dir.PROGRESS_FILE, run / PROGRESS),
        PROGRESS,
    ),
    "progress with one dropout counter too many": (
        lambda run: _edit_progress(run, lambda p: p["seed_states"].append([0, 0])),
        PROGRESS,
    ),
    "progress missing": (lambda run: (run / PROGRESS).unlink(), PROGRESS),
    "checkpoint folder missing": (lambda run: shutil.rmtree(run / run_dir.CHECKPOINT), PROGRESS),
    "average missing": (lambda run: (_averaging_started(run), (run / AVERAGE).unlink()), AVERAGE),
    "average truncated": (lambda run: (_averaging_started(run), _truncate(run / AVERAGE)), AVERAGE),
    "average of other shapes": (lambda run: _averaging_started(run, [(3,)]), AVERAGE),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_newest_generation_is_named_and_the_previous_one_used(
    damage, two_epochs, tmp_path
):
    run = copy_run(two_epochs[1], tmp_path / "run")
    harm, named = DAMAGE[damage]
    harm(run)
    lines = []
    found = generations.last_good(run, warn=lines.append)
    assert found.folder == PREV and found.progress["epochs_done"] == 1
    assert int(found.model.optimizer.iterations) == found.progress["steps"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("warning: ") and str(run / named) in lines[0]
    assert str(run / PREV) in lines[0]


@pytest.mark.parametrize("averaging", [False, True])
def test_an_intact_newest_generation_is_used_without_a_warning(averaging, two_epochs, tmp_path):
    run = copy_run(two_epochs[1], tmp_path / "run")
    if averaging:
        _averaging_started(run)
    lines = []
    found = generations.last_good(run, warn=lines.append)
    assert lines == [] and found.folder == run_dir.CHECKPOINT
    assert found.progress["epochs_done"] == 2
    assert (found.averages is not None) == averaging


def test_train_resumes_exactly_from_the_previous_generation(two_epochs, tmp_path, capsys):
    """Newest truncated: one warning line, then epoch 2 again == the straight run; the
    unusable generation is dropped, the good one kept as the previous."""
    from keras_gated.cli.main import main

    corpus, straight = two_epochs
    run = copy_run(straight, tmp_path / "run")
    _truncate(run / STATE)
    assert main(train_argv(corpus, run)) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(run / STATE) in warnings[0], warnings
    assert_same_train_state(straight, run)
    assert tree_bytes(run / PREV) == tree_bytes(straight / PREV)
    assert not (run / run_dir.CHECKPOINT_NEW).exists()
    assert not (run / run_dir.CHECKPOINT_OLD).exists()


@pytest.mark.parametrize("prev", ["damaged", "missing"])
def test_no_usable_generation_is_one_error_line_and_changes_nothing(
    prev, two_epochs, tmp_path, capsys
):
    from keras_gated.cli.main import main

    corpus, straight = two_epochs
    run = copy_run(straight, tmp_path / "run")
    (run / PROGRESS).write_text("{")
    if prev == "damaged":
        _truncate(run / PREV / run_dir.STATE_FILE)
    else:
        shutil.rmtree(run / PREV)
    before = tree_bytes(run)
    assert main(train_argv(corpus, run)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no checkpoint" in err and "--force" in err
    assert str(run / PROGRESS) in err and str(run / PREV) in err
    assert tree_bytes(run) == before


class Crash(BaseException):
    """The process dies here: nothing after it runs, no clean-up either."""


# the file-system steps of write_generation on a run holding checkpoint/ and checkpoint.prev/:
# 1 remove checkpoint.new/ (a leftover), 2-3 rename the two staged files into it, 4 remove
# checkpoint.old/ (a leftover), 5-7 the three renames, 8 remove checkpoint.old/
STEPS = 8
CHECKPOINT_MISSING = 7  # a crash here: after checkpoint/ -> .prev/, before .new/ -> checkpoint/


def _file_steps(monkeypatch, crash_at=None):
    """Records each os.replace and shutil.rmtree call; the `crash_at`-th (not done) and every
    call after it raise Crash."""
    steps = []

    def step(real):
        def wrapped(*args, **kwargs):
            if crash_at is not None and len(steps) >= crash_at:
                raise Crash  # dead already
            steps.append(args[0])
            if len(steps) == crash_at:
                raise Crash
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(os, "replace", step(os.replace))
    monkeypatch.setattr(shutil, "rmtree", step(shutil.rmtree))
    return steps


def _writer(data):
    return lambda path: Path(path).write_bytes(data)


def test_a_generation_write_has_the_steps_the_crash_test_counts(two_epochs, tmp_path, monkeypatch):
    run = copy_run(two_epochs[1], tmp_path / "run")
    steps = _file_steps(monkeypatch)
    generations.write_generation(
        run, [(run_dir.STATE_FILE, _writer(b"s")), (run_dir.PROGRESS_FILE, _writer(b"{}"))]
    )
    assert len(steps) == STEPS


@pytest.mark.parametrize("crash_at", range(1, STEPS + 1))
def test_a_crash_at_any_step_of_a_generation_write_leaves_matched_pairs(
    crash_at, two_epochs, tmp_path, monkeypatch
):
    run = copy_run(two_epochs[1], tmp_path / "run")
    pairs = [
        (
            (run / g / run_dir.PROGRESS_FILE).read_bytes(),
            (run / g / run_dir.STATE_FILE).read_bytes(),
        )
        for g in run_dir.GENERATIONS
    ]
    # the new generation is epoch 1's pair again: a mix of two generations shows as a pair
    # that is neither
    files = [
        (run_dir.STATE_FILE, _writer(pairs[1][1])),
        (run_dir.PROGRESS_FILE, _writer(pairs[1][0])),
    ]
    steps = _file_steps(monkeypatch, crash_at)
    with pytest.raises(Crash):
        generations.write_generation(run, files)
    monkeypatch.undo()
    assert len(steps) == crash_at
    for g in run_dir.GENERATIONS:
        if (run / g / run_dir.PROGRESS_FILE).exists():
            pair = (
                (run / g / run_dir.PROGRESS_FILE).read_bytes(),
                (run / g / run_dir.STATE_FILE).read_bytes(),
            )
            assert pair in pairs, f"{g} mixes two generations"
    lines = []
    found = generations.last_good(run, warn=lines.append)
    assert len(lines) == (crash_at == CHECKPOINT_MISSING)
    generations.write_generation(run, files, found.folder)  # the next epoch's write
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint")) == [
        run_dir.CHECKPOINT,
        PREV,
    ]


def test_force_clears_every_generation_folder(two_epochs, tmp_path):
    run = copy_run(two_epochs[1], tmp_path / "run")
    for leftover in (run_dir.CHECKPOINT_NEW, run_dir.CHECKPOINT_OLD):
        shutil.copytree(run / run_dir.CHECKPOINT, run / leftover)
    run_dir.clear(run)
    assert not [p.name for p in run.iterdir() if p.name.startswith("checkpoint")]
    assert not run_dir.has_checkpoint(run)
