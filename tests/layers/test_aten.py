"""ATen delegation on torch (keras_gated/layers/aten.py): the layers hand `torch.lstm`,
`torch.gru` and `torch.rnn_tanh` our weights, re-laid out, and get the reference path's
outputs, final states and gradients; they delegate exactly when ATen computes the same
equations, and never otherwise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_gated
from keras_gated.cells import LSTMCell
from tests.backend_ops import backend
from tests.layers.test_fused import assert_equal_results
from tests.layers.test_fused_torch import MASKS, path_results
from tests.oracles.harness import KIND_CASES, B, D, T, U

pytestmark = pytest.mark.skipif(backend() != "torch", reason="ATen is torch's")

# The cells ATen computes: SimpleRNN(tanh), LSTM, GRU(reset_after=True).
ATEN_CASES = KIND_CASES


@pytest.fixture
def aten_calls(monkeypatch):
    """The calls of `aten.recurrence` during a test (a spy: it still runs)."""
    from keras_gated.layers import aten

    calls, original = [], aten.recurrence
    monkeypatch.setattr(aten, "recurrence", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "input-dropout"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("case", ATEN_CASES, ids=lambda c: c.id)
def test_aten_path_equals_reference_path(
    case, go_backwards, dropout, training, monkeypatch, aten_calls
):
    """Gate order and bias layout: random weights, units != input dim, random initial states
    (a swapped gate or bias row fails here). Input dropout (the mask m_x on x) delegates."""
    kwargs = {"go_backwards": go_backwards, "dropout": dropout, "training": training}
    got = path_results(case, "aten", monkeypatch, **kwargs)
    assert aten_calls == [1, 1]  # the first call (it builds), then the measured one
    want = path_results(case, "reference", monkeypatch, **kwargs)
    assert_equal_results(case, got, want)


def delegates(kind, training, mask, options):
    """Whether ATen computes the call, from the equations: the plain cell of an ATen
    recurrence, with nothing that ATen lacks in this call."""
    plain = (
        options["use_bias"]
        and options["activation"] == "tanh"
        and options["recurrent_activation"] == "sigmoid"
    )
    computed = {
        "simple_rnn": plain,
        "lstm": plain and not options["peephole"] and not options["layer_norm"],
        "gru": plain and options["reset_after"],
    }[kind]
    dropped = training and (options["recurrent_dropout"] > 0 or options["weight_dropout"] > 0)
    return computed and not dropped and mask is None


def make(kind, options):
    kw = {k: v for k, v in options.items() if v is not None}
    if kind == "simple_rnn":
        for name in ("recurrent_activation", "peephole", "layer_norm", "reset_after"):
            kw.pop(name)
        return keras_gated.SimpleRNN(U, **kw)
    if kind == "lstm":
        kw.pop("reset_after")
        return keras_gated.LSTM(U, **kw)
    kw.pop("peephole"), kw.pop("layer_norm")
    return keras_gated.GRU(U, **kw)


options = st.fixed_dictionaries(
    {
        "activation": st.sampled_from(["tanh", "relu", "sigmoid", "linear"]),
        "recurrent_activation": st.sampled_from(["sigmoid", "hard_sigmoid"]),
        "use_bias": st.booleans(),
        "peephole": st.booleans(),
        "layer_norm": st.booleans(),
        "reset_after": st.booleans(),
        "dropout": st.sampled_from([0.0, 0.3]),
        "recurrent_dropout": st.sampled_from([0.0, 0.3]),
        "weight_dropout": st.sampled_from([0.0, 0.3]),
        "go_backwards": st.booleans(),
    }
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(["simple_rnn", "lstm", "gru"]),
    options=options,
    training=st.booleans(),
    pattern=st.sampled_from(list(MASKS)),
)
def test_delegation_happens_exactly_when_aten_computes_the_call(kind, options, training, pattern):
    from keras_gated.layers import aten

    calls, original = [], aten.recurrence
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    layer = make(kind, options)
    layer(x)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aten, "recurrence", lambda *a, **k: calls.append(1) or original(*a, **k))
        layer(x, mask=MASKS[pattern], training=training)
    assert len(calls) == delegates(kind, training, MASKS[pattern], options)


def test_cell_subclasses_run_their_own_step(aten_calls):
    """A subclass's step may differ from the equations ATen computes."""

    class Cell(LSTMCell):
        pass

    class Layer(keras_gated.LSTM):
        cell_class = Cell

    x = np.zeros((B, T, D), "float32")
    Layer(U)(x, training=True)
    keras_gated.LSTM(U)(x, training=True)
    assert aten_calls == [1]  # the built-in class's call only
