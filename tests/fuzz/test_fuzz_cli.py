"""The `keras-gated` command on random command lines: exit 0, or exit 2 with one line and
the files it was given as they were.

Command lines come from the real parser (`command_lines.py`) and run in-process through
`main(argv)`, in a fresh working directory per example. A command line that passes every
check runs until its first expensive step (building or loading a model, running the demo or
the sweep), where the test stops it: that step's own tests cover what follows. `generate
--onnx` runs for real when it asks for at most `TINY_TOKENS` tokens.
"""

import contextlib
import io
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import example, given

from keras_gated.cli.main import main
from tests.conftest import write_corpus
from tests.fuzz.command_lines import command_lines
from tests.fuzz.conftest import tiers

TINY_TOKENS = 64  # the default 50 included: a step of the tiny model takes ~0.1 ms
# What may precede the error line on stderr: a notice about the data, diagnose's progress bar.
NOTICE = re.compile(r"notice: ")
PROGRESS = re.compile(r"\d+%\|.*\| \d+/\d+ \[")


class ReachedWork(BaseException):
    """Raised where a command's work starts; a BaseException, so that main() lets it through."""


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_onnx):
    """The files each example's working directory starts from (the names `command_lines`
    draws): a corpus, a run (with a placeholder model.keras), damaged runs, the tiny export."""
    from keras_gated.data.tokenizers import WordTokenizer
    from keras_gated.training.config import TrainConfig
    from keras_gated.training.run_dir import MODEL, VOCAB, save_config

    root = tmp_path_factory.mktemp("workspace")
    corpus = write_corpus(root / "corpus", lines=(30, 8, 8), per_line=6)
    run = root / "run"
    run.mkdir()
    save_config(run, TrainConfig(corpus=str(corpus)), None)
    WordTokenizer().fit((corpus / "a.txt").read_text()).save(run / VOCAB)
    (run / MODEL).write_bytes(b"the fuzz stops before a model is loaded")
    for name, damaged in (("run_bad_vocab", VOCAB), ("run_bad_config", "config.json")):
        shutil.copytree(run, root / name)
        (root / name / damaged).write_text("[" * 100_000)
    shutil.copy(tiny_onnx, root / "lm.onnx")
    (root / "garbage.onnx").write_bytes(os.urandom(200))
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00binary")
    (root / "empty.txt").write_bytes(b"")
    (root / "empty_dir").mkdir()
    (root / "naïve ☃ 目录").mkdir()
    shutil.copy(corpus / "b.txt", root / "naïve ☃ 目录" / "b.txt")
    return root


@pytest.fixture
def stop_at_work(monkeypatch):
    """Replaces each command's first expensive step by `ReachedWork`."""
    import keras_gated.diagnostics.demo as demo
    import keras_gated.diagnostics.sweep as sweep
    import keras_gated.export.runtime as runtime
    import keras_gated.training.run_dir as run_dir
    import keras_gated.training.trainer as trainer

    def stop(step):
        def stand_in(*args, **kwargs):
            raise ReachedWork(step)

        return stand_in

    monkeypatch.setattr(trainer, "_model", stop("build the model"))
    # A real MultiWorkerMirroredStrategy configures this process's TensorFlow for good.
    monkeypatch.setattr(trainer, "distribution_strategy", lambda name: None)
    monkeypatch.setattr(run_dir, "load_model_file", stop("load the model"))
    monkeypatch.setattr(demo, "run_demo", stop("run the demo"))
    monkeypatch.setattr(sweep, "run_sweep", stop("run the sweep"))
    generate_ids_batch = runtime.OnnxLanguageModel.generate_ids_batch

    def tiny_only(self, prompts_ids, tokens=50, *args, **kwargs):
        if tokens > TINY_TOKENS:
            raise ReachedWork(f"generate {tokens} tokens")
        return generate_ids_batch(self, prompts_ids, tokens, *args, **kwargs)

    monkeypatch.setattr(runtime.OnnxLanguageModel, "generate_ids_batch", tiny_only)


