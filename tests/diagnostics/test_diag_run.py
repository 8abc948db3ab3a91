"""Diagnostics of a run directory: the gradient-norm logger, gates, curves and the command."""

import argparse
import csv
import dataclasses
import json
import os

import keras
import numpy as np
import pytest

import keras_gated
from keras_gated.atomic import write_json
from keras_gated.cli import diagnose as cli
from keras_gated.cli.main import main
from keras_gated.data import WordTokenizer, bptt_batches
from keras_gated.diagnostics import (
    gate_activity,
    gate_saturation,
    read_grad_norms,
    read_training_log,
)
from keras_gated.diagnostics.gradient_flow import LOSS_AT, unrolled_logits
from keras_gated.training import GradientNormLogger, TrainConfig, global_gradient_norm
from keras_gated.training.trainer import build_model
from tests.diagnostics.pictures import assert_png

WORDS = ("the king is dead long live the queen and her court . " * 4).split()
RTOL_NORM = 1e-5  # one float32 backward pass against a closed form


def _text(n_lines, seed):
    rng = np.random.default_rng(seed)
    return "\n".join(" ".join(rng.choice(WORDS, size=8)) for _ in range(n_lines)) + "\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small run directory as the trainer writes it, trained with `GradientNormLogger`."""
    root = tmp_path_factory.mktemp("run")
    corpus = root / "corpus.txt"
    corpus.write_text(_text(300, 0))
    config = TrainConfig(
        corpus=str(corpus),
        level="word",
        cell="lstm",
        layers=2,
        embed_dim=8,
        units=8,
        dropout=0.1,
        recurrent_dropout=0.1,
        embed_dropout=0.0,
        batch_size=4,
        seq_len=10,
        epochs=2,
        steps_per_epoch=3,
        seed=0,
    )
    out = root / "run"
    out.mkdir()
    tokenizer = WordTokenizer().fit(corpus.read_text())
    keras.utils.set_random_seed(0)
    model = build_model(config, tokenizer.vocab_size)
    data = bptt_batches(tokenizer.encode(corpus.read_text()), config.batch_size, config.seq_len)
    logger = GradientNormLogger(str(out), data, num_batches=2)
    model.fit(
        data,
        epochs=2,
        steps_per_epoch=3,
        verbose=0,
        shuffle=False,
        callbacks=[keras.callbacks.CSVLogger(str(out / "log.csv")), logger],
    )
    model.stateless_twin().save(str(out / "model.keras"))
    tokenizer.save(str(out / "vocab.json"))
    write_json(str(out / "config.json"), dataclasses.asdict(config))
    return str(out)


