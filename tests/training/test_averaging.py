"""NT-ASGD weight averaging: the trigger, the uniform mean since it, the swap for evaluation,
the saved best model and resuming."""

import json

import keras
import numpy as np
import pytest

from keras_gated.training import run_dir
from keras_gated.training.averaging import WeightAveraging, load_averages, should_start
from keras_gated.training.callbacks import RunCheckpoint

MEAN_ATOL = 1e-6  # a float32 running mean of weights ~1 against numpy's float64 mean


@pytest.mark.parametrize(
    "history,value,n,expected",
    [
        ([10, 9], 9.5, 2, False),  # needs more than n earlier evaluations
        ([10, 9, 9.5], 9.6, 2, False),  # not worse than the best before the last 2 (10)
        ([10, 9, 9.5, 9.6], 9.7, 2, True),  # worse than 9, the best before the last 2
        ([10, 9, 9.5, 9.6], 9.0, 2, False),  # equal is not worse
        ([5, 4, 3], 4.5, 1, True),  # worse than min(5, 4), though 3 came after
        ([5, 4, 3], 2.0, 1, False),
    ],
)
def test_averaging_starts_when_validation_is_worse_than_the_best_before_the_last_n(
    history, value, n, expected
):
    assert should_start(history, value, n) is expected


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _set_random_weights(model, rng):
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model.get_weights()


def _started(model, nonmono=2):
    averaging = WeightAveraging(nonmono)
    averaging.set_model(model)
    for epoch, value in enumerate([10.0, 9.0, 9.5, 9.6]):
        averaging.on_epoch_end(epoch, {"val_perplexity": value})
        assert not averaging.started
    averaging.on_epoch_end(4, {"val_perplexity": 9.7})
    assert averaging.started and averaging.history == [10.0, 9.0, 9.5, 9.6, 9.7]
    return averaging


def test_evaluation_sees_the_mean_since_the_start_and_training_the_raw_weights():
    model, rng = _model(), np.random.default_rng(0)
    averaging = _started(model)
    averaging.on_test_begin()  # no step averaged yet: the raw weights are evaluated
    raw = model.get_weights()
    averaging.on_test_end()
    for got, want in zip(model.get_weights(), raw, strict=True):
        np.testing.assert_array_equal(got, want)
    snapshots = []
    for step in range(5):
        snapshots.append(_set_random_weights(model, rng))  # w_s after training step s
        averaging.on_train_batch_end(step)
    averaging.on_test_begin()
    for got, *steps in zip(model.get_weights(), *snapshots, strict=True):
        np.testing.assert_allclose(
            got, np.mean(np.array(steps, np.float64), axis=0), atol=MEAN_ATOL
        )
    averaging.on_test_end()
    for got, want in zip(model.get_weights(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(got, want)
    averaging.on_epoch_end(5, {"val_perplexity": 1.0})  # once started, no more checks
    assert averaging.history == [10.0, 9.0, 9.5, 9.6, 9.7]


def test_the_saved_best_model_holds_the_average_and_the_checkpoint_the_raw_weights(tmp_path):
    model, rng = _model(), np.random.default_rng(1)
    averaging = _started(model, nonmono=2)
    snapshots = []
    for step in range(3):
        snapshots.append(_set_random_weights(model, rng))
        averaging.on_train_batch_end(step)

    def stateless(m):
        copy = keras.models.clone_model(m)
        copy.set_weights(m.get_weights())
        return copy

    checkpoint = RunCheckpoint(tmp_path, stateless, averaging=averaging)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(5, {"val_perplexity": 3.0})
    mean = [np.mean(np.array(steps, np.float64), axis=0) for steps in zip(*snapshots)]
    saved = keras.models.load_model(tmp_path / run_dir.MODEL)
    for got, want in zip(saved.get_weights(), mean, strict=True):
        np.testing.assert_allclose(got, want, atol=MEAN_ATOL)
    state = keras.models.load_model(tmp_path / run_dir.TRAIN_STATE)
    for got, want in zip(state.get_weights(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(model.get_weights(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(got, want)  # training goes on from the raw weights

    progress = json.loads((tmp_path / run_dir.PROGRESS).read_text())
    assert progress["averaging"] == {
        "history": [10.0, 9.0, 9.5, 9.6, 9.7],
        "started": True,
        "count": 3,
    }
    resumed = WeightAveraging(
        2, state=progress["averaging"], averages=load_averages(tmp_path / run_dir.AVERAGE)
    )
    resumed.set_model(model)
    with resumed.averaged():  # before any step of the resumed run
        for got, want in zip(model.get_weights(), mean, strict=True):
            np.testing.assert_allclose(got, want, atol=MEAN_ATOL)
    snapshots.append(_set_random_weights(model, rng))
    resumed.on_train_batch_end(0)
    with resumed.averaged():
        for got, *steps in zip(model.get_weights(), *snapshots, strict=True):
            np.testing.assert_allclose(
                got, np.mean(np.array(steps, np.float64), axis=0), atol=MEAN_ATOL
            )
    for got, want in zip(model.get_weights(), snapshots[-1], strict=True):
        np.testing.assert_array_equal(got, want)
