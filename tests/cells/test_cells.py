"""The cells and sequence layers against the numpy oracle, Keras's built-ins and the math.

Every cell runs twice: inside `keras.layers.RNN` (the cell's `call`) and inside our layer
(the hoisted `project_inputs` + `step` loop); both must compute DESIGN.md's equations.
"""

import inspect
import re

import keras
import numpy as np
import pytest

import keras_gated
from tests import backend_ops
from tests.cells.helpers import (
    CONTAINERS,
    FD_MASK,
    MASK,
    assert_all_close,
    assert_gradients_match_finite_differences,
    gradient_precision,
    make,
    make_cell,
    make_layer,
)
from tests.oracles import numpy_rnn
from tests.oracles.harness import (
    ALL_CASES,
    ATOL_F32,
    BUILTIN_CASES,
    FAST_CASES,
    GRU_CASES,
    KIND_CASES,
    LSTM_CASES,
    B,
    D,
    T,
    U,
    as_list,
    assign_weights,
    builtin_layer,
    cases_slow_beyond,
    keras_masked_outputs,
    keras_weight_list,
    oracle,
    random_states,
    random_weights,
    to_numpy,
)

# Splitting a sequence in two only regroups identical float32 operations; any difference
# comes from fused vs unfused kernels, O(1e-7).
ATOL_SPLIT = 1e-6
# The finite-difference tolerances are in tests/cells/helpers.py.
# float32 gradients of ours and Keras's built-in: each entry sums B*T = 15 products of O(1)
# values through T steps, so rounding differences are O(1e-6) on values up to O(10).
ATOL_GRAD_F32 = 1e-5

MASK_CASES = KIND_CASES + GRU_CASES[1:]
# Every case in our layer; in keras.layers.RNN the fast run keeps FAST_CASES (the cell's
# `call` is `step . project_inputs`, which test_cell_step_api checks for every case).
CONTAINER_CASES = [
    pytest.param(
        container,
        case,
        id=f"{case.id}-{container}",
        marks=(
            pytest.mark.slow if container == "cell_in_keras_rnn" and case not in FAST_CASES else ()
        ),
    )
    for case in ALL_CASES
    for container in CONTAINERS
]


def f32(arrays):
    return [np.asarray(a, "float32") for a in arrays]


def data(case, seed, batch=B, steps=T, input_dim=D, units=U):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, input_dim))
    return (
        rng,
        x,
        random_states(case, batch, units, rng),
        random_weights(case, input_dim, units, rng),
    )


def builtin_pair(case, x, states, weights, **layer_kwargs):
    """(ours, built-in) layers with the same random weights, both built on x."""
    ours = make_layer(case, U, **layer_kwargs)
    ref = builtin_layer(case, U, **layer_kwargs)
    for layer in (ours, ref):
        layer(x, initial_state=states)
    ref.set_weights(keras_weight_list(weights))
    ours.set_weights(ref.get_weights())
    return ours, ref


# --- equal to the numpy oracle -------------------------------------------------------------


@pytest.mark.parametrize("container,case", CONTAINER_CASES)
def test_matches_numpy_oracle(container, case):
    _, x, states, weights = data(case, seed=10)
    rnn = make(container, case, U, return_sequences=True, return_state=True)
    rnn(f32([x])[0], initial_state=f32(states))
    assign_weights(rnn, weights)
    got = as_list(rnn(f32([x])[0], initial_state=f32(states)))
    out, final, _ = oracle(case, x, states, weights)
    assert_all_close(got, [out, *final], ATOL_F32)


@pytest.mark.parametrize("container,case", CONTAINER_CASES)
def test_mask_matches_numpy_oracle(container, case):
    _, x, states, weights = data(case, seed=11)
    rnn = make(container, case, U, return_sequences=True, return_state=True)
    rnn(f32([x])[0], initial_state=f32(states))
    assign_weights(rnn, weights)
    got = as_list(
        rnn(f32([x])[0], initial_state=f32(states), mask=keras.ops.convert_to_tensor(MASK))
    )
    out, final, _ = oracle(case, x, states, weights, mask=MASK)
    if container == "cell_in_keras_rnn":  # Keras's own loop: its backend's masked-start convention
        out = keras_masked_outputs(out, MASK, states[0])
    assert_all_close(got, [out, *final], ATOL_F32)


