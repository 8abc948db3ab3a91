"""A tiny run trained straight through two epochs, shared by the checkpoint tests."""

import shutil

import numpy as np
import pytest

from tests.conftest import train_argv, write_corpus  # noqa: F401 (train_argv: for the tests here)

WEIGHT_ATOL = 1e-5  # identical steps in float32: rounding only


@pytest.fixture(scope="session")
def two_epochs(tmp_path_factory):
    """(corpus, run): `train_argv` run straight through; checkpoint/ holds epoch 2 and
    checkpoint.prev/ epoch 1. Tests copy it (`copy_run`), never change it."""
    from keras_gated.cli.main import main

    root = tmp_path_factory.mktemp("two_epochs")
    corpus = write_corpus(root / "corpus", lines=(40, 10, 10), per_line=6)
    assert main(train_argv(corpus, root / "run")) == 0
    return corpus, root / "run"


def copy_run(run, target):
    shutil.copytree(run, target)
    return target


def tree_bytes(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_same_train_state(a, b):
    """The two runs' checkpoint/train_state.keras hold the same weights and optimizer steps."""
    from keras_gated.training.run_dir import load_model_file

    x, y = (load_model_file(run / "checkpoint" / "train_state.keras") for run in (a, b))
    assert int(x.optimizer.iterations) == int(y.optimizer.iterations)
    for p, q in zip(x.get_weights(), y.get_weights(), strict=True):
        np.testing.assert_allclose(p, q, atol=WEIGHT_ATOL)
