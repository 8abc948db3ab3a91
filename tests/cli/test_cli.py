"""The keras-gated command on a tiny corpus: each subcommand works, bad input exits non-zero."""

import json
import os
import subprocess
import sys

import pytest

import keras_gated
from keras_gated.cli.main import main
from tests.conftest import train_argv, write_corpus


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    words = "to be or not that is the question whether tis nobler".split()
    corpus = write_corpus(root / "corpus", words, lines=(200, 50, 50), per_line=8, seed=1)
    out = root / "run"
    argv = [
        "train",
        "--corpus",
        str(corpus),
        "--units",
        "8",
        "--embed-dim",
        "8",
        "--batch-size",
        "4",
        "--seq-len",
        "6",
        "--epochs",
        "1",
        "--xla",
        "false",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    return {"root": root, "corpus": corpus, "out": out, "argv": argv}


def test_train_evaluate_generate(run, capsys):
    assert main(["evaluate", str(run["out"])]) == 0
    assert "test perplexity" in capsys.readouterr().out
    assert (
        main(["generate", str(run["out"]), "--prompt", "to be", "--tokens", "5", "--seed", "1"])
        == 0
    )
    assert capsys.readouterr().out.startswith("to be ")


def test_train_options_reach_the_config(run):
    from keras_gated.training.run_dir import load_config

    config, fingerprint = load_config(run["out"])
    assert (config.units, config.batch_size, config.seq_len) == (8, 4, 6)
    assert [d[1] for d in fingerprint["documents"]] == ["c", "a", "b"]


def test_train_refuses_to_overwrite_a_run_without_force(run, capsys):
    argv = [a if a != "8" else "10" for a in run["argv"]]  # another config, same --out
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--corpus", "/no/such/corpus", "--out", "{root}/x"], "not found"),
        (["train", "--corpus", "{corpus}", "--units", "0", "--out", "{root}/x"], "units"),
        (["train", "--corpus", "{corpus}", "--dropout", "1.5", "--out", "{root}/x"], "dropout"),
        (["train", "--corpus", "{corpus}", "--seq-len", "100000", "--out", "{root}/x"], "seq_len"),
        (["evaluate", "{root}/missing"], "missing"),
        (["generate", "{out}", "--prompt", "to", "--temperature", "0"], "temperature"),
        (["generate", "--prompt", "to"], "exactly one"),
        (["export", "{out}", "{root}"], "directory"),
    ],
)
def test_bad_input_gets_a_clear_message_and_nonzero_exit(run, capsys, argv, needle):
    argv = [a.format(root=run["root"], corpus=run["corpus"], out=run["out"]) for a in argv]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1 and err.startswith(f"keras-gated {argv[0]}: error: "), err


def test_unexpected_errors_are_one_line_unless_tracebacks_are_asked_for(run, capsys, monkeypatch):
    from keras_gated.cli import commands

    def broken(args):
        raise KeyError("no such key")

    monkeypatch.setitem(commands.COMMANDS, "evaluate", broken)
    assert main(["evaluate", str(run["out"])]) == 2
    assert capsys.readouterr().err == "keras-gated evaluate: error: KeyError: 'no such key'\n"
    monkeypatch.setenv("KERAS_GATED_TRACEBACK", "1")
    with pytest.raises(KeyError):
        main(["evaluate", str(run["out"])])


def test_binary_corpus_is_refused(run, capsys, tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    assert main(["train", "--corpus", str(tmp_path / "bin.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "bin.txt" in capsys.readouterr().err


def test_bad_flag_value_exits_nonzero():
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--units", "many", "--out", "x"])
    assert exit_info.value.code != 0


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "keras-gated")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"keras-gated {keras_gated.__version__}"


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


def test_changed_corpus_is_refused_by_evaluate_and_resume(run, tmp_path, capsys):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(run["corpus"], corpus)
    copy = _copy_run(run, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["corpus"] = str(corpus)
    config["corpus_fingerprint"]["source"] = str(corpus)
    (copy / "config.json").write_text(json.dumps(config))
    vocab = (copy / "vocab.json").read_bytes()
    assert main(["evaluate", str(copy)]) == 0
    capsys.readouterr()
    with open(corpus / "a.txt", "a", encoding="utf-8") as f:
        f.write("\nnew words")
    assert main(["evaluate", str(copy)]) == 2
    err = capsys.readouterr().err
    assert (
        "changed since this run was trained" in err and "a has 7,730 characters, was 7,720" in err
    )
    argv = [a if a != str(run["out"]) else str(copy) for a in run["argv"]]
    argv[argv.index("--corpus") + 1] = str(corpus)
    assert main([*argv, "--epochs", "2"]) == 2
    assert "changed since this run was trained" in capsys.readouterr().err
    assert (copy / "vocab.json").read_bytes() == vocab


def test_resume_reads_the_saved_vocabulary(run, tmp_path, capsys):
    copy = _copy_run(run, tmp_path)
    vocab = (copy / "vocab.json").read_bytes()
    argv = [a if a != str(run["out"]) else str(copy) for a in run["argv"]]
    assert main([*argv, "--epochs", "2"]) == 0
    assert (copy / "vocab.json").read_bytes() == vocab
    assert json.loads((copy / "results.json").read_text())["epochs"] == 2


def test_a_corpus_smaller_than_one_batch_trains_and_evaluates(tmp_path, capsys):
    words = "to be or not that is the question".split()
    corpus = write_corpus(tmp_path / "corpus", words, lines=(40, 5, 5), per_line=8, seed=2)
    argv = [
        "train",
        "--corpus",
        str(corpus),
        "--units",
        "8",
        "--embed-dim",
        "8",
        "--seq-len",
        "6",
        "--epochs",
        "1",
        "--xla",
        "false",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 0  # valid and test hold 5 lines x 8 words + 4 <eol> = 44 tokens
    assert "using batch_size 6" in capsys.readouterr().err  # 44 // (6 + 1)
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert "test perplexity" in capsys.readouterr().out


def test_a_corpus_too_small_for_one_sequence_says_how_much_text_it_needs(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", lines=(3, 1, 1), per_line=4)
    assert main(["train", "--corpus", str(corpus), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "has 4 tokens, but one sequence needs seq_len + 1 = 36" in err
    assert "at least 36 tokens" in err and "--seq-len" in err


def test_generated_text_is_the_prompt_then_its_continuation(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be, or not to be: that is the question.\n" * 60, encoding="utf-8")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--corpus",
                str(corpus),
                "--level",
                "char",
                "--units",
                "8",
                "--embed-dim",
                "8",
                "--batch-size",
                "2",
                "--seq-len",
                "8",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "2",
                "--xla",
                "false",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["export", str(out), str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    texts = []
    for source in ([str(out)], ["--onnx", str(tmp_path / "m.onnx")]):
        assert main(["generate", *source, "--prompt", "To b", "--tokens", "6", "--seed", "3"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and texts[0].startswith("To b") and len(texts[0]) == 4 + 6 + 1


def test_a_keras_lstm_run_exports(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", lines=(40, 10, 10), per_line=6)
    out = tmp_path / "run"
    assert main([*train_argv(corpus, out, epochs=1), "--cell", "keras-lstm"]) == 0
    assert main(["export", str(out), str(tmp_path / "m.onnx")]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["generate", "--onnx", str(tmp_path / "m.onnx"), "--prompt", "the cat"]) == 0
