"""The metric against T (`keras-gated diagnose --sweep`): the adding problem, chrono gate
biases, the quick sweep through the command's entry point, and its files."""

import csv
import itertools
import json

import keras
import numpy as np
import pytest

from keras_gated.cli.diagnose import _check_modes, _demo_config
from keras_gated.cli.main import main
from keras_gated.cli.parser import build_parser
from keras_gated.diagnostics import chrono_gate_bias
from keras_gated.diagnostics.adding_task import BASELINE_MSE, adding_batch
from keras_gated.diagnostics.demo import CELL_ORDER
from keras_gated.diagnostics.demo_config import (
    QUICK,
    QUICK_SEQ_LENS,
    SWEEP,
    SWEEP_TASK,
    TASK_NAMES,
    DemoConfig,
)
from keras_gated.diagnostics.tasks import TASKS
from keras_gated.layers import GRU, LSTM, SimpleRNN
from tests.diagnostics.pictures import assert_png

B, D, U, T_MAX = 2, 3, 5, 40  # units != input dim
STEPS = 6  # steps of the decay check
RTOL_DECAY = 1e-5  # f^k over a few float32 steps
RTOL_FLOAT32 = 1e-6  # a float64 value (log u, a sum of two values) stored in float32
BASELINE_DRAWS = 20_000
RTOL_BASELINE = 0.03  # the MSE of 20,000 draws has a standard error of ~0.8%
PIXEL_STD_MIN = 0.05  # a white picture has 0; our plots' lines and text give ~0.2


def test_adding_batch_marks_one_value_in_each_half():
    x, y = adding_batch(np.random.default_rng(0), 64, seq_len=9)
    assert x.shape == (64, 9, 2) and y.shape == (64, 1) and x.dtype == y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    np.testing.assert_array_equal(markers[:, :4].sum(axis=1), 1)  # first half [0, T // 2)
    np.testing.assert_array_equal(markers[:, 4:].sum(axis=1), 1)
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=1), rtol=RTOL_FLOAT32)
    # the baseline: predicting the mean 1 scores Var(v_a + v_b) = 1/6
    _, y = adding_batch(np.random.default_rng(1), BASELINE_DRAWS, seq_len=9)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(BASELINE_MSE, rel=RTOL_BASELINE)


def test_task_names_in_the_parser_are_the_tasks():
    assert set(TASK_NAMES) == set(TASKS) and SWEEP_TASK in TASKS


def _built(layer_class, **options):
    layer = layer_class(U, return_state=True, **options)
    layer(np.zeros((B, 1, D), dtype="float32"))
    return layer


def _zero_kernels(layer):
    for weight in (layer.cell.kernel, layer.cell.recurrent_kernel):
        weight.assign(np.zeros(weight.shape, dtype="float32"))


def test_chrono_lstm_bias_and_its_memory():
    """Packed LSTM bias [b_i | b_f | b_g | b_o]: b_f = log u, b_i = -log u, b_g = b_o = 0; with
    zero weights (g = tanh(0) = 0) the cell state decays as c_k = f^k c_0, f = u / (1 + u)."""
    layer = _built(LSTM)
    u = chrono_gate_bias(layer, T_MAX, np.random.default_rng(0))
    assert u.shape == (U,) and np.all((u >= 1) & (u <= T_MAX - 1))
    b = layer.cell.bias.numpy()
    np.testing.assert_allclose(b[U : 2 * U], np.log(u), rtol=RTOL_FLOAT32)
    np.testing.assert_allclose(b[:U], -np.log(u), rtol=RTOL_FLOAT32)
    np.testing.assert_array_equal(b[2 * U :], 0.0)
    _zero_kernels(layer)
    h0, c0 = np.zeros((B, U), "float32"), np.ones((B, U), "float32")
    _, _, c = layer(np.zeros((B, STEPS, D), "float32"), initial_state=[h0, c0])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(c), np.tile((u / (1 + u)) ** STEPS, (B, 1)), rtol=RTOL_DECAY
    )


@pytest.mark.parametrize("reset_after", [True, False])
def test_chrono_gru_bias_and_its_memory(reset_after):
    """GRU bias [b_z | b_r | b_h] (reset_after: rows b^x and b^h): b_z = log u in total; with
    zero weights h~ = tanh(0) = 0, so h_k = z^k h_0, z = u / (1 + u)."""
    layer = _built(GRU, reset_after=reset_after)
    u = chrono_gate_bias(layer, T_MAX, np.random.default_rng(1))
    b = layer.cell.bias.numpy()
    total = b.sum(axis=0) if reset_after else b
    np.testing.assert_allclose(total[:U], np.log(u), rtol=RTOL_FLOAT32)
    np.testing.assert_array_equal(total[U:], 0.0)
    _zero_kernels(layer)
    h0 = np.ones((B, U), "float32")
    _, h = layer(np.zeros((B, STEPS, D), "float32"), initial_state=[h0])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(h), np.tile((u / (1 + u)) ** STEPS, (B, 1)), rtol=RTOL_DECAY
    )


