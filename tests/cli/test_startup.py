"""Start-up without TensorFlow, and quiet output: each command in a fresh interpreter."""

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from keras_gated.cli.native_logs import PREAMBLE, RECORD, keep_line, min_level
from keras_gated.cli.parser import build_parser

STARTUP_LIMIT_S = 1.5  # on 2 shared cores; today about 0.3 s for --help, 0.6 s for --onnx

# Runs keras_gated.cli.main with every dependency of the full install but numpy and
# onnxruntime made unimportable, as in a runtime-only environment.
BLOCKED = textwrap.dedent("""
    import sys
    BLOCKED = ("tensorflow", "keras", "matplotlib", "onnx", "tf2onnx", "wrapt", "jax", "torch",
               "tqdm", "tensorboard")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Blocker())
    from keras_gated.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def _blocked(*argv):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, *argv], capture_output=True, text=True, timeout=120
    )
    return done, time.perf_counter() - start


@pytest.mark.parametrize(
    "argv", [["--help"], ["export", "--help"], ["train", "--help"], ["--version"]]
)
def test_help_starts_fast_without_tensorflow(argv):
    done, seconds = _blocked(*argv)
    assert done.returncode == 0, done.stderr
    assert seconds < STARTUP_LIMIT_S


def test_generate_onnx_runs_without_tensorflow_or_keras(exported):
    done, seconds = _blocked(
        "generate", "--onnx", str(exported), "--prompt", "the cat", "--tokens", "5", "--seed", "0"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("the cat") and done.stderr == ""
    assert seconds < STARTUP_LIMIT_S


def test_commands_hide_native_log_lines_unless_verbose(tmp_path):
    """`train` imports TensorFlow (whose import logs oneDNN's and CUDA's records), then fails."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    script = os.path.join(os.path.dirname(sys.executable), "keras-gated")
    argv = [script, "train", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "r")]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 2 and quiet.stdout == ""
    assert (
        quiet.stderr == f"keras-gated train: error: corpus source not found: {tmp_path / 'none'}\n"
    )
    loud = subprocess.run(
        [*argv, "--verbose"], capture_output=True, text=True, timeout=300, env=env
    )
    assert any(RECORD.match(line.encode()) for line in loud.stderr.splitlines()), loud.stderr


@pytest.mark.parametrize(
    "line,level,kept",
    [
        (
            b"I0000 00:00:1796166287.058866    3128 port.cc:153] oneDNN custom operations are on.",
            3,
            False,
        ),
        (b"E0000 00:00:1796166287.1  31 cuda_executor.cc:1228] failed call to cuInit", 3, False),
        (b"E0000 00:00:1796166287.1  31 cuda_executor.cc:1228] failed call to cuInit", 2, True),
        (b"W0000 00:00:1796166287.1  31 a.cc:1] careful", 1, True),
        (b"W0000 00:00:1796166287.1  31 a.cc:1] careful", 2, False),
        (PREAMBLE, 2, False),
        (b"keras-gated train: error: the corpus is empty", 3, True),
        (b"Epoch 1/4", 3, True),
    ],
)
def test_native_log_records_below_the_level_are_dropped(line, level, kept):
    assert keep_line(line, level, dropping=False)[0] is kept


def test_a_dropped_record_takes_its_continuation_line_along():
    record = b"I0000 00:00:1.1  3 cpu_feature_guard.cc:227] This TensorFlow binary is optimized"
    assert keep_line(record, 3, False) == (False, True)
    assert keep_line(b"To enable the following instructions: AVX2 FMA", 3, True) == (False, True)
    assert keep_line(b"To enable the following instructions: AVX2 FMA", 3, False)[0]


def test_verbose_or_the_environment_sets_the_level():
    assert min_level(False, {}) == 3
    assert min_level(True, {"TF_CPP_MIN_LOG_LEVEL": "2"}) == 0
    assert min_level(False, {"TF_CPP_MIN_LOG_LEVEL": "1"}) == 1


def test_every_option_has_help_and_its_default():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a.choices, dict))
    checked = 0
    for command, sub in subparsers.choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            help = formatter._get_help_string(action)
            assert action.help, (command, action.dest)
            flag = action.const is True or action.nargs == 0  # --force, --verbose, --demo
            assert flag or action.required or "default" in help, (command, action.dest, help)
            checked += 1
    assert checked > 40


def test_closed_sets_are_choices():
    from keras_gated.models.language_model import CELLS

    train = build_parser().parse_args(["train", "--out", "x"])
    assert train.cell == "lstm"
    for argv in (
        ["train", "--cell", "cnn", "--out", "x"],
        ["train", "--level", "byte", "--out", "x"],
        ["train", "--strategy", "tpu", "--out", "x"],
        ["generate", "--onnx", "m", "--prompt", "a", "--providers", "tpu"],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
    from keras_gated.training.config import CELLS as CONFIG_CELLS

    assert set(CONFIG_CELLS) == set(CELLS)


def test_diagnose_help_states_the_demo_defaults():
    from keras_gated.diagnostics.demo import DemoConfig

    text = re.sub(
        r"\s+", " ", build_parser()._subparsers._group_actions[0].choices["diagnose"].format_help()
    )
    defaults = DemoConfig()
    for flag, value in (
        ("--steps", defaults.train_steps),
        ("--seq-len", defaults.seq_len),
        ("--units", defaults.units),
        ("--seed", defaults.seed),
    ):
        assert re.search(rf"{flag} \S+ .*?\(default: {value}\)", text), flag
