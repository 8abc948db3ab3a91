"""A full disk: a write that fails part-way is one error line naming the file and the cause,
the previous file stays as it was, no temp file is left, and a re-run with space resumes.

Two ways to fill the disk: RLIMIT_FSIZE in a subprocess (the kernel fails every write past
the limit with EFBIG; Python ignores SIGXFSZ), and `disk_full`, which makes one file's writes
fail with ENOSPC after some bytes (what a full disk does to the file being written).
"""

import builtins
import contextlib
import errno
import io
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from keras_gated.atomic import write_json
from keras_gated.training import run_dir
from tests.training.conftest import assert_same_train_state, copy_run, train_argv, tree_bytes

ENOSPC = os.strerror(errno.ENOSPC)  # "No space left on device"
EFBIG = os.strerror(errno.EFBIG)  # "File too large"
KERAS_GATED = os.path.join(os.path.dirname(sys.executable), "keras-gated")
# as a user runs it: without the tests' TF_CPP_MIN_LOG_LEVEL, which would show native records
USER_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


class _Filling:
    """A file whose writes fail with ENOSPC once `room` bytes are written."""

    def __init__(self, file, room):
        self._file, self._room = file, room

    def write(self, data):
        fits = data[: self._room]
        self._file.write(fits)
        self._room -= len(fits)
        if len(fits) < len(data):
            raise OSError(errno.ENOSPC, ENOSPC)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


@contextlib.contextmanager
def disk_full(monkeypatch, matches, room=100):
    """Inside, the first file opened for writing whose name `matches(basename)` takes `room`
    bytes, then the disk is full. Yields the list of names it filled."""
    real_open, filled = builtins.open, []

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if (
            writing
            and not filled
            and isinstance(file, (str, os.PathLike))
            and matches(os.path.basename(file))
        ):
            filled.append(os.fspath(file))
            return _Filling(f, room)
        return f

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", open_)
        m.setattr(io, "open", open_)  # zipfile's (np.savez)
        yield filled


def _temp_of(name):
    """Matches `atomic`'s temp files for the target `name` (".stem.XXXX.ext")."""
    stem, ext = os.path.splitext(name)
    return lambda base: (
        base.startswith(f".{stem}.")
        and base.endswith(ext)
        and base.count(".") == name.count(".") + 2
    )


def _leftovers(folder):
    """Temp files and transient checkpoint folders under `folder`."""
    return [
        str(p)
        for p in folder.rglob("*")
        if p.name.startswith((".", "tmp"))
        or p.name in (run_dir.CHECKPOINT_NEW, run_dir.CHECKPOINT_OLD)
    ]


def _one_error_line(err, *parts):
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert all(part in lines[0] for part in parts), (lines[0], parts)


# --- training, through the command line ------------------------------------------------------


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return preexec


def _epoch_one_run(straight, folder):
    """The run directory of the straight run as it was after epoch 1 (checkpoint.prev/
    promoted to checkpoint/)."""
    run = copy_run(straight, folder)
    shutil.rmtree(run / run_dir.CHECKPOINT)
    os.replace(run / run_dir.CHECKPOINT_PREV, run / run_dir.CHECKPOINT)
    return run


def test_a_full_disk_mid_checkpoint_is_one_line_and_keeps_the_last_checkpoint(
    two_epochs, tmp_path, capsys, monkeypatch
):
    """`keras-gated train` resumed after epoch 1; epoch 2's train_state.keras meets a full
    disk: exit 2, one line naming the file and ENOSPC, checkpoint/ as it was, nothing left."""
    from keras_gated.cli.main import main

    corpus, straight = two_epochs
    run = _epoch_one_run(straight, tmp_path / "run")
    before = tree_bytes(run / run_dir.CHECKPOINT)
    with disk_full(monkeypatch, _temp_of(run_dir.STATE_FILE)) as filled:
        assert main(train_argv(corpus, run)) == 2
    assert len(filled) == 1
    _one_error_line(capsys.readouterr().err, f"cannot write {run / run_dir.TRAIN_STATE}", ENOSPC)
    assert tree_bytes(run / run_dir.CHECKPOINT) == before
    assert not (run / run_dir.CHECKPOINT_PREV).exists() and _leftovers(run) == []