# --- equal to Keras's built-in layers -------------------------------------------------------


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("case", BUILTIN_CASES, ids=lambda c: c.id)
def test_matches_keras_builtin_by_weight_copy(container, case):
    _, x, states, weights = data(case, seed=12)
    x, states = f32([x])[0], f32(states)
    kw = dict(return_sequences=True, return_state=True)
    ours = make(container, case, U, **kw)
    ref = builtin_layer(case, U, **kw)
    for layer in (ours, ref):
        layer(x, initial_state=states)
    ref.set_weights(keras_weight_list(weights))
    ours.set_weights(ref.get_weights())
    assert_all_close(
        as_list(ours(x, initial_state=states)), as_list(ref(x, initial_state=states)), ATOL_F32
    )


LAYER_OPTIONS = [
    dict(),
    dict(return_sequences=True),
    dict(return_state=True),
    dict(return_sequences=True, return_state=True, go_backwards=True),
    dict(go_backwards=True),
]


# The fast run keeps the last-output path and all options at once, with h0; zero initial
# states are also covered by test_sequential/functional_matches_keras_builtin.
OPTION_PARAMS = [
    pytest.param(
        options,
        h0,
        id=f"{'-'.join(options) or 'default'}-{'h0' if h0 else 'zeros'}",
        marks=() if h0 and len(options) in (0, 3) else pytest.mark.slow,
    )
    for options in LAYER_OPTIONS
    for h0 in (True, False)
]


@pytest.mark.parametrize("options,with_initial_state", OPTION_PARAMS)
@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: c.id)
def test_layer_options_match_keras_builtin(case, options, with_initial_state):
    _, x, states, weights = data(case, seed=13)
    x, states = f32([x])[0], f32(states)
    ours, ref = builtin_pair(case, x, states, weights, **options)
    kw = dict(initial_state=states) if with_initial_state else {}
    got, want = as_list(ours(x, **kw)), as_list(ref(x, **kw))
    assert [g.shape for g in got] == [w.shape for w in want]
    assert_all_close(got, want, ATOL_F32)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: c.id)
def test_explicit_mask_matches_keras_builtin(case, go_backwards):
    _, x, states, weights = data(case, seed=14)
    x, states = f32([x])[0], f32(states)
    ours, ref = builtin_pair(
        case,
        x,
        states,
        weights,
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
    )
    mask = keras.ops.convert_to_tensor(MASK)
    got = as_list(ours(x, initial_state=states, mask=mask))
    # Ours follows the oracle (outputs in processing order, as Keras returns them) ...
    order = (lambda a: a[:, ::-1]) if go_backwards else (lambda a: a)
    out, final, _ = oracle(case, order(x), states, weights, mask=order(MASK))
    assert_all_close(got, [out, *final], ATOL_F32)
    # ... and Keras's built-in, up to its backend's convention before the first real step.
    got[0] = keras_masked_outputs(got[0], MASK, states[0], go_backwards=go_backwards)
    assert_all_close(got, as_list(ref(x, initial_state=states, mask=mask)), ATOL_F32)


@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: c.id)
def test_embedding_mask_zero_matches_keras_builtin(case):
    rng, _, _, weights = data(case, seed=15)
    vocab = 7
    tokens = rng.integers(1, vocab, size=(B, T)).astype("int32")
    tokens[0, -2:] = 0  # trailing padding
    tokens[1, :2] = 0  # leading padding: Keras emits zeros before the first real step
    tokens[2, 2] = 0  # a hole in the middle
    embedding = rng.normal(size=(vocab, D)).astype("float32")

    def model(rnn):
        inputs = keras.Input((T,), dtype="int32")
        embedded = keras.layers.Embedding(vocab, D, mask_zero=True)(inputs)
        m = keras.Model(inputs, rnn(embedded))
        m.layers[1].set_weights([embedding])
        return m

    kw = dict(return_sequences=True, return_state=True)
    ours, ref = model(make_layer(case, U, **kw)), model(builtin_layer(case, U, **kw))
    ref.layers[2].set_weights(keras_weight_list(weights))
    ours.layers[2].set_weights(ref.layers[2].get_weights())
    assert_all_close(as_list(ours(tokens)), as_list(ref(tokens)), ATOL_F32)


