"""The warning when validation perplexity is worse than uniform over the vocabulary."""

import math
import warnings

import pytest

import keras_gated as kg
from keras_gated.training import WarnWorseThanUniform, WorseThanUniformWarning

V = 10_000


def _epoch_end(logs, epoch=0, vocab_size=V):
    """The warnings `WarnWorseThanUniform` emits at the end of `epoch` with `logs`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        WarnWorseThanUniform(vocab_size).on_epoch_end(epoch, logs)
    return [w for w in caught if issubclass(w.category, WorseThanUniformWarning)]


@pytest.mark.parametrize("value", [V + 0.01, 14_418.0, math.inf])
def test_warns_when_validation_perplexity_exceeds_the_vocabulary_size(value):
    (warning,) = _epoch_end({"perplexity": 300.0, "val_perplexity": value}, epoch=2)
    message = str(warning.message)
    assert "epoch 3" in message
    assert f"val_perplexity {value:,.1f} (training perplexity 300.0)" in message
    assert "uniform over the vocabulary (perplexity 10,000)" in message
    assert "--carry-state false" in message


def test_the_message_leaves_out_a_missing_training_perplexity():
    (warning,) = _epoch_end({"val_perplexity": 2 * V})
    assert "epoch 1: val_perplexity 20,000.0 is worse" in str(warning.message)


@pytest.mark.parametrize(
    "logs",
    [
        {"val_perplexity": V},  # a uniform model: equal, not worse
        {"val_perplexity": V - 0.01},
        {"val_perplexity": 255.0},
        {"perplexity": 2 * V},  # training perplexity only: no validation this epoch
        {"val_perplexity": math.nan},
        {},
        None,
    ],
)
def test_silent_otherwise(logs):
    assert _epoch_end(logs) == []


def test_train_warns_when_validation_is_unseen_words(tmp_path):
    """Three files, one per split, with disjoint words: whichever trains, the validation
    targets are <unk> (and line ends), never a training target, so the model gives <unk> far
    less than 1/V (seed 0: perplexity ~75 against V = 5)."""
    words = ("one two three four five", "alpha beta gamma delta epsilon", "red green blue")
    (tmp_path / "corpus").mkdir()
    for name, line in zip("abc", words):
        (tmp_path / "corpus" / f"{name}.txt").write_text(f"{line}\n" * 40, encoding="utf-8")
    config = kg.TrainConfig(
        corpus=str(tmp_path / "corpus"),
        cell="gru",
        embed_dim=8,
        units=8,
        batch_size=2,
        seq_len=8,
        epochs=1,
        steps_per_epoch=30,
        learning_rate=2e-2,
        xla=False,
        seed=0,
    )
    with pytest.warns(WorseThanUniformWarning, match=r"epoch 1: val_perplexity .* is worse"):
        results = kg.train(config, tmp_path / "run", verbose=0)
    _, tokenizer, _ = kg.load_run(tmp_path / "run")
    assert results["valid_perplexity"] > tokenizer.vocab_size
