"""The run directory's files: config with the corpus fingerprint, what changed, log trimming."""

import dataclasses
import json

import pytest

from keras_gated.data import load_corpus
from keras_gated.training import run_dir
from keras_gated.training.config import TrainConfig
from keras_gated.training.data import corpus_fingerprint, fingerprint_changes, fitting_batch_size


def _fingerprint(folder):
    return corpus_fingerprint(load_corpus(folder, verbose=False))


def test_fingerprint_names_what_changed(tiny_corpus):
    before = _fingerprint(tiny_corpus)
    assert fingerprint_changes(before, _fingerprint(tiny_corpus)) == ""
    assert fingerprint_changes(None, before) == ""  # a run that recorded none
    text = (tiny_corpus / "a.txt").read_text()
    (tiny_corpus / "a.txt").write_text(text.replace("cat", "dog", 1))
    assert (
        fingerprint_changes(before, _fingerprint(tiny_corpus))
        == "a has the same size but other text"
    )
    (tiny_corpus / "a.txt").write_text(text + " more")
    (tiny_corpus / "d.txt").write_text("a fourth play")
    changes = fingerprint_changes(before, _fingerprint(tiny_corpus))
    assert "d is new" in changes and "a has" in changes


def test_config_round_trips_with_its_fingerprint_and_old_configs_load(tmp_path, tiny_corpus):
    config = TrainConfig(corpus=str(tiny_corpus), units=16, embed_dim=16)
    fingerprint = _fingerprint(tiny_corpus)
    run_dir.save_config(tmp_path, config, fingerprint)
    assert run_dir.load_config(tmp_path) == (config, fingerprint)
    (tmp_path / run_dir.CONFIG).write_text(json.dumps(dataclasses.asdict(config)))
    assert run_dir.load_config(tmp_path) == (config, None)
    (tmp_path / run_dir.CONFIG).write_text('{"colour": 1}')
    with pytest.raises(ValueError, match="not a keras-gated config"):
        run_dir.load_config(tmp_path)


def test_start_refuses_an_existing_run_and_clears_only_its_own_files(tmp_path):
    config = TrainConfig()
    assert run_dir.check_start(tmp_path / "r", config) is False
    assert not (tmp_path / "r").exists()  # checking creates nothing
    run_dir.prepare(tmp_path / "r")
    run_dir.save_config(tmp_path / "r", config, None)
    (tmp_path / "r" / "mine.txt").write_text("keep")
    with pytest.raises(run_dir.RunExistsError, match="--force"):
        run_dir.check_start(tmp_path / "r", config)
    assert run_dir.check_start(tmp_path / "r", config, overwrite=True) is False
    assert (tmp_path / "r" / run_dir.CONFIG).exists()  # nor does it remove anything
    run_dir.prepare(tmp_path / "r", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["mine.txt"]


def _fake_run(folder, model=None):
    """A run directory with a config, a vocabulary and `model` (a Keras model, or None for
    placeholder bytes) as model.keras."""
    from keras_gated.data.tokenizers import WordTokenizer

    folder.mkdir()
    run_dir.save_config(folder, TrainConfig(), None)
    WordTokenizer().fit("to be or not to be").save(folder / run_dir.VOCAB)
    if model is None:
        (folder / run_dir.MODEL).write_bytes(b"not a model")
    else:
        model.save(folder / run_dir.MODEL)
    return folder


def _error_line(argv, capsys):
    """main(argv)'s exit status 2 and its one line on stderr."""
    from keras_gated.cli.main import main

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"keras-gated {argv[0]}: error: "), err
    return err


def test_a_config_nested_too_deeply_is_named(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    (run / run_dir.CONFIG).write_text("[" * 100_000)  # past Python's recursion limit
    err = _error_line(["evaluate", run], capsys)
    assert f"{run / run_dir.CONFIG} is not a keras-gated file: its JSON nests deeper" in err


def test_a_model_that_is_not_a_language_model_is_named(tmp_path, capsys):
    import keras

    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    run = _fake_run(tmp_path / "run", plain)
    for command in (["evaluate", run], ["generate", run, "--prompt", "to be"]):
        err = _error_line(command, capsys)
        assert (
            f"{run / run_dir.MODEL} holds a Sequential, not a keras_gated.LanguageModel" in err
        ), err


def test_trim_logs_keeps_complete_rows_before_the_checkpoint(tmp_path):
    (tmp_path / run_dir.LOG).write_text("epoch,loss\n0,2.0\n1,1.5\n2,1.")
    run_dir.trim_logs(tmp_path, 2)
    assert (tmp_path / run_dir.LOG).read_text().split() == ["epoch,loss", "0,2.0", "1,1.5"]


def test_batch_size_shrinks_to_the_smallest_split():
    ids = {"train": range(1000), "valid": range(50), "test": range(80)}
    assert fitting_batch_size(ids, 32, 9, verbose=False) == 5  # 50 // (9 + 1)
    assert fitting_batch_size(ids, 4, 9, verbose=False) == 4
    with pytest.raises(ValueError, match="one sequence needs seq_len \\+ 1 = 51"):
        fitting_batch_size(ids, 4, 50)


def test_resume_refuses_a_changed_config_but_more_epochs(tmp_path):
    config = TrainConfig(seq_len=8)
    run_dir.save_config(tmp_path, config, None)
    run_dir.check_resume(tmp_path, dataclasses.replace(config, epochs=9))
    with pytest.raises(ValueError, match="seq_len, units differ"):
        run_dir.check_resume(tmp_path, dataclasses.replace(config, seq_len=6, units=7))