def test_chrono_refuses_a_layer_without_gates():
    with pytest.raises(ValueError, match="LSTM or GRU"):
        chrono_gate_bias(_built(SimpleRNN), T_MAX, np.random.default_rng(0))


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _pixel_std(path):
    from matplotlib import image

    return float(np.std(image.imread(path)[..., :3]))


def test_quick_sweep_through_the_command(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["diagnose", "--sweep", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    for name in (
        "sweep.png",
        "sweep_gradient_flow.png",
        "sweep.csv",
        "sweep_gradient_flow.csv",
        "sweep.json",
    ):
        assert str(out / name) in printed
    for name in ("sweep.png", "sweep_gradient_flow.png"):
        assert_png(str(out / name))
        assert _pixel_std(str(out / name)) > PIXEL_STD_MIN, name

    rows = _rows(out / "sweep.csv")
    assert sorted((r["cell"], int(r["seq_len"])) for r in rows) == sorted(
        itertools.product(CELL_ORDER, QUICK_SEQ_LENS)
    )
    for r in rows:  # the same budget and recipe at every point, stated in every row
        assert (int(r["train_steps"]), int(r["batch_size"]), int(r["units"])) == (
            QUICK.train_steps,
            QUICK.batch_size,
            QUICK.units,
        )
        assert float(r["learning_rate"]) == QUICK.learning_rate and r["optimizer"] == "Adam"
        assert r["task"] == "adding" and float(r["baseline"]) == pytest.approx(BASELINE_MSE)
        assert float(r["mse"]) >= 0 and float(r["mse_init"]) >= 0
        assert float(r["grad_reach_init"]) > 0
        assert ("chrono" in r["init"]) == (r["cell"] != "rnn"), r["init"]

    flow = _rows(out / "sweep_gradient_flow.csv")  # at the longest T: states h (and c), 2 stages
    longest = max(QUICK_SEQ_LENS)
    assert len(flow) == 2 * (1 + 2 + 1) * longest
    assert {int(r["t"]) for r in flow} == set(range(longest))

    summary = json.loads((out / "sweep.json").read_text())
    assert summary["seq_lens"] == list(QUICK_SEQ_LENS) and summary["seconds"] > 0
    assert set(summary["mse"]) == set(CELL_ORDER) and summary["task"]["name"] == "adding"
    assert summary["config"]["learning_rate"] == QUICK.learning_rate


def _args(*argv):
    return build_parser().parse_args(["diagnose", *argv])


def test_sweep_options_and_their_errors():
    args = _args(
        "--sweep",
        "--seq-lens",
        "30,10,30",
        "--steps",
        "7",
        "--gate-bias",
        "keras",
        "--learning-rate",
        "0.003",
    )
    assert args.seq_lens == (10, 30)
    config = _demo_config(args)
    assert (config.train_steps, config.gate_bias, config.learning_rate) == (7, "keras", 0.003)
    assert _demo_config(_args("--sweep", "--quick")) == QUICK
    assert _demo_config(_args("--sweep")) == SWEEP
    assert _demo_config(_args("--demo")) == DemoConfig()
    for argv, needle in (
        (["--sweep", "--demo"], "exactly one"),
        (["--sweep", "--seq-len", "9"], "--seq-lens"),
        (["--demo", "--seq-lens", "9"], "with --sweep"),
        (["--demo", "--task", "recall"], "with --sweep"),
        (["runs/x", "--quick"], "--quick"),
    ):
        with pytest.raises(ValueError, match=needle):
            _check_modes(_args(*argv))
    for bad in ("1,10", "ten", ","):
        with pytest.raises(SystemExit):
            _args("--sweep", "--seq-lens", bad)
    assert main(["diagnose", "--demo", "--learning-rate", "0"]) == 2


def test_help_describes_the_sweep():
    text = " ".join(
        build_parser()._subparsers._group_actions[0].choices["diagnose"].format_help().split()
    )
    defaults = DemoConfig()
    for needle in (
        "--sweep",
        "--quick",
        "--seq-lens",
        "(default: 10,30,100,300)",
        f"(default: {SWEEP_TASK})",
        f"{SWEEP.train_steps} with --sweep (default: {defaults.train_steps})",
        f"(default: {defaults.learning_rate:g})",
        f"(default: {defaults.gate_bias})",
    ):
        assert needle in text, needle
