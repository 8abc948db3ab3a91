"""Shared test helpers: the cell variants under test, random weights and Keras built-ins.

Nothing here imports `keras_gated`; the library is only touched by the test files.
Weights are random everywhere: constant weights hide swapped gates (STYLE.md, Traps).
"""

import contextlib
import dataclasses

import keras
import numpy as np
import pytest

from tests.oracles import numpy_rnn

# Sizes small enough for the whole suite to stay fast; units != input dim on purpose.
B, T, D, U = 3, 5, 4, 6

# float32 Keras against the float64 oracle: values are O(1) and the rounding error of
# T=5 steps of small matmuls is O(1e-6), so 1e-5 leaves a 10x margin.
ATOL_F32 = 1e-5


@dataclasses.dataclass(frozen=True)
class Case:
    """One cell variant: kind in {"simple_rnn", "lstm", "gru"} plus its constructor options."""

    kind: str
    options: tuple = ()  # sorted (name, value) pairs so the case is hashable

    @classmethod
    def of(cls, kind, **options):
        return cls(kind, tuple(sorted(options.items())))

    @property
    def kw(self):
        return dict(self.options)

    @property
    def id(self):
        return "-".join([self.kind] + [f"{k}={v}" for k, v in self.options])

    @property
    def has_builtin(self):
        """Whether a Keras built-in layer computes the same function."""
        return not (self.kw.get("peephole") or self.kw.get("layer_norm"))

    @property
    def n_states(self):
        return 2 if self.kind == "lstm" else 1


SIMPLE_CASES = [Case.of("simple_rnn", activation=a) for a in ("tanh", "relu", "sigmoid", "linear")]
LSTM_CASES = [
    Case.of("lstm"),
    Case.of("lstm", peephole=True),
    Case.of("lstm", layer_norm=True),
    # Both: the peephole term is added after the normalisation (the cell's docstring, eq. 2).
    Case.of("lstm", layer_norm=True, peephole=True),
]
GRU_CASES = [Case.of("gru", reset_after=True), Case.of("gru", reset_after=False)]
ALL_CASES = SIMPLE_CASES + LSTM_CASES + GRU_CASES
BUILTIN_CASES = [c for c in ALL_CASES if c.has_builtin]
# One representative per kind, for the slower behavioural tests.
KIND_CASES = [SIMPLE_CASES[0], LSTM_CASES[0], GRU_CASES[0]]


# The cases the default (not slow) run keeps where a test's full matrix is slow on JAX and torch:
# one per kind plus the LSTM with both options; the oracle and gradient tests cover every case.
FAST_CASES = KIND_CASES + [Case.of("lstm", layer_norm=True, peephole=True)]


def cases_slow_beyond(cases, fast=FAST_CASES):
    """`cases` as pytest params, those not in `fast` marked slow (run them with -m slow)."""
    return [pytest.param(c, id=c.id, marks=() if c in fast else pytest.mark.slow) for c in cases]


def n_gates(case):
    return {"simple_rnn": 1, "lstm": 4, "gru": 3}[case.kind]


def random_weights(case, input_dim, units, rng):
    """Random float64 weights in DESIGN.md's layout, as {variable name: array}."""
    G = n_gates(case)
    scale = 0.6  # uniform(-0.6, 0.6): pre-activations O(1), gates away from saturation
    w = {
        "kernel": rng.uniform(-scale, scale, (input_dim, G * units)),
        "recurrent_kernel": rng.uniform(-scale, scale, (units, G * units)),
    }
    if case.kind == "gru" and case.kw.get("reset_after", True):
        w["bias"] = rng.uniform(-scale, scale, (2, G * units))
    else:
        w["bias"] = rng.uniform(-scale, scale, (G * units,))
    if case.kw.get("peephole"):
        w["peephole"] = rng.uniform(-scale, scale, (3, units))
    if case.kw.get("layer_norm"):
        w["gamma"] = rng.uniform(0.5, 1.5, (G * units,))
    return w


def random_states(case, batch, units, rng):
    """Random non-zero initial states: [h] or [h, c]."""
    return [rng.uniform(-0.8, 0.8, (batch, units)) for _ in range(case.n_states)]


