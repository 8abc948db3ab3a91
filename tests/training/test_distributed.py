"""Data parallelism gives one device's loss curve with the same global batch, carried state
or not: `MirroredStrategy` over two logical CPU devices in one process, and
`MultiWorkerMirroredStrategy` over two worker processes on localhost (the README's recipe)."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

from benchmarks.machine import free_ports

LOSS_RTOL = 1e-4  # replicas sum per-replica float32 gradients in another order: ~1e-6 relative
CONFIG = dict(
    embed_dim=8,
    units=8,
    batch_size=4,
    seq_len=6,
    epochs=2,
    steps_per_epoch=6,
    dropout=0.0,
    recurrent_dropout=0.0,
    embed_dropout=0.0,
    seed=1,
)

MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_gated as kg

    corpus, root, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    for carry in (False, True):
        for strategy in ("none", "mirrored"):
            kg.train(kg.TrainConfig(corpus=corpus, carry_state=carry, strategy=strategy, **config),
                     f"{root}/{strategy}-{carry}", verbose=0)
    print(tf.distribute.MirroredStrategy().num_replicas_in_sync)
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    words = "a b c d e f g h i j".split()
    for k, name in enumerate("abc"):
        lines = [" ".join(words[(i + j + k) % 10] for j in range(6)) for i in range(80)]
        (corpus / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    return corpus


def curve(run):
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        return [[float(r["loss"]), float(r["val_loss"])] for r in csv.DictReader(f)]


def assert_same_curve(one, other):
    assert len(one) == len(other) == CONFIG["epochs"], (one, other)
    for a_row, b_row in zip(one, other):
        for a, b in zip(a_row, b_row):
            assert abs(a - b) <= LOSS_RTOL * abs(a), (one, other)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """Run directories "{none,mirrored}-{False,True}" (strategy, carried state), one process."""
    root = tmp_path_factory.mktemp("runs")
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(corpus), str(root), json.dumps(CONFIG)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "2"  # replicas
    return root


@pytest.mark.parametrize("carry", [False, True], ids=["stateless", "carried-state"])
def test_two_replicas_match_one_device(runs, carry):
    assert_same_curve(curve(runs / f"none-{carry}"), curve(runs / f"mirrored-{carry}"))


def train_command(corpus, out, carry, strategy):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in CONFIG.items()]
    return [
        os.path.join(os.path.dirname(sys.executable), "keras-gated"),
        "train",
        "--corpus",
        str(corpus),
        *flags,
        "--out",
        str(out),
        "--carry-state",
        str(carry).lower(),
        "--strategy",
        strategy,
    ]


# Stateless workers are slow-tier: the carried-state run covers the same recipe and processes,
# and test_two_replicas_match_one_device[stateless] the stateless step under a strategy.
@pytest.mark.parametrize(
    "carry",
    [
        pytest.param(False, id="stateless", marks=pytest.mark.slow),
        pytest.param(True, id="carried-state"),
    ],
)
def test_two_workers_match_one_process(corpus, runs, tmp_path, carry):
    """The README's recipe: the same command on each worker, each with its TF_CONFIG."""
    cluster = [f"localhost:{p}" for p in free_ports(2)]
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
            ),
        }
        workers.append(
            subprocess.Popen(
                train_command(corpus, tmp_path / f"worker{index}", carry, "multiworker"),
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]
    one = runs / f"none-{carry}"
    assert_same_curve(curve(one), curve(tmp_path / "worker0"))
    chief = sorted(os.listdir(tmp_path / "worker0"))
    assert chief == sorted(os.listdir(one)), chief
    assert not (tmp_path / "worker1").exists()  # the other worker wrote nothing there
    results = [
        json.loads((run / "results.json").read_text()) for run in (one, tmp_path / "worker0")
    ]
    for split in ("valid_perplexity", "test_perplexity"):  # each split scored once in all
        assert abs(results[0][split] - results[1][split]) <= LOSS_RTOL * results[0][split]


def start_workers(corpus, out, cluster, config):
    """The same command on each worker, the same --out (one host: a shared directory)."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
    command = [
        os.path.join(os.path.dirname(sys.executable), "keras-gated"),
        "train",
        "--corpus",
        str(corpus),
        *flags,
        "--out",
        str(out),
        "--strategy",
        "multiworker",
    ]
    return [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
                ),
            },
        )
        for index in range(2)
    ]


def final_weights(run):
    import keras

    import keras_gated  # noqa: F401

    return keras.models.load_model(run / "checkpoint" / "train_state.keras").get_weights()


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_a_rerun_resumes(corpus, tmp_path):
    """SIGKILL one worker mid-run: the other stops with a message within bounded time; the
    same commands again resume from the last checkpoint to the uninterrupted run's weights."""
    import signal
    import time

    import numpy as np

    config = {**CONFIG, "epochs": 5, "steps_per_epoch": 40}
    done = start_workers(
        corpus, tmp_path / "whole", [f"localhost:{p}" for p in free_ports(2)], config
    )
    for w in done:
        assert w.wait(timeout=900) == 0, w.stderr.read()[-3000:]

    cluster = [f"localhost:{p}" for p in free_ports(2)]
    killed = start_workers(corpus, tmp_path / "run", cluster, config)
    progress = tmp_path / "run" / "checkpoint" / "progress.json"
    deadline = time.monotonic() + 600
    while not (progress.exists() and json.loads(progress.read_text())["epochs_done"] >= 2):
        assert time.monotonic() < deadline and killed[0].poll() is None
        time.sleep(0.05)
    killed[1].send_signal(signal.SIGKILL)
    stopped = time.monotonic()
    _, err = killed[0].communicate(timeout=300)
    assert killed[0].returncode not in (0, None), "the chief finished before the kill"
    print(f"the chief stopped {time.monotonic() - stopped:.1f} s after the kill")
    assert "another worker stopped" in err.splitlines()[-1], err[-3000:]

    for w in start_workers(corpus, tmp_path / "run", cluster, config):
        assert w.wait(timeout=900) == 0, w.stderr.read()[-3000:]
    for a, b in zip(
        final_weights(tmp_path / "whole"), final_weights(tmp_path / "run"), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
