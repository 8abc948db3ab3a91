"""Zoneout (Krueger et al. 2016): each unit of a state keeps its previous value at random.

For a state s (h, or an LSTM's c) with rate p, s'_t the value the cell's equations give:
    (Z1) s_t = d_t * s_{t-1} + (1 - d_t) * s'_t     training, d_t ~ Bernoulli(p) (B, U)
    (Z2) s_t = p * s_{t-1} + (1 - p) * s'_t         inference: the expectation of (Z1)
d_t is fresh at every step by default, as in the paper; one d per sequence for all steps with
`zoneout_variational=True`. A layer draws all of a call's masks before its loop (T, B, U), so
the loop itself stays stateless (JAX's `lax.scan`).
"""

import keras
from keras import ops


def zoned(prev, new, rate, keep=None):
    """s_t from s_{t-1} `prev` and s'_t `new`: (Z1) with the mask `keep` (1 keeps the previous
    value), (Z2) without it; `new` itself when `rate` is 0."""
    if rate == 0.0:
        return new
    if keep is None:
        return rate * prev + (1.0 - rate) * new  # (Z2)
    return keep * prev + (1.0 - keep) * new  # (Z1)


def draw_masks(rates, shape, seed_generator, dtype):
    """{state: d (*shape) of 0/1, each entry 1 with probability p} for each state whose rate
    p in `rates` ({state: p}) is not 0."""
    return {
        state: ops.cast(keras.random.uniform(shape, seed=seed_generator) < rate, dtype)
        for state, rate in rates.items()
        if rate > 0.0
    }