def visible_lines(text):
    """The lines a terminal shows: of each, what follows its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line]


def contents(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in pathlib.Path(folder).rglob("*")
        if p.is_file()
    }


def run_in(folder, argv):
    """main(argv) in `folder`: (exit status or "reached", stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit:  # argparse: --help, --version, a bad command line
            status = exit.code
        except ReachedWork:
            status = "reached"
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("budget", tiers(300, 5000))
def test_every_command_line_exits_0_or_2_with_one_line(budget, template, stop_at_work):
    """Exit 0 with output, exit 2 with one line and every file as it was, or reach the work."""
    seen, log_level, files = {}, os.environ.get("TF_CPP_MIN_LOG_LEVEL"), contents(template)

    @budget
    @given(argv=command_lines())
    @example(argv=["generate", "--onnx", "lm.onnx", "--prompt", "abc", "--tokens", "5"])
    @example(argv=["train", "--corpus", "corpus", "--out", "fresh", "--units", "8"])
    @example(argv=["--version"])
    def check(argv):
        with tempfile.TemporaryDirectory() as scratch:
            folder = shutil.copytree(template, os.path.join(scratch, "w"), symlinks=True)
            status, out, err = run_in(folder, argv)
            after = contents(folder)
        seen[status] = seen.get(status, 0) + 1
        assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == log_level  # --verbose: only in main
        assert "Traceback" not in out + err, (argv, err)
        assert status in (0, 2, "reached"), (argv, status, err)
        if status == 2:
            *before, last = visible_lines(err) or [""]
            assert last.startswith("keras-gated") and ": error: " in last, (argv, err)
            assert all(NOTICE.match(line) or PROGRESS.search(line) for line in before), (argv, err)
            assert {k: after.get(k) for k in files} == files, (argv, err)
        elif status == 0:
            assert out and not err.strip(), (argv, out, err)

    check()
    # The draws reach each outcome: a refused line, a finished one, and one run up to its work.
    assert {0, 2, "reached"} <= set(seen), seen


def test_a_refused_train_force_keeps_the_run(template, tmp_path, stop_at_work):
    folder = shutil.copytree(template, tmp_path / "w")
    files = contents(folder / "run")
    status, _, err = run_in(folder, ["train", "--corpus", "missing", "--out", "run", "--force"])
    assert status == 2 and "corpus source not found" in err
    assert contents(folder / "run") == files


# -- as users see it: the console script in a process of its own ---------------------------
SCRIPT = os.path.join(os.path.dirname(sys.executable), "keras-gated")


TENSORFLOW = pytest.mark.slow  # the command imports TensorFlow: ~10 s of start-up each


def console_script(argv, folder):
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_GATED_TRACEBACK"}
    return subprocess.run(
        [SCRIPT, *argv], cwd=folder, capture_output=True, timeout=120, env=environment
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--units", "8,x", "--out", "r"],
        ["generate", "--onnx", "garbage.onnx", "--prompt", "to be"],
        ["generate", "--onnx", "lm.onnx", "--prompt", "abc", "--temperature", "nan"],
        ["diagnose", "--demo", "--sweep"],
        pytest.param(["train", "--corpus", "binary.txt", "--out", "r"], marks=TENSORFLOW),
        pytest.param(["generate", "run_bad_vocab", "--prompt", "to be"], marks=TENSORFLOW),
        pytest.param(["evaluate", "empty_dir"], marks=TENSORFLOW),
        pytest.param(["export", "run", "corpus"], marks=TENSORFLOW),
    ],
)
def test_the_console_script_prints_one_line_and_no_traceback(argv, template):
    done = console_script(argv, template)
    err = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(f"keras-gated {argv[0]}: error: "), err


def test_a_prompt_in_another_encoding_comes_back_as_its_bytes(template):
    """A byte that is not UTF-8 reaches Python as a surrogate escape; it is an unknown
    character to the tokenizer, and the echoed prompt is the byte the user typed."""
    prompt = b"\xff".decode("utf-8", "surrogateescape")
    done = console_script(
        ["generate", "--onnx", "lm.onnx", "--prompt", prompt, "--tokens", "3"], template
    )
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    # the 3 sampled tokens follow as text (one may be "<unk>": not a byte count)
    assert done.stdout.startswith(b"\xff") and done.stdout[1:].decode("utf-8").strip()