# --- properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_slow_beyond(ALL_CASES))
def test_two_halves_with_carried_state_equal_the_whole(case):
    _, x, states, weights = data(case, seed=16)
    x, states = f32([x])[0], f32(states)
    layer = make_layer(case, U, return_sequences=True, return_state=True)
    layer(x, initial_state=states)
    assign_weights(layer, weights)
    whole, *whole_states = as_list(layer(x, initial_state=states))
    first, *mid_states = as_list(layer(x[:, :2], initial_state=states))
    second, *end_states = as_list(layer(x[:, 2:], initial_state=mid_states))
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), whole, atol=ATOL_SPLIT, rtol=0
    )
    assert_all_close(end_states, whole_states, ATOL_SPLIT)


def _lstm_bias(**cell_kwargs):
    cell = keras_gated.LSTMCell(U, **cell_kwargs)
    cell.build((None, D))
    return split(to_numpy(cell.bias))


def split(bias):
    return numpy_rnn.split_gates(bias, numpy_rnn.LSTM_GATES)


def test_unit_forget_bias_sets_forget_slice_to_one():
    b = _lstm_bias(unit_forget_bias=True, bias_initializer="zeros")
    np.testing.assert_array_equal(b["f"], np.ones(U))
    for k in ("i", "g", "o"):
        np.testing.assert_array_equal(b[k], np.zeros(U))


def test_unit_forget_bias_replaces_rather_than_adds():
    """Keras documents "add 1" but sets 1; ours must set 1 whatever bias_initializer gives."""
    b = _lstm_bias(unit_forget_bias=True, bias_initializer=keras.initializers.Constant(0.5))
    np.testing.assert_array_equal(b["f"], np.ones(U))  # 1, not 1.5
    for k in ("i", "g", "o"):
        np.testing.assert_array_equal(b[k], np.full(U, 0.5))
    b = _lstm_bias(unit_forget_bias=False, bias_initializer=keras.initializers.Constant(0.5))
    for k in numpy_rnn.LSTM_GATES:
        np.testing.assert_array_equal(b[k], np.full(U, 0.5))


def test_unit_forget_bias_layer_initialises_like_cell():
    layer = keras_gated.LSTM(U, unit_forget_bias=True, bias_initializer="zeros")
    layer(np.zeros((B, T, D), "float32"))
    b = split(to_numpy(layer.cell.bias))
    np.testing.assert_array_equal(b["f"], np.ones(U))
    np.testing.assert_array_equal(b["i"], np.zeros(U))


def test_unit_forget_bias_docstring_says_set_to_one():
    doc = inspect.getdoc(keras_gated.LSTMCell).replace("*", "").replace("`", "")
    assert "unit_forget_bias" in doc
    assert re.search(r"\bset\s+(b_f\s+)?to\s+1\b", doc), doc


FD_CASES = [(c, False) for c in ALL_CASES] + [(c, True) for c in MASK_CASES]


@pytest.mark.parametrize(
    "case,masked", FD_CASES, ids=[f"{c.id}-{'masked' if m else 'unmasked'}" for c, m in FD_CASES]
)
def test_gradients_match_finite_differences_of_the_oracle(case, masked):
    """Autodiff through our layer (float64 on TensorFlow, float32 elsewhere) equals central
    differences of the float64 oracle."""
    batch, steps, input_dim, units = 2, 3, 2, 3
    rng, x, states, weights = data(case, 17, batch, steps, input_dim, units)
    mask = FD_MASK if masked else None
    # A random linear read-out of every output and final state, so all paths count.
    r_out = rng.normal(size=(batch, steps, units))
    r_states = [rng.normal(size=(batch, units)) for _ in states]

    def oracle_loss(w):
        out, final, _ = oracle(case, x, states, w, mask=mask)
        return np.sum(out * r_out) + sum(np.sum(s * r) for s, r in zip(final, r_states))

    with gradient_precision() as (dtype, atol_loss, atol_grad):
        layer = make_layer(case, units, return_sequences=True, return_state=True)
        xt = keras.ops.convert_to_tensor(x, dtype)
        st = [keras.ops.convert_to_tensor(s, dtype) for s in states]
        kw = {} if mask is None else {"mask": keras.ops.convert_to_tensor(mask)}
        layer(xt, initial_state=st)
        assign_weights(layer, weights)
        assert all(v.dtype == dtype for v in layer.trainable_weights)

        def loss_fn():
            out, *final = layer(xt, initial_state=st, **kw)
            return backend_ops.readout([out, *final], [r_out, *r_states])

        loss, grads = backend_ops.value_and_grads(loss_fn, layer.trainable_weights)
    assert_gradients_match_finite_differences(
        loss, grads, layer.trainable_weights, weights, oracle_loss, atol_loss, atol_grad
    )


