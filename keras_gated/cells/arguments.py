"""Checks of the arguments cells and layers share; each error names the argument."""


def check_units(units):
    """`units` as a positive int."""
    if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
        raise ValueError(f"`units` must be a positive integer, got units={units!r}")
    return units


def check_rate(name, rate):
    """A dropout rate `name` as a float in [0, 1)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {name}={rate!r}")
    return float(rate)