def test_global_gradient_norm_matches_closed_form():
    """Dense model y = x w + b with loss mean((y - t)^2): d/dw = 2 x^T (y - t) / N."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 1)).astype("float32")
    w, b = (v.numpy() for v in model.trainable_variables)
    r = x @ w + b - t
    want = np.sqrt(np.sum((2 * x.T @ r / 5) ** 2) + np.sum((2 * r.sum(0) / 5) ** 2))
    assert global_gradient_norm(model, x, t) == pytest.approx(float(want), rel=RTOL_NORM)


def test_logger_writes_one_row_per_epoch_and_keeps_carried_state(run_dir):
    norms = read_grad_norms(run_dir)
    np.testing.assert_array_equal(norms["epoch"], [0, 1])
    assert np.all(np.isfinite(norms["grad_norm"])) and np.all(norms["grad_norm"] > 0)
    assert np.all(norms["grad_norm_max"] >= norms["grad_norm"])
    # a stateful model's carried state is the same before and after a measurement
    config = TrainConfig(**json.load(open(os.path.join(run_dir, "config.json"))))
    model = build_model(config, 40)
    batch = np.random.default_rng(1).integers(0, 40, (2, config.batch_size, config.seq_len))
    model(batch[0])  # carry some state
    before = [v.numpy() for layer in model.rnn_layers for v in layer.states]
    logger = GradientNormLogger(run_dir, [tuple(batch)], num_batches=1)
    logger.set_model(model)
    logger.measure()
    after = [v.numpy() for layer in model.rnn_layers for v in layer.states]
    assert any(np.any(b != 0) for b in before)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_read_logs_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,loss,val_loss\n0,5.0,5.5\n1,4.0,4.5\n1,3.9,4.4\n")
    log = read_training_log(str(tmp_path))
    np.testing.assert_array_equal(log["epoch"], [0, 1])
    np.testing.assert_allclose(log["loss"], [5.0, 3.9])
    assert read_grad_norms(str(tmp_path)) is None
    with pytest.raises(FileNotFoundError):
        read_training_log(str(tmp_path / "missing"))


def test_gate_activity_is_the_layers_own_gates():
    keras.utils.set_random_seed(2)
    model = keras_gated.language_model(13, cell="gru", embed_dim=6, units=6, num_layers=2)
    tokens = np.random.default_rng(3).integers(0, 13, (2, 7))
    activity = gate_activity(model, tokens)
    _, layers = unrolled_logits(model, tokens)
    for layer in model.rnn_layers:
        gates = activity[layer.name]
        assert list(gates) == ["z", "r"]
        want = layer.gate_activations(layers[layer.name][0])
        for g, v in gates.items():
            assert v.shape == (2, 7, 6) and np.all((v >= 0) & (v <= 1))
            np.testing.assert_array_equal(v, want[g])
    plain = keras_gated.language_model(13, cell="rnn", embed_dim=6, units=6, num_layers=1)
    assert gate_activity(plain, tokens) == {}


def test_gate_saturation_counts_fractions():
    values = np.array([0.05, 0.5, 0.95, 0.99]).reshape(1, 4, 1)
    s = gate_saturation({"l": {"f": values}})["l"]["f"]
    assert (s["below"], s["above"]) == (0.25, 0.5)
    assert s["mean"] == pytest.approx(np.mean(values))


def _parse(argv):
    parser = argparse.ArgumentParser(prog="keras-gated")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["diagnose", *argv])


def test_command_on_a_run_directory(run_dir, tmp_path, capsys):
    out = str(tmp_path / "diag")
    assert cli.run(_parse([run_dir, "--out", out, "--loss-at", "last", "--max-tokens", "12"])) == 0
    printed = capsys.readouterr().out.split()
    names = (
        "gradient_flow.png",
        "gates_lstm_0.png",
        "gates_lstm_1.png",
        "gate_saturation.png",
        "training_curves.png",
    )
    for name in names:
        assert os.path.join(out, name) in printed
        assert_png(os.path.join(out, name))
    with open(os.path.join(out, "gradient_flow.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 10  # layers x states (h, c) x steps
    assert all(float(r["trained"]) >= 0 for r in rows)
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["loss_at"] == "last" and summary["grad_norm_logged"] is True
    assert len(summary["sentence"]) == 12
    assert set(summary["gate_saturation"]["lstm_0"]) == {"f", "i", "o"}


def test_command_with_text_and_errors(run_dir, tmp_path):
    out = str(tmp_path / "diag")
    assert cli.run(_parse([run_dir, "--out", out, "--text", "long live the queen ."])) == 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["sentence"] == ["long", "live", "the", "queen", "."]
    with pytest.raises(ValueError, match="exactly one"):
        cli.run(_parse([]))
    with pytest.raises(ValueError, match="exactly one"):
        cli.run(_parse([run_dir, "--demo"]))
    with pytest.raises(ValueError, match="not a directory"):
        cli.run(_parse([str(tmp_path / "missing")]))
    assert main(["diagnose", str(tmp_path / "missing")]) == 2  # the one entry point
    assert cli.LOSS_AT == LOSS_AT


def test_plots_without_optional_numbers(tmp_path):
    from keras_gated.diagnostics import plot_gradient_flow, plot_training_curves

    log = {
        "epoch": np.arange(3),
        "loss": np.array([5.0, 4.0, 3.5]),
        "val_loss": np.array([5.2, 4.4, 4.1]),
        "perplexity": np.exp([5.0, 4.0, 3.5]),
        "val_perplexity": np.exp([5.2, 4.4, 4.1]),
    }
    assert_png(plot_training_curves(log, None, str(tmp_path / "curves.png"), clipnorm=1.0))
    norms = {"layer": {"h": np.geomspace(1e-4, 1e-1, 20), "c": np.zeros(20)}}
    assert_png(plot_gradient_flow(norms, None, str(tmp_path / "flow.png")))


def test_command_demo(tmp_path, capsys):
    out = str(tmp_path / "demo")
    args = _parse(["--demo", "--out", out, "--seq-len", "4", "--units", "4", "--steps", "2"])
    assert cli.run(args) == 0
    assert os.path.join(out, "vanishing_exploding.png") in capsys.readouterr().out.split()
    summary = json.load(open(os.path.join(out, "demo.json")))
    assert summary["config"]["seq_len"] == 4 and summary["config"]["train_steps"] == 2
    assert_png(os.path.join(out, "gradient_comparison.png"))
