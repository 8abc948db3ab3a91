"""SIGKILL in the middle of training, then the same command again, ends as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import write_corpus

WEIGHT_ATOL = 1e-5  # identical steps in float32: rounding only


def _argv(corpus, out):
    return [
        sys.executable,
        "-m",
        "keras_gated.cli.main",
        "train",
        "--corpus",
        str(corpus),
        "--units",
        "12",
        "--embed-dim",
        "12",
        "--batch-size",
        "4",
        "--seq-len",
        "8",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "25",
        "--out",
        str(out),
    ]


@pytest.mark.slow  # covered by test_training.py's resume and test_run_dir.py's log trimming
def test_killed_training_resumes_to_the_same_weights(tmp_path):
    import keras

    import keras_gated  # noqa: F401  (registers the model classes for load_model)
    from keras_gated.training import generations, run_dir

    corpus = write_corpus(tmp_path / "corpus")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    subprocess.run(
        _argv(corpus, tmp_path / "straight"), check=True, env=env, capture_output=True, timeout=600
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _argv(corpus, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not run_dir.has_checkpoint(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.7)  # into epoch 2 (or its checkpoint write)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # what the resumed run will start from: a kill between the renames of a generation
    # write leaves checkpoint.prev/ and no checkpoint/
    epochs_before = generations.last_good(killed).progress["epochs_done"]
    assert 1 <= epochs_before < 4, "the kill must land mid-run"

    subprocess.run(_argv(corpus, killed), check=True, env=env, capture_output=True, timeout=600)
    a = keras.models.load_model(tmp_path / "straight/checkpoint/train_state.keras")
    b = keras.models.load_model(killed / "checkpoint/train_state.keras")
    assert int(b.optimizer.iterations) == 100
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, atol=WEIGHT_ATOL)
