"""Weight dropout (DropConnect on the recurrent kernel): U~ = U * M_U, one mask per call, the
same at every step and for every sequence of the batch, none at inference.

A linear SimpleRNN with W = I and b = 0 reads U~ off its own outputs: feed row j the one-hot
x_1 = e_j and zeros afterwards, so h_1 = e_j, h_2 = e_j U~ (row j of U~) and h_3 = h_2 U~.
With B = U rows, H_2 is U~ itself and H_3 = U~ U~ when the mask is shared over time.
"""

import keras
import numpy as np
import pytest

import keras_gated

UNITS = 16  # 256 mask entries: the drop fraction is p +- 0.03 (one standard deviation)
RATE = 0.5
# float32 products of O(1) values: rounding O(1e-7); 1e-5 leaves margin and fails on a
# wrong mask entry (O(1) each).
ATOL = 1e-5


def probe(layer_kwargs=None, training=True, calls=1):
    rng = np.random.default_rng(0)
    U = rng.normal(size=(UNITS, UNITS)).astype("float32")
    x = np.zeros((UNITS, 3, UNITS), "float32")
    x[:, 0] = np.eye(UNITS)
    layer = keras_gated.SimpleRNN(
        UNITS,
        activation="linear",
        weight_dropout=RATE,
        seed=3,
        return_sequences=True,
        **(layer_kwargs or {}),
    )
    layer(x)
    layer.cell.kernel.assign(np.eye(UNITS, dtype="float32"))
    layer.cell.recurrent_kernel.assign(U)
    layer.cell.bias.assign(np.zeros(UNITS, "float32"))
    outs = [keras.ops.convert_to_numpy(layer(x, training=training)) for _ in range(calls)]
    return U, outs


def test_one_mask_per_call_shared_by_every_step_and_sequence():
    U, [h] = probe()
    U_dropped = h[:, 1]  # row j: h_2 = e_j U~
    kept = np.abs(U_dropped) > 0
    np.testing.assert_allclose(U_dropped[kept], U[kept] / (1 - RATE), rtol=1e-6)
    assert 0.35 < 1 - kept.mean() < 0.65
    np.testing.assert_allclose(h[:, 2], U_dropped @ U_dropped, atol=ATOL)  # the same U~ at t=3


def test_a_new_mask_each_call():
    _, (first, second) = probe(calls=2)
    assert not np.array_equal(np.abs(first[:, 1]) > 0, np.abs(second[:, 1]) > 0)


def test_no_dropout_at_inference():
    U, [h] = probe(training=False)
    np.testing.assert_allclose(h[:, 1], U, atol=ATOL)


def test_config_round_trip_and_checked_rate():
    layer = keras_gated.LSTM(4, weight_dropout=0.25)
    assert keras_gated.LSTM.from_config(layer.get_config()).weight_dropout == 0.25
    with pytest.raises(ValueError, match="weight_dropout"):
        keras_gated.GRU(4, weight_dropout=1.0)
