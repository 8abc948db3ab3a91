"""A stateful layer carries its state through Keras's compiled steps on every backend.

On JAX a compiled step runs statelessly and writes back only the variables the model lists;
Keras's own stateful RNNs leave their states out there and never carry them in `fit` or
`predict` (docs/keras_upstream.md, 6). The oracle: the same layer called eagerly with the
states the first call ended in as its initial state.
"""

import keras
import numpy as np
import pytest

import keras_gated as kg


@pytest.mark.parametrize("layer_class", [kg.SimpleRNN, kg.LSTM, kg.GRU])
def test_state_carries_over_from_one_compiled_step_to_the_next(layer_class):
    rng = np.random.default_rng(0)
    x1, x2 = (rng.normal(size=(2, 3, 4)).astype("float32") for _ in range(2))
    inputs = keras.Input(batch_shape=(2, 3, 4))
    layer = layer_class(5, stateful=True, return_sequences=True, return_state=True)
    outputs = layer(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    twin = layer_class.from_config({**layer.get_config(), "stateful": False})
    twin(x1)
    twin.set_weights(layer.get_weights())

    first = model.predict_on_batch(x1)
    np.testing.assert_allclose([np.asarray(s) for s in layer.states], first[1:], atol=1e-6)
    second = model.predict_on_batch(x2)
    expected = twin(x2, initial_state=[keras.ops.convert_to_tensor(s) for s in first[1:]])
    for got, want in zip(second, expected):
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), atol=1e-5)

    layer.reset_states()
    model.train_on_batch(
        x1, [np.zeros((2, 3, 5), "float32")] + [np.zeros((2, 5), "float32")] * (len(first) - 1)
    )
    assert np.abs(np.asarray(layer.states[0])).sum() > 0  # the step wrote its final state
