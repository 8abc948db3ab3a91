"""Invalid configurations and calls: wherever Keras's built-in refuses one (any exception, on
this backend), ours must refuse it too with a ValueError whose message names the argument."""

import dataclasses
import re

import hypothesis.strategies as st
import keras
import numpy as np
import pytest
from hypothesis import given

from tests.differential import grammar
from tests.differential.build import KERAS_CELLS, KERAS_LAYERS, OURS_CELLS, OURS_LAYERS
from tests.differential.profiles import budget, tried
from tests.oracles.harness import plain_errors

B, T, D, U = 2, 3, 4, 5


@dataclasses.dataclass(frozen=True)
class Misuse:
    what: str  # units | rate | initial_state_count | initial_state_shape | mask_shape | stateful_batch
    kind: str
    value: object  # the bad units, rate, state count, shape or batch size
    argument: str  # what the error must name
    target: str = "layer"  # units and rate: "layer" or "cell"
    symbolic: bool = False  # call misuses: on Keras Inputs rather than arrays


KINDS = st.sampled_from(grammar.KINDS)
TARGETS = st.sampled_from(("layer", "cell"))
BAD_SHAPES = ((B, U + 1), (B + 1, U), (B, 1, U), (B,))
BAD_MASKS = ((B, T + 1), (B + 1, T), (B, T, 1), (T,), (B, T - 1))


@st.composite
def misuses(draw):
    what = draw(
        st.sampled_from(
            (
                "units",
                "rate",
                "initial_state_count",
                "initial_state_shape",
                "mask_shape",
                "stateful_batch",
            )
        )
    )
    kind = draw(KINDS)
    symbolic = draw(st.booleans())
    if what == "units":
        return Misuse(what, kind, draw(st.sampled_from((0, -1, -7))), "units", draw(TARGETS))
    if what == "rate":
        name = draw(st.sampled_from(("dropout", "recurrent_dropout")))
        return Misuse(
            what, kind, (name, draw(st.sampled_from((-0.5, -0.1, 1.0, 1.5)))), name, draw(TARGETS)
        )
    n = grammar.N_STATES[kind]
    if what == "initial_state_count":
        return Misuse(
            what,
            kind,
            draw(st.sampled_from(sorted({n - 1, n + 1, n + 2} - {0}))),
            "initial_state",
            symbolic=symbolic,
        )
    if what == "initial_state_shape":
        return Misuse(
            what,
            kind,
            (draw(st.integers(0, n - 1)), draw(st.sampled_from(BAD_SHAPES))),
            "initial_state",
            symbolic=symbolic,
        )
    if what == "mask_shape":
        return Misuse(what, kind, draw(st.sampled_from(BAD_MASKS)), "mask", symbolic=symbolic)
    return Misuse(what, kind, draw(st.sampled_from((1, B + 1))), "batch")


def tensor(shape, dtype, symbolic):
    if symbolic:
        return keras.Input(batch_shape=shape, dtype=dtype)
    return np.zeros(shape, dtype)


def attempt(misuse, impl):
    """Does the misuse with `impl`'s classes ("ours" or "keras")."""
    layers, cells = (OURS_LAYERS, OURS_CELLS) if impl == "ours" else (KERAS_LAYERS, KERAS_CELLS)
    kind, value, symbolic = misuse.kind, misuse.value, misuse.symbolic
    if misuse.what == "units":
        return (layers if misuse.target == "layer" else cells)[kind](value)
    if misuse.what == "rate":
        name, rate = value
        return (layers if misuse.target == "layer" else cells)[kind](U, **{name: rate})
    x = tensor((B, T, D), "float32", symbolic)
    n = grammar.N_STATES[kind]
    if misuse.what == "initial_state_count":
        states = [tensor((B, U), "float32", symbolic) for _ in range(value)]
        return layers[kind](U)(x, initial_state=states)
    if misuse.what == "initial_state_shape":
        index, shape = value
        states = [tensor(shape if k == index else (B, U), "float32", symbolic) for k in range(n)]
        return layers[kind](U)(x, initial_state=states)
    if misuse.what == "mask_shape":
        return layers[kind](U)(x, mask=tensor(value, "bool", symbolic))
    layer = layers[kind](U, stateful=True)
    layer(np.zeros((B, T, D), "float32"))
    return layer(np.zeros((value, T, D), "float32"))


@budget("invalid")
@given(misuse=misuses())
def test_ours_refuses_what_the_builtin_refuses(misuse):
    tried("invalid")
    keras.backend.clear_session()
    try:
        attempt(misuse, "keras")
    except Exception:  # noqa: BLE001 - any refusal by the built-in counts
        tried("invalid: refused by the built-in")
    else:
        return  # the built-in accepts it; nothing to hold ours to
    with plain_errors(), pytest.raises(ValueError, match=rf"\b{re.escape(misuse.argument)}\b"):
        attempt(misuse, "ours")
