"""Every Keras constructor option of the grammar: ours accepts it, keeps it in get_config,
round-trips the config and computes what the built-in computes with copied weights, as a layer
and as a cell inside keras.layers.RNN."""

import hypothesis.strategies as st
import keras
import numpy as np
from hypothesis import given

from tests.differential import grammar
from tests.differential.build import KERAS_CELLS, KERAS_LAYERS, OURS_CELLS, OURS_LAYERS
from tests.differential.compare import assert_close
from tests.differential.profiles import budget, tried


@budget("constructor")
@given(spec=grammar.cells(), as_cell=st.booleans(), seed=st.integers(0, 2**16))
def test_constructor_accepts_keras_options(spec, as_cell, seed):
    tried("constructor")
    keras.backend.clear_session()
    kw = spec.kw
    if as_cell:
        ours = keras.layers.RNN(OURS_CELLS[spec.kind](spec.units, **kw), return_sequences=True)
        ref = keras.layers.RNN(KERAS_CELLS[spec.kind](spec.units, **kw), return_sequences=True)
        configured = ours.cell
    else:
        ours = OURS_LAYERS[spec.kind](spec.units, return_sequences=True, **kw)
        ref = KERAS_LAYERS[spec.kind](spec.units, return_sequences=True, **kw)
        configured = ours
    config = configured.get_config()
    for name, value in kw.items():
        assert name in config and config[name] == value, (name, config.get(name), value)
    assert type(configured).from_config(config).get_config() == config

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    ref(x)
    ours(x)
    weights = [rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    assert_close(ours(x, training=False), ref(x, training=False), "layer output")
