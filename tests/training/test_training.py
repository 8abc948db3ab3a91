"""Training end to end on tiny corpora: memorisation, resume, run directories."""

import csv
import json

import numpy as np
import pytest

import keras_gated as kg

WEIGHT_ATOL = 1e-5  # two float32 runs of the same steps agree to rounding


def _config(corpus, **kw):
    base = dict(
        corpus=str(corpus),
        embed_dim=12,
        units=12,
        batch_size=4,
        seq_len=8,
        epochs=2,
        steps_per_epoch=10,
        seed=3,
        xla=False,
    )
    return kg.TrainConfig(**{**base, **kw})


def test_a_repeated_sentence_is_memorised(tmp_path):
    (tmp_path / "c").mkdir()
    sentence = "one two three four five six seven eight nine ten .\n"
    for name in "abc":
        (tmp_path / "c" / f"{name}.txt").write_text(sentence * 60, encoding="utf-8")
    config = _config(
        tmp_path / "c",
        dropout=0.0,
        recurrent_dropout=0.0,
        embed_dropout=0.0,
        learning_rate=2e-2,
        epochs=10,
        steps_per_epoch=0,
        patience=10,
    )
    results = kg.train(config, tmp_path / "run", verbose=0)
    assert results["valid_perplexity"] < 1.1  # 12 distinct tokens: chance is 12


@pytest.mark.parametrize(
    "changes,gpu,xla",
    [
        ({}, False, True),
        ({"xla": False}, False, False),
        ({"cell": "keras-lstm"}, False, False),
        ({"strategy": "mirrored", "carry_state": False}, False, False),
        ({}, True, False),
    ],
)
def test_the_training_step_is_xla_compiled_for_our_cells_on_one_cpu(
    changes, gpu, xla, tiny_corpus, monkeypatch
):
    from keras_gated.layers import cudnn
    from keras_gated.training.trainer import build_model

    monkeypatch.setattr(cudnn, "gpu_available", lambda: gpu)
    model = build_model(_config(tiny_corpus, **{"xla": True, **changes}), vocab_size=20)
    assert model.jit_compile is xla


def test_run_directory_is_complete_and_loads(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    results = kg.train(_config(tiny_corpus), run, verbose=0)
    for name in (
        "model.keras",
        "vocab.json",
        "config.json",
        "log.csv",
        "results.json",
        "checkpoint/train_state.keras",
        "checkpoint/progress.json",
        "grad_norm.csv",
    ):
        assert (run / name).exists(), name
    model, tokenizer, config = kg.load_run(run)
    assert not model.stateful and config.seed == 3
    assert np.isfinite(results["test_perplexity"])
    with pytest.raises(ValueError, match="force"):
        kg.train(_config(tiny_corpus, units=16, embed_dim=16), run, verbose=0)


@pytest.mark.slow  # covered by test_last_good_checkpoint.py's exact resume from epoch 1
def test_resume_continues_where_it_stopped(tiny_corpus, tmp_path):
    """1 epoch, then resume to 2 == 2 epochs straight (dropout on, same seed)."""
    kg.train(_config(tiny_corpus), tmp_path / "straight", verbose=0)
    kg.train(_config(tiny_corpus, epochs=1), tmp_path / "resumed", verbose=0)
    assert (
        json.loads((tmp_path / "resumed/checkpoint/progress.json").read_text())["epochs_done"] == 1
    )
    kg.train(_config(tiny_corpus), tmp_path / "resumed", verbose=0)
    assert (
        json.loads((tmp_path / "resumed/checkpoint/progress.json").read_text())["epochs_done"] == 2
    )
    import keras

    a = keras.models.load_model(tmp_path / "straight/checkpoint/train_state.keras")
    b = keras.models.load_model(tmp_path / "resumed/checkpoint/train_state.keras")
    assert int(a.optimizer.iterations) == int(b.optimizer.iterations) == 20
    for p, q in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_allclose(p, q, atol=WEIGHT_ATOL)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, atol=WEIGHT_ATOL)


@pytest.mark.slow  # covered by tests/training/test_run_dir.py
def test_resume_refuses_a_changed_config(tiny_corpus, tmp_path):
    kg.train(_config(tiny_corpus, epochs=1), tmp_path / "r", verbose=0)
    with pytest.raises(ValueError, match="seq_len"):
        kg.train(_config(tiny_corpus, seq_len=6), tmp_path / "r", verbose=0)


@pytest.mark.parametrize(
    "field,value",
    [("units", 0), ("dropout", 1.0), ("seq_len", -1), ("level", "byte"), ("learning_rate", 0.0)],
)
def test_bad_config_names_the_field(field, value, tiny_corpus):
    with pytest.raises(ValueError, match=field):
        _config(tiny_corpus, **{field: value}).validate()