def oracle(case, x, states, weights, mask=None):
    """Runs the numpy oracle for `case`: (outputs, final states list, gates dict)."""
    kw = case.kw
    if case.kind == "simple_rnn":
        out, final = numpy_rnn.simple_rnn(
            x,
            states[0],
            weights["kernel"],
            weights["recurrent_kernel"],
            weights["bias"],
            activation=kw.get("activation", "tanh"),
            mask=mask,
        )
        return out, final, {}
    if case.kind == "lstm":
        return numpy_rnn.lstm(
            x,
            states[0],
            states[1],
            weights["kernel"],
            weights["recurrent_kernel"],
            weights["bias"],
            peephole=weights.get("peephole"),
            gamma=weights.get("gamma"),
            mask=mask,
        )
    return numpy_rnn.gru(
        x,
        states[0],
        weights["kernel"],
        weights["recurrent_kernel"],
        weights["bias"],
        reset_after=kw.get("reset_after", True),
        mask=mask,
    )


def builtin_layer(case, units, **layer_kwargs):
    """The Keras built-in layer computing the same function as `case` (no cuDNN)."""
    kw = case.kw
    if case.kind == "simple_rnn":
        return keras.layers.SimpleRNN(
            units, activation=kw.get("activation", "tanh"), **layer_kwargs
        )
    if case.kind == "lstm":
        assert case.has_builtin, case
        return keras.layers.LSTM(units, use_cudnn=False, **layer_kwargs)
    return keras.layers.GRU(
        units, reset_after=kw.get("reset_after", True), use_cudnn=False, **layer_kwargs
    )


def keras_weight_list(weights):
    """The Keras built-in's `get_weights()` order: kernel, recurrent_kernel, bias."""
    return [weights[k].astype("float32") for k in ("kernel", "recurrent_kernel", "bias")]


def assign_weights(layer, weights):
    """Assigns {name: array} to the trainable variables of `layer` (a layer or a cell).

    Variables are found by their names (DESIGN.md: kernel, recurrent_kernel, bias, peephole,
    gamma), and the layer must hold exactly these: a missing or extra weight fails here.
    """
    by_name = {v.name: v for v in layer.trainable_weights}
    assert sorted(by_name) == sorted(weights), (sorted(by_name), sorted(weights))
    for name, value in weights.items():
        variable = by_name[name]
        assert tuple(variable.shape) == value.shape, (name, variable.shape, value.shape)
        variable.assign(value.astype(variable.dtype))


def keras_masked_outputs(outputs, mask, h0, go_backwards=False):
    """What `keras.layers.RNN` returns on this backend where ours (and the oracle) give `outputs`.

    A masked step repeats the previous output; before a sequence's first unmasked step
    there is none, and on TensorFlow and torch Keras repeats zeros, as the oracle does.
    Keras's JAX backend repeats `states[0]` instead, i.e. h0 (keras/src/backend/jax/rnn.py,
    `output_tm1 = states[0]`), so there those leading outputs are h0. Returns `outputs`
    (B, T, U), in processing order, with that convention applied.
    """
    outputs = np.array(outputs, copy=True)
    if keras.backend.backend() != "jax":
        return outputs
    mask = np.asarray(mask, dtype=bool)
    if go_backwards:
        mask = mask[:, ::-1]
    leading = ~np.logical_or.accumulate(mask, axis=1)  # (B, T): no real step seen yet
    h0 = np.asarray(h0, dtype=outputs.dtype)
    return np.where(leading[..., None], h0[:, None, :], outputs)


def to_numpy(x):
    """A tensor or variable of any backend as a numpy array (torch: detached from autograd)."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def as_list(result):
    """A layer result (tensor or list) as a list of numpy arrays."""
    if isinstance(result, (list, tuple)):
        return [to_numpy(r) for r in result]
    return [to_numpy(result)]


@contextlib.contextmanager
def plain_errors():
    """Turns off Keras's argument listing in error messages during the block.

    Keras re-raises call errors with "Arguments received by ...: sequences=...,
    initial_state=..." appended, which would make `match="initial_state"` pass for any
    error. Inside this block the library's own message is what `pytest.raises` sees.
    """
    was_enabled = keras.config.is_traceback_filtering_enabled()
    keras.config.disable_traceback_filtering()
    try:
        yield
    finally:
        if was_enabled:
            keras.config.enable_traceback_filtering()