@pytest.mark.slow  # the test above and test_last_good_checkpoint.py's exact resume cover it
def test_a_file_size_limit_mid_checkpoint_is_one_line_and_a_rerun_resumes_exactly(
    two_epochs, tmp_path
):
    """The console script under RLIMIT_FSIZE: epoch 2's train_state.keras passes the limit
    (model.keras, smaller, does not): exit 2, one line naming the file and EFBIG, checkpoint/
    unchanged, nothing left over; the same command with space then ends where the straight
    run did."""
    from keras_gated.cli.main import main

    corpus, straight = two_epochs
    run = _epoch_one_run(straight, tmp_path / "run")
    model, state = (os.path.getsize(run / name) for name in (run_dir.MODEL, run_dir.TRAIN_STATE))
    assert model < state
    before = tree_bytes(run / run_dir.CHECKPOINT)
    done = subprocess.run(
        [KERAS_GATED, *train_argv(corpus, run)],
        capture_output=True,
        text=True,
        env=USER_ENV,
        timeout=600,
        preexec_fn=_limit_file_size((model + state) // 2),
    )
    assert done.returncode == 2
    _one_error_line(done.stderr, f"cannot write {run / run_dir.TRAIN_STATE}", EFBIG)
    assert tree_bytes(run / run_dir.CHECKPOINT) == before
    assert not (run / run_dir.CHECKPOINT_PREV).exists() and _leftovers(run) == []

    assert main(train_argv(corpus, run)) == 0
    assert_same_train_state(straight, run)


@pytest.mark.slow  # test_a_full_disk_when_a_run_starts... fills the same files in-process
@pytest.mark.parametrize("name,limit", [(run_dir.VOCAB, 200), (run_dir.MODEL, 8192)])
def test_a_file_size_limit_in_a_fresh_run_is_one_line(name, limit, two_epochs, tmp_path):
    """vocab.json (a few hundred bytes) is the first file a run writes; model.keras (tens of
    kB) the first past 8 kB (config.json has 1 kB)."""
    corpus, _ = two_epochs
    run = tmp_path / "run"
    done = subprocess.run(
        [KERAS_GATED, *train_argv(corpus, run)],
        capture_output=True,
        text=True,
        env=USER_ENV,
        timeout=600,
        preexec_fn=_limit_file_size(limit),
    )
    assert done.returncode == 2
    _one_error_line(done.stderr, f"cannot write {run / name}", EFBIG)
    assert not (run / name).exists() and _leftovers(run) == []


# --- each file of an epoch's checkpoint, through the callback that writes them ---------------


@pytest.fixture
def checkpointing(two_epochs, tmp_path):
    """(run, RunCheckpoint with averaging started, ready for epoch 3) on a copy of the run."""
    from keras_gated.training.averaging import WeightAveraging
    from keras_gated.training.build import stateless_copy
    from keras_gated.training.callbacks import RunCheckpoint

    run = copy_run(two_epochs[1], tmp_path / "run")
    model = run_dir.load_model_file(run / run_dir.TRAIN_STATE)
    averaging = WeightAveraging(
        2,
        state={"history": [9.0], "started": True, "count": 1},
        averages=[w.numpy() for w in model.trainable_weights],
    )
    averaging.set_model(model)
    checkpoint = RunCheckpoint(run, stateless_copy, averaging=averaging)
    checkpoint.set_model(model)
    return run, checkpoint


@pytest.mark.parametrize(
    "name", [run_dir.MODEL, run_dir.STATE_FILE, run_dir.AVERAGE_FILE, run_dir.PROGRESS_FILE]
)
def test_a_full_disk_while_checkpointing_keeps_every_previous_file(
    name, checkpointing, monkeypatch
):
    run, checkpoint = checkpointing
    if name != run_dir.MODEL:
        checkpoint.best = 0.0  # not a better model: only the checkpoint is written
    before = tree_bytes(run)
    named = run / (name if name == run_dir.MODEL else os.path.join(run_dir.CHECKPOINT, name))
    with disk_full(monkeypatch, _temp_of(name)) as filled:
        with pytest.raises(OSError) as error:
            checkpoint.on_epoch_end(2, {"val_perplexity": 1.0})
    assert len(filled) == 1 and error.value.errno == errno.ENOSPC
    assert f"cannot write {named}: {ENOSPC}" in str(error.value)
    assert tree_bytes(run) == before and _leftovers(run) == []


def test_with_space_the_checkpoint_becomes_the_newest_and_the_newest_the_previous(checkpointing):
    """The control for the test above: the same call, nothing full."""
    run, checkpoint = checkpointing
    before = tree_bytes(run)
    checkpoint.on_epoch_end(2, {"val_perplexity": 1.0})
    prefix = run_dir.CHECKPOINT + os.sep
    assert tree_bytes(run / run_dir.CHECKPOINT_PREV) == {
        k[len(prefix) :]: v for k, v in before.items() if k.startswith(prefix)
    }
    assert sorted(tree_bytes(run / run_dir.CHECKPOINT)) == sorted(
        [run_dir.AVERAGE_FILE, run_dir.PROGRESS_FILE, run_dir.STATE_FILE]
    )
    assert _leftovers(run) == []


# --- the files a run starts with, and the small JSON files --------------------------------


@pytest.mark.parametrize("name", [run_dir.VOCAB, run_dir.CONFIG])
def test_a_full_disk_when_a_run_starts_is_one_line_and_leaves_a_fresh_start(
    name, two_epochs, tmp_path, capsys, monkeypatch
):
    from keras_gated.cli.main import main
    from keras_gated.training.config import TrainConfig

    corpus, _ = two_epochs
    run = tmp_path / "run"
    with disk_full(monkeypatch, _temp_of(name)) as filled:
        assert main(train_argv(corpus, run)) == 2
    assert len(filled) == 1
    _one_error_line(capsys.readouterr().err, f"cannot write {run / name}", ENOSPC)
    assert not (run / name).exists() and _leftovers(run) == []
    assert run_dir.check_start(run, TrainConfig()) is False  # the same command starts afresh


@pytest.mark.parametrize("name", [run_dir.VOCAB, run_dir.CONFIG, run_dir.RESULTS])
def test_a_full_disk_leaves_the_previous_json_file(name, two_epochs, tmp_path, monkeypatch):
    from keras_gated.data.tokenizers import load_tokenizer
    from keras_gated.training.config import TrainConfig

    run = copy_run(two_epochs[1], tmp_path / "run")
    before = (run / name).read_bytes()
    write = {
        run_dir.VOCAB: lambda: load_tokenizer(run / name).fit("a new vocabulary").save(run / name),
        run_dir.CONFIG: lambda: run_dir.save_config(run, TrainConfig(units=99), None),
        run_dir.RESULTS: lambda: write_json(run / name, {"new": list(range(100))}),
    }[name]
    with disk_full(monkeypatch, _temp_of(name), room=10), pytest.raises(OSError) as error:
        write()
    assert f"cannot write {run / name}: {ENOSPC}" in str(error.value)
    assert (run / name).read_bytes() == before and _leftovers(run) == []


def test_an_interrupt_mid_write_leaves_the_previous_file(tmp_path):
    from keras_gated.atomic import atomic_write

    target = tmp_path / "model.keras"
    target.write_bytes(b"previous")

    def write(path):
        with open(path, "wb") as f:
            f.write(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write)
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["model.keras"]


# --- exports -------------------------------------------------------------------------------


@pytest.mark.parametrize("fills", ["model.onnx", "model.int8.onnx", "quantizer scratch"])
def test_a_full_disk_during_an_int8_export_keeps_both_previous_files(
    fills, two_epochs, tmp_path, capsys, monkeypatch
):
    """Both files or neither: a failure in either leaves the previous pair."""
    from keras_gated.cli.main import main

    out, int8 = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    out.write_bytes(b"previous float")
    int8.write_bytes(b"previous int8")
    matches = (
        (lambda base: base == "fp32.onnx") if fills == "quantizer scratch" else _temp_of(fills)
    )
    named = int8 if fills != "model.onnx" else out
    with disk_full(monkeypatch, matches) as filled:
        assert main(["export", str(two_epochs[1]), str(out), "--quantize", "int8", "--force"]) == 2
    assert len(filled) == 1
    _one_error_line(capsys.readouterr().err, f"cannot write {named}", ENOSPC)
    assert out.read_bytes() == b"previous float" and int8.read_bytes() == b"previous int8"
    assert sorted(os.listdir(tmp_path)) == ["model.int8.onnx", "model.onnx"]


def test_a_file_size_limit_during_export_is_one_line(two_epochs, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous")
    done = subprocess.run(
        [KERAS_GATED, "export", str(two_epochs[1]), str(out), "--force"],
        capture_output=True,
        text=True,
        timeout=600,
        env=USER_ENV,
        preexec_fn=_limit_file_size(4096),
    )
    assert done.returncode == 2
    _one_error_line(done.stderr, f"cannot write {out}", EFBIG)
    assert out.read_bytes() == b"previous" and os.listdir(tmp_path) == ["model.onnx"]


def test_the_filled_file_really_is_cut_short(tmp_path, monkeypatch):
    """`disk_full` writes what fits, then fails: the control for the tests above."""
    with disk_full(monkeypatch, lambda base: base == "x.npz", room=50):
        with pytest.raises(OSError, match=ENOSPC):
            np.savez(tmp_path / "x.npz", np.zeros(100))
        np.savez(tmp_path / "y.npz", np.zeros(100))  # another file still has room
    assert os.path.getsize(tmp_path / "x.npz") == 50
    assert len(np.load(tmp_path / "y.npz").files) == 1
