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


def _copy_run(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run["out"], copy)
    return copy


def test_truncated_model_file_is_a_clear_error(run, tmp_path, capsys):
    copy = _copy_run(run, tmp_path)
    data = (copy / "model.keras").read_bytes()
    (copy / "model.keras").write_bytes(data[: len(data) // 2])
    assert main(["evaluate", str(copy)]) == 2
    assert "truncated or not a .keras file" in capsys.readouterr().err


def test_vocabulary_of_another_model_is_refused(run, tmp_path, capsys):
    from keras_gated.data import WordTokenizer

    copy = _copy_run(run, tmp_path)
    WordTokenizer().fit("just three words").save(copy / "vocab.json")
    assert main(["generate", str(copy), "--prompt", "to"]) == 2
    assert "does not match the model" in capsys.readouterr().err


def test_export_refuses_an_existing_file_and_an_unwritable_path(run, tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep me")
    assert main(["export", str(run["out"]), str(target)]) == 2
    assert target.read_bytes() == b"keep me" and "exists" in capsys.readouterr().err
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    assert main(["export", str(run["out"]), str(blocker / "m.onnx")]) == 2
    assert capsys.readouterr().err


def test_commands_write_only_inside_the_paths_they_are_given(run, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "given"
    argv = [a if a != str(run["out"]) else str(out) for a in run["argv"]]
    before = {p for p in tmp_path.rglob("*")}
    assert main(argv) == 0
    assert main(["export", str(out), str(out / "m.onnx")]) == 0
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(out in p.parents or p == out for p in created)
    assert list(cwd.iterdir()) == []
