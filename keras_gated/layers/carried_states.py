"""The states stateful recurrent layers carry from call to call: which layers carry them, and
keeping them unchanged across work that runs the layers (a gradient probe, a parity check)."""

import contextlib

import keras
from keras import tree


def stateful_layers(model):
    """The layers of `model` (`model.layers`) that carry states: `stateful`, states created."""
    return [
        layer
        for layer in model.layers
        if getattr(layer, "stateful", False) and getattr(layer, "states", None) is not None
    ]


@contextlib.contextmanager
def kept_states(layers):
    """Within the block the `layers`' states may be assigned or advanced; on leaving it (an
    error included) each holds the values it held on entering."""
    saved = [
        [keras.ops.convert_to_numpy(v) for v in tree.flatten(layer.states)] for layer in layers
    ]
    try:
        yield
    finally:
        for layer, values in zip(layers, saved):
            for variable, value in zip(tree.flatten(layer.states), values):
                variable.assign(value)