SEEN = np.logical_or.accumulate(MASK, axis=1).astype("float32")  # (B, T): a real step seen


@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: c.id)
def test_gradients_match_keras_builtin(case):
    """d loss / d (kernel, recurrent_kernel, bias) of ours equal the built-in's, with a mask."""
    rng, x, states, weights = data(case, seed=37)
    x, states = f32([x])[0], f32(states)
    ours, ref = builtin_pair(case, x, states, weights, return_sequences=True, return_state=True)
    mask = keras.ops.convert_to_tensor(MASK)
    r_out = rng.normal(size=(B, T, U)).astype("float32")
    r_states = [rng.normal(size=(B, U)).astype("float32") for _ in states]
    results = []
    for layer in (ours, ref):

        def loss_fn(layer=layer):
            out, *final = layer(x, initial_state=states, mask=mask)
            # Leading masked outputs differ by backend convention (keras_masked_outputs);
            # read the outputs out from each sequence's first real step on.
            seen = keras.ops.convert_to_tensor(SEEN[..., None])
            return backend_ops.readout([out * seen, *final], [r_out, *r_states])

        results.append(backend_ops.value_and_grads(loss_fn, layer.trainable_weights))
    (loss, grads), (want_loss, want_grads) = results
    assert abs(loss - want_loss) < ATOL_GRAD_F32, (loss, want_loss)
    assert [v.name for v in ours.trainable_weights] == [v.name for v in ref.trainable_weights]
    for name, g, w in zip(("kernel", "recurrent_kernel", "bias"), grads, want_grads):
        assert np.any(w), name
        np.testing.assert_allclose(g, w, atol=ATOL_GRAD_F32, rtol=0, err_msg=name)


@pytest.mark.parametrize("case", cases_slow_beyond(ALL_CASES))  # every case: the FD test
def test_recurrent_kernel_cannot_change_step_one_when_h0_is_zero(case):
    """awd-lstm's property: step 1 sees h0 U = 0, so d y_1 / d U = 0 (and d y_2 / d U != 0)."""
    rng, x, states, weights = data(case, seed=18)
    states = f32(states)
    states[0] = np.zeros_like(states[0])  # h0 = 0; an LSTM's c0 stays random
    x = f32([x])[0]
    layer = make_layer(case, U, return_sequences=True)
    layer(x, initial_state=states)
    assign_weights(layer, weights)
    readout = rng.normal(size=(B, U)).astype("float32")
    kernel = next(v for v in layer.trainable_weights if v.name == "recurrent_kernel")

    def step_loss(t):
        return lambda: backend_ops.readout([layer(x, initial_state=states)[:, t]], [readout])

    _, (g1,) = backend_ops.value_and_grads(step_loss(0), [kernel])
    _, (g2,) = backend_ops.value_and_grads(step_loss(1), [kernel])
    assert not np.any(g1), g1
    assert np.any(g2)


# --- the cell API of DESIGN.md ----------------------------------------------------------------


def test_gate_order_constants():
    from keras_gated.cells import gates

    assert gates.LSTM_GATES == numpy_rnn.LSTM_GATES == ("i", "f", "g", "o")
    assert gates.GRU_GATES == numpy_rnn.GRU_GATES == ("z", "r", "h")


