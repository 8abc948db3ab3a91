"""`keras-gated train` on the backend under test (KERAS_BACKEND: the suite runs it on all
three), as users run it: the console script, a run directory, then a resumed run.

An interrupted run resumed by re-running the command ends where an uninterrupted run ends
(weights, optimizer step), with dropout, variable BPTT windows and NT-ASGD averaging on, and
the run directory holds everything `evaluate`, `generate` and `export` read.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_gated  # noqa: F401  (registers the classes for load_model)
from tests.conftest import write_corpus

# the same float32 steps on the same data and masks: rounding only
WEIGHT_ATOL = 1e-5
ARGS = [
    "--units",
    "8",
    "--embed-dim",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "6",
    "--steps-per-epoch",
    "4",
    "--nonmono",
    "1",
    "--patience",
    "5",
    "--learning-rate",
    "0.05",
    "--variable-bptt",
    "true",
]


def train(corpus, out, epochs):
    script = os.path.join(os.path.dirname(sys.executable), "keras-gated")
    result = subprocess.run(
        [
            script,
            "train",
            "--corpus",
            str(corpus),
            *ARGS,
            "--epochs",
            str(epochs),
            "--out",
            str(out),
        ],
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_train_resume_and_run_directory_on_this_backend(tmp_path):
    if keras.backend.backend() == "tensorflow":  # suite time: ~90 s on 2 cores
        import pytest

        pytest.skip(
            "on TensorFlow: test_training.py's resume, test_cli.py's run directory and "
            "the slow test_awd_windows_and_averaging_resume_exactly cover it"
        )
    corpus = write_corpus(tmp_path / "corpus", lines=(120, 30, 30))
    train(corpus, tmp_path / "straight", 3)
    train(corpus, tmp_path / "resumed", 2)
    train(corpus, tmp_path / "resumed", 3)
    for run in ("straight", "resumed"):
        for name in (
            "model.keras",
            "vocab.json",
            "config.json",
            "log.csv",
            "grad_norm.csv",
            "results.json",
            "checkpoint/progress.json",
        ):
            assert (tmp_path / run / name).exists(), (run, name)
    a = keras.models.load_model(tmp_path / "straight/checkpoint/train_state.keras")
    b = keras.models.load_model(tmp_path / "resumed/checkpoint/train_state.keras")
    assert int(b.optimizer.iterations) == int(a.optimizer.iterations) > 0
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, atol=WEIGHT_ATOL)
    results = [
        json.loads((tmp_path / run / "results.json").read_text()) for run in ("straight", "resumed")
    ]
    assert results[0]["epochs"] == results[1]["epochs"] == 3
    np.testing.assert_allclose(
        results[0]["valid_perplexity"], results[1]["valid_perplexity"], rtol=1e-5
    )


def test_a_run_that_fails_early_leaves_no_half_made_run(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", lines=(5, 30, 30))  # too small to train
    script = os.path.join(os.path.dirname(sys.executable), "keras-gated")
    result = subprocess.run(
        [
            script,
            "train",
            "--corpus",
            str(corpus),
            *ARGS,
            "--seq-len",
            "400",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
        ],
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    shutil.rmtree(tmp_path / "corpus")
    assert not (tmp_path / "run").exists() or not os.listdir(tmp_path / "run")


@pytest.mark.parametrize("carry", ["false", "true"])
def test_jax_data_parallel_over_two_host_devices_matches_one_device(tmp_path, carry):
    """`--strategy mirrored` on JAX (`keras.distribution.DataParallel` over two host CPU
    devices, the global batch split in two by rows) gives the one-device loss curve, with
    carried state or without."""
    import csv

    if keras.backend.backend() != "jax":
        pytest.skip("keras.distribution.DataParallel is the JAX backend's")
    corpus = write_corpus(tmp_path / "corpus", lines=(120, 30, 30))
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    script = os.path.join(os.path.dirname(sys.executable), "keras-gated")
    curves = {}
    for strategy in ("none", "mirrored"):
        out = tmp_path / strategy
        result = subprocess.run(
            [script, *deterministic_train_argv(corpus, out, strategy), "--carry-state", carry],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        with open(out / "log.csv", encoding="utf-8") as f:
            curves[strategy] = [[float(r["loss"]), float(r["val_loss"])] for r in csv.DictReader(f)]
    devices = subprocess.run(
        [sys.executable, "-c", "import jax; print(len(jax.devices()))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert devices.stdout.strip() == "2"
    # replicas sum per-replica float32 gradients in another order: ~1e-6 relative
    np.testing.assert_allclose(curves["mirrored"], curves["none"], rtol=1e-4)


def test_jax_two_processes_match_one(tmp_path):
    """`--strategy multiworker` on JAX: two processes joined by `keras.distribution.initialize`
    (KERAS_DISTRIBUTION_* variables), each reading its half of the rows, with carried state,
    give one process's loss curve; only process 0 writes its run directory."""
    import csv

    from benchmarks.machine import free_ports

    if keras.backend.backend() != "jax":
        pytest.skip("jax.distributed is the JAX backend's")
    corpus = write_corpus(tmp_path / "corpus", lines=(120, 30, 30))
    script = os.path.join(os.path.dirname(sys.executable), "keras-gated")
    addresses = ",".join(f"localhost:{port}" for port in free_ports(2))

    def command(out, strategy):
        return [script, *deterministic_train_argv(corpus, out, strategy)]

    workers = [
        subprocess.Popen(
            command(tmp_path / f"process{i}", "multiworker"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "KERAS_BACKEND": "jax",
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses,
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                "KERAS_DISTRIBUTION_PROCESS_ID": str(i),
            },
        )
        for i in range(2)
    ]
    one = subprocess.run(
        command(tmp_path / "one", "none"),
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        timeout=900,
    )
    for w in workers:
        assert w.wait(timeout=900) == 0, w.stderr.read()[-3000:]
    assert one.returncode == 0, one.stderr[-3000:]
    curves = []
    for run in ("one", "process0"):
        with open(tmp_path / run / "log.csv", encoding="utf-8") as f:
            curves.append([[float(r["loss"]), float(r["val_loss"])] for r in csv.DictReader(f)])
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)
    assert sorted(os.listdir(tmp_path / "process0")) == sorted(os.listdir(tmp_path / "one"))
    assert not (tmp_path / "process1").exists()
    results = [
        json.loads((tmp_path / run / "results.json").read_text()) for run in ("one", "process0")
    ]
    for split in ("valid_perplexity", "test_perplexity"):  # each split scored once in all
        np.testing.assert_allclose(results[1][split], results[0][split], rtol=1e-4)


def deterministic_train_argv(corpus, out, strategy):
    """`keras-gated train` arguments of a tiny run without dropout (so strategies compare
    step for step): 2 epochs of 4 steps, B = 4, T = 6."""
    options = {
        "units": 8,
        "embed-dim": 8,
        "batch-size": 4,
        "seq-len": 6,
        "steps-per-epoch": 4,
        "epochs": 2,
        "dropout": 0,
        "recurrent-dropout": 0,
        "embed-dropout": 0,
        "strategy": strategy,
        "out": out,
        "corpus": corpus,
    }
    return ["train", *(part for k, v in options.items() for part in (f"--{k}", str(v)))]
