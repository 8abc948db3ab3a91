"""The keras-gated command on a tiny corpus: each subcommand works, bad input exits non-zero."""

import subprocess
import sys

import pytest

from keras_gated.cli.main import main
from tests.conftest import write_corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    words = "to be or not that is the question whether tis nobler".split()
    corpus = write_corpus(root / "corpus", words, lines=(200, 50, 50), per_line=8, seed=1)
    out = root / "run"
    argv = ["train", "--corpus", str(corpus), "--units", "8", "--embed-dim", "8",
            "--batch-size", "4", "--seq-len", "6", "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    return {"root": root, "corpus": corpus, "out": out, "argv": argv}


def test_train_evaluate_generate(run, capsys):
    assert main(["evaluate", str(run["out"])]) == 0
    assert "test perplexity" in capsys.readouterr().out
    assert main(["generate", str(run["out"]), "--prompt", "to be", "--tokens", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("to be ")


def test_train_refuses_to_overwrite_a_run_without_force(run, capsys):
    argv = [a if a != "8" else "10" for a in run["argv"]]  # another config, same --out
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("argv,needle", [
    (["train", "--corpus", "/no/such/corpus", "--out", "{root}/x"], "not found"),
    (["train", "--corpus", "{corpus}", "--units", "0", "--out", "{root}/x"], "units"),
    (["train", "--corpus", "{corpus}", "--dropout", "1.5", "--out", "{root}/x"], "dropout"),
    (["train", "--corpus", "{corpus}", "--seq-len", "100000", "--out", "{root}/x"], "seq_len"),
    (["evaluate", "{root}/missing"], "missing"),
    (["generate", "{out}", "--prompt", "to", "--temperature", "0"], "temperature"),
    (["generate", "--prompt", "to"], "exactly one"),
    (["export", "{out}", "{root}"], "directory"),
])
def test_bad_input_gets_a_clear_message_and_nonzero_exit(run, capsys, argv, needle):
    argv = [a.format(root=run["root"], corpus=run["corpus"], out=run["out"]) for a in argv]
    assert main(argv) != 0
    assert needle in capsys.readouterr().err


def test_binary_corpus_is_refused(run, capsys, tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    assert main(["train", "--corpus", str(tmp_path / "bin.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "bin.txt" in capsys.readouterr().err


def test_bad_flag_value_exits_nonzero():
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--units", "many", "--out", "x"])
    assert exit_info.value.code != 0


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "keras_gated.cli.main", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "generate" in done.stdout
