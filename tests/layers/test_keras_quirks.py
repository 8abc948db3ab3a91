"""Keras behaviours written up in docs/keras_upstream.md, pinned: each test fails when Keras
changes the behaviour, so that page and our workarounds can follow. Beside each, ours keeps
clear of it."""

import keras
import numpy as np
import pytest

import keras_gated

B, T, D = 4, 9, 5


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_time_distributed_maps_over_batch_with_a_dynamic_time_axis(kind):
    import tensorflow as tf

    def shape(layer, spec):
        model = keras.Sequential([layer, keras.layers.TimeDistributed(keras.layers.Dense(3))])
        model.build((B, None, D))
        function = tf.function(model, input_signature=[tf.TensorSpec(spec)])
        return tuple(function(tf.zeros((B, T, D))).shape)

    builtin = getattr(keras.layers, kind)(8, return_sequences=True)
    ours = getattr(keras_gated, kind)(8, return_sequences=True)
    dynamic = shape(builtin, (B, None, D))
    assert dynamic in ((B, B, 3), (B, T, 3))  # (B, B, 3): Keras 3.15's bug (keras_upstream.md, 1)
    assert shape(ours, (B, None, D)) == dynamic  # ours as the built-in, bug or not (3.12: none)
    assert shape(builtin, (B, T, D)) == (B, T, 3)
    assert shape(ours, (B, T, D)) == (B, T, 3)  # a static time axis survives our layer


def test_builtin_simple_rnn_drops_its_activity_regularizer():
    x = np.ones((2, 3, 5), "float32")
    builtin = keras.layers.SimpleRNN(4, activity_regularizer="l2")
    builtin(x)
    assert builtin.activity_regularizer is None and not builtin.losses  # upstream, 2
    ours = keras_gated.SimpleRNN(4, activity_regularizer="l2")
    ours(x)
    assert len(ours.losses) == 1