def _built_cell(case, seed):
    """A built cell with random weights, x (B, T, D) float32 and states as tensors (the step
    API takes tensors), the weights and x in float64."""
    _, x, states, weights = data(case, seed)
    cell = make_cell(case, U)
    cell.build((B, D))
    assign_weights(cell, weights)
    tensors = [keras.ops.convert_to_tensor(s) for s in f32(states)]
    return cell, f32([x])[0], tensors, weights, x


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_cell_step_api(case):
    """project_inputs (..., D) -> (..., G*U); call(x_t) = step(project_inputs(x_t))."""
    cell, x, states, weights, x64 = _built_cell(case, 19)
    xw = cell.project_inputs(x)
    assert tuple(xw.shape) == (B, T, len(cell_gate_names(case)) * U)
    h, new_states = cell.step(xw[:, 0], states)
    h_call, states_call = cell(x[:, 0], states)
    out, final, _ = oracle(case, x64[:, :1], [to_numpy(s) for s in states], weights)
    assert_all_close([h, *new_states], [out[:, 0], *final], ATOL_F32)
    assert_all_close([h_call, *states_call], [out[:, 0], *final], ATOL_F32)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.kind != "gru"], ids=lambda c: c.id)
def test_cell_step_recurrent_mask_multiplies_h_prev(case):
    """Where h_{t-1} enters only through U (SimpleRNN, LSTM), a recurrent mask m is h_{t-1} * m."""
    cell, x, states, _, _ = _built_cell(case, 19)
    m = keras.ops.convert_to_tensor(
        np.random.default_rng(0).choice([0.0, 2.0], size=(B, U)).astype("float32")
    )
    xw = cell.project_inputs(x[:, 0])
    h_masked, _ = cell.step(xw, states, recurrent_mask=m)
    h_times_m, _ = cell.step(xw, [states[0] * m, *states[1:]])
    np.testing.assert_allclose(to_numpy(h_masked), to_numpy(h_times_m), atol=ATOL_SPLIT, rtol=0)


def cell_gate_names(case):
    return {"simple_rnn": ("h",), "lstm": numpy_rnn.LSTM_GATES, "gru": numpy_rnn.GRU_GATES}[
        case.kind
    ]


@pytest.mark.parametrize("case", LSTM_CASES + GRU_CASES, ids=lambda c: c.id)
def test_cell_gates_method(case):
    """DESIGN.md: `cell.gates_at(xw_t, states)` -> dict of gate activations."""
    cell, x, states, weights, x64 = _built_cell(case, 19)
    got = cell.gates_at(cell.project_inputs(x[:, 0]), states)
    _, _, want = oracle(case, x64[:, :1], [to_numpy(s) for s in states], weights)
    required = {"lstm": ("i", "f", "g", "o"), "gru": ("z", "r")}[case.kind]
    assert set(required) <= set(got), sorted(got)
    for name in sorted(set(got) & set(want)):
        np.testing.assert_allclose(
            to_numpy(got[name]), want[name][:, 0], atol=ATOL_F32, rtol=0, err_msg=name
        )


@pytest.mark.parametrize("activation", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize(
    "case",  # peepholes keep a call per gate: o reads c_t
    [c for c in LSTM_CASES + GRU_CASES if not c.kw.get("peephole")],
    ids=lambda c: c.id,
)
def test_gates_in_one_call_equal_a_call_per_gate(case, activation, monkeypatch):
    """`activate_gates`: the gates' elementwise sigmoid in one call over their packed
    pre-activations gives what a call per gate gives (how Keras computes them), up to the
    last bit: eager kernels round a few elements of a longer array 1 ulp apart (vectorised
    and scalar loops); a misplaced gate is O(0.1) off."""
    from keras_gated.cells import gates

    cell, x, states, _, _ = _built_cell(case, 23)
    cell.recurrent_activation = keras.activations.get(activation)
    xw = cell.project_inputs(x[:, 0])
    packed = cell.gates_at(xw, states)
    monkeypatch.setattr(gates, "ELEMENTWISE", ())
    per_gate = cell.gates_at(xw, states)
    assert packed.keys() == per_gate.keys()
    for name in packed:
        np.testing.assert_array_max_ulp(to_numpy(packed[name]), to_numpy(per_gate[name]), 4)