def test_sequence_longer_than_the_corpus_is_a_clear_error(tiny_corpus, tmp_path):
    with pytest.raises(ValueError, match="seq_len"):
        kg.train(_config(tiny_corpus, seq_len=5000), tmp_path / "r", verbose=0)


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_corpus, tmp_path):
    import keras

    run = tmp_path / "r"
    kg.train(_config(tiny_corpus, epochs=1), run, verbose=0)
    good = (run / "model.keras").read_bytes()
    state = keras.models.load_model(run / "checkpoint/train_state.keras")
    kernel = state.rnn_layers[0].cell.kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))  # poison the resumable state
    state.save(run / "checkpoint/train_state.keras")
    results = kg.train(_config(tiny_corpus, epochs=2), run, verbose=0)
    assert "non-finite loss" in results["stopped"] and "epoch 2, step 1" in results["stopped"]
    assert (run / "model.keras").read_bytes() == good
    assert json.loads((run / "checkpoint/progress.json").read_text())["epochs_done"] == 1


@pytest.mark.slow  # covered by tests/training/test_run_dir.py
def test_force_retrains_from_scratch(tiny_corpus, tmp_path):
    run = tmp_path / "r"
    kg.train(_config(tiny_corpus, epochs=1), run, verbose=0)
    (run / "stranger.txt").write_text("not ours")
    results = kg.train(
        _config(tiny_corpus, epochs=1, units=16, embed_dim=16), run, overwrite=True, verbose=0
    )
    assert results["epochs"] == 1
    assert json.loads((run / "checkpoint/progress.json").read_text())["epochs_done"] == 1
    assert kg.load_run(run)[0].units == 16
    assert (run / "stranger.txt").exists()  # only the run's own files are removed


@pytest.mark.slow  # covered by tests/training/test_run_dir.py
def test_resume_drops_log_rows_past_the_checkpoint(tiny_corpus, tmp_path):
    """A kill after logging epoch 2 but before its checkpoint (or mid-line) leaves no stray row."""
    import csv

    run = tmp_path / "r"
    kg.train(_config(tiny_corpus, epochs=1), run, verbose=0)
    with open(run / "log.csv", "a", encoding="utf-8") as f:
        f.write("1,0.003,9.9,99.0,9.9,99.0\n2,0.00")  # an epoch never checkpointed, a torn line
    kg.train(_config(tiny_corpus, epochs=2), run, verbose=0)
    rows = list(csv.DictReader(open(run / "log.csv", encoding="utf-8")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert float(rows[1]["loss"]) != 9.9


AWD = dict(
    variable_bptt=True,
    nonmono=1,
    patience=3,
    steps_per_epoch=6,
    dropout=0.0,
    recurrent_dropout=0.0,
    embed_dropout=0.0,
    learning_rate=1e-2,
)


def test_awd_windows_and_averaging_train_and_save_the_average(tiny_corpus, tmp_path, monkeypatch):
    """Variable windows, averaging started after epoch 1: the best model, from epoch 2,
    holds the average of epoch 2's steps; the checkpoint the raw weights."""
    import keras

    from keras_gated.training import averaging
    from keras_gated.training.data import load_split_ids
    from keras_gated.training.windows import TrainingWindows

    monkeypatch.setattr(averaging, "should_start", lambda history, value, nonmono: True)
    run = tmp_path / "run"
    kg.train(_config(tiny_corpus, **AWD), run, verbose=0)
    _, ids, _ = load_split_ids(_config(tiny_corpus))
    windows = TrainingWindows(ids["train"], 4, 8, variable=True, seed=3, steps_per_epoch=6)
    assert len(set(windows.lengths(0) + windows.lengths(1))) > 3
    progress = json.loads((run / "checkpoint/progress.json").read_text())
    assert progress["averaging"]["count"] == 6  # epoch 2's steps
    rows = list(csv.DictReader(open(run / "log.csv", encoding="utf-8")))
    assert len(rows) == 2 and progress["best"] == pytest.approx(float(rows[1]["val_perplexity"]))
    average = averaging.load_averages(run / "checkpoint/average.npz")
    best = kg.load_run(run)[0]
    for p, q in zip(best.trainable_weights, average, strict=True):
        np.testing.assert_allclose(p.numpy(), q, atol=WEIGHT_ATOL)
    raw = keras.models.load_model(run / "checkpoint/train_state.keras")
    assert int(raw.optimizer.iterations) == 12
    assert not np.allclose(raw.trainable_weights[0].numpy(), average[0], atol=WEIGHT_ATOL)


@pytest.mark.slow  # covered by test_averaging.py's resume and test_windows.py's seeded passes
def test_awd_windows_and_averaging_resume_exactly(tiny_corpus, tmp_path, monkeypatch):
    """1 epoch, then resume to 2 == 2 epochs straight, averaging started after epoch 1."""
    import keras

    from keras_gated.training import averaging

    monkeypatch.setattr(averaging, "should_start", lambda history, value, nonmono: True)
    kg.train(_config(tiny_corpus, **AWD), tmp_path / "straight", verbose=0)
    kg.train(_config(tiny_corpus, **{**AWD, "epochs": 1}), tmp_path / "resumed", verbose=0)
    kg.train(_config(tiny_corpus, **AWD), tmp_path / "resumed", verbose=0)
    files = ("checkpoint/train_state.keras", "model.keras")
    for a, b in [
        [keras.models.load_model(tmp_path / run / f) for run in ("straight", "resumed")]
        for f in files
    ]:
        for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_allclose(p, q, atol=WEIGHT_ATOL)
    progress = [
        json.loads((tmp_path / run / "checkpoint/progress.json").read_text())
        for run in ("straight", "resumed")
    ]
    assert progress[0]["averaging"] == progress[1]["averaging"]
