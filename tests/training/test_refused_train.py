"""A refused `keras-gated train` is one line naming the option or file, and changes nothing:
not even with --force is the run in --out removed before the corpus, settings and model load."""

import pytest

from keras_gated.cli.main import main
from keras_gated.training import run_dir
from tests.conftest import train_argv, write_corpus
from tests.training.conftest import tree_bytes


@pytest.fixture
def old_run(tmp_path):
    """(corpus, run): a small corpus, and a run's files (placeholders) in `run`."""
    corpus = write_corpus(tmp_path / "corpus", lines=(30, 8, 8), per_line=6)
    run = tmp_path / "run"
    run.mkdir()
    for name in (run_dir.CONFIG, run_dir.VOCAB, run_dir.MODEL, run_dir.PROGRESS):
        (run / name).parent.mkdir(exist_ok=True)
        (run / name).write_text(f"the old run's {name}")
    return corpus, run


def _refused(argv, capsys):
    """main(argv)'s one line of error (exit status 2)."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("keras-gated train: error: "), err
    return err


@pytest.mark.parametrize(
    "options,needle",
    [
        (["--corpus", "{tmp}/missing"], "corpus source not found"),
        (["--seq-len", "100000"], "seq_len"),  # longer than the splits
        (["--units", "8,8,8", "--layers", "2", "--embed-dim", "8"], "units"),  # the model refuses
    ],
)
def test_a_refused_train_force_keeps_the_old_run(options, needle, old_run, tmp_path, capsys):
    corpus, run = old_run
    before = tree_bytes(run)
    options = [o.format(tmp=tmp_path) for o in options]
    err = _refused([*train_argv(corpus, run), *options, "--force"], capsys)
    assert needle in err, err
    assert tree_bytes(run) == before


def test_out_that_is_a_file_is_named(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    err = _refused(["train", "--corpus", tmp_path / "missing", "--out", target], capsys)
    assert f"--out {str(target)!r} is a file, not a run directory" in err, err
    assert target.read_text() == "mine"


@pytest.mark.parametrize(
    "flag,value,needle",
    [
        ("--learning-rate", "inf", "`learning_rate` must be a finite number, got inf"),
        ("--clipnorm", "inf", "`clipnorm` must be a finite number, got inf"),
        ("--ar-alpha", "inf", "`ar_alpha` must be a finite number, got inf"),
        ("--tar-beta", "inf", "`tar_beta` must be a finite number, got inf"),
        ("--learning-rate", "nan", "`learning_rate` must be > 0, got nan"),
        ("--seed", "-1", "`seed` must be an integer in [0, 2**32), got -1"),
        ("--seed", str(2**40), f"`seed` must be an integer in [0, 2**32), got {2**40}"),
    ],
)
def test_out_of_range_numbers_name_the_option(flag, value, needle, tmp_path, capsys):
    # a missing corpus: a value let through would fail later, on the corpus
    err = _refused(
        ["train", "--corpus", tmp_path / "missing", flag, value, "--out", tmp_path / "run"], capsys
    )
    assert needle in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("units", ["8,x", "8,,8", "8.5", ""])
def test_a_bad_units_list_says_what_is_expected(units, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--units", units, "--out", "run"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1, err
    assert (
        f"argument --units: expected positive integers separated by commas, got {units!r}"
    ) in err, err


def test_a_width_below_one_names_units(tmp_path, capsys):
    err = _refused(
        ["train", "--corpus", tmp_path / "missing", "--units", "8,0", "--out", tmp_path / "run"],
        capsys,
    )
    assert "`units` must be a positive integer or a list of them, got [8, 0]" in err, err
