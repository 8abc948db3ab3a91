"""Checks of the arguments several parts take (cells, layers, the language model, batching,
the training config): each error names the argument and the value it got."""

import numpy as np


def positive_int(name, value):
    """`value` as a positive int; ValueError naming `name` otherwise (bools refused)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {name}={value!r}")
    return int(value)


def rate(name, value):
    """A dropout (or zoneout) rate `name` as a float in [0, 1); ValueError otherwise."""
    number = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not number or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {name}={value!r}")
    return float(value)
