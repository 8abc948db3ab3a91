"""Each epoch's training windows (fixed or AWD-LSTM's variable lengths) and the learning rate
each window trains with."""

import keras
import numpy as np
import pytest

from keras_gated.data import bptt_batches
from keras_gated.training.windows import LengthScaledLearningRate, TrainingWindows

LR_RTOL = 1e-6  # the learning rate is a float32 variable: ~6e-8 relative rounding


def _windows(ids, **kw):
    return TrainingWindows(
        ids, **{"batch_size": 3, "seq_len": 10, "variable": True, "seed": 4, **kw}
    )


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_a_variable_epoch_trains_on_every_token_once(epoch):
    ids = np.random.default_rng(0).permutation(700)  # distinct ids
    windows = _windows(ids)
    batches = _batches(windows.dataset(epoch))
    assert [x.shape[1] for x, _ in batches] == windows.lengths(epoch)
    assert max(windows.lengths(epoch)) <= 10 + 20 and min(windows.lengths(epoch)[:-1]) >= 5
    steps = len(ids) // 3
    rows = ids[: 3 * steps].reshape(3, steps)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches], axis=1), rows[:, :-1])
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches], axis=1), rows[:, 1:])


def test_variable_boundaries_move_between_epochs_and_repeat_on_resume():
    ids = np.arange(900)
    assert _windows(ids).lengths(0) != _windows(ids).lengths(1)
    assert _windows(ids).lengths(3) == _windows(ids, seed=4).lengths(3)
    assert _windows(ids).lengths(3) != _windows(ids, seed=5).lengths(3)


@pytest.mark.parametrize("variable", [False, True])
def test_epochs_of_steps_per_epoch_windows_are_consecutive_slices_of_the_passes(variable):
    ids = np.arange(600)
    windows = _windows(ids, variable=variable, steps_per_epoch=7)
    passes = _windows(ids, variable=variable)
    whole = [b for p in range(4) for b in _batches(passes.dataset(p))]
    sliced = [b for e in range(5) for b in _batches(windows.dataset(e))]
    assert len(sliced) == 35 <= len(whole)
    for (x, y), (x_ref, y_ref) in zip(sliced, whole):
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)
    assert [t for e in range(5) for t in windows.lengths(e)] == [
        t for p in range(4) for t in passes.lengths(p)
    ][:35]


def test_fixed_epochs_are_the_bptt_batches():
    ids = np.arange(600)
    expected = _batches(bptt_batches(ids, 3, 10))
    windows = _windows(ids, variable=False)
    assert windows.lengths(2) == [10] * len(expected)
    for (x, y), (x_ref, y_ref) in zip(_batches(windows.dataset(2)), expected, strict=True):
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)


def test_each_window_trains_with_the_learning_rate_scaled_by_its_length():
    """What the optimizer reads inside each step: base * T_k / T; base again after it."""
    vocab, base = 50, 0.01
    model = keras.Sequential(
        [
            keras.Input((None,), batch_size=3, dtype="int32"),
            keras.layers.Embedding(vocab, 4),
            keras.layers.Dense(vocab),
        ]
    )
    model.compile(
        keras.optimizers.Adam(base),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    seen, train_step = [], model.train_step

    def recording_train_step(data):
        seen.append((data[0].shape[1], float(model.optimizer.learning_rate.numpy())))
        return train_step(data)

    model.train_step = recording_train_step
    windows = _windows(np.arange(450) % vocab)
    for epoch in range(2):
        model.fit(
            windows.dataset(epoch),
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
            shuffle=False,
            callbacks=[LengthScaledLearningRate(windows)],
        )
        lengths = windows.lengths(epoch)
        assert [t for t, _ in seen] == lengths and len(set(lengths)) > 3
        np.testing.assert_allclose(
            [lr for _, lr in seen], [base * t / 10 for t in lengths], rtol=LR_RTOL
        )
        assert float(model.optimizer.learning_rate.numpy()) == np.float32(base)
        seen.clear()
