"""The fused training path (keras_gated/layers/fused.py) equals the reference path
(`scan_steps` over `cell.step`), forward and backward, and the layers take it exactly when
it applies."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_gated
from keras_gated.layers import fused
from tests.backend_ops import backend
from tests.oracles.harness import (
    GRU_CASES,
    LSTM_CASES,
    SIMPLE_CASES,
    B,
    D,
    T,
    U,
    assign_weights,
    random_states,
    random_weights,
)

# The fused path runs on TensorFlow and JAX; torch has only the reference path.
pytestmark = pytest.mark.skipif(not fused.available(), reason="no fused path on this backend")
# TensorFlow: eager (the loops uncompiled), in a tf.function with a static time axis (each loop
# compiled by XLA on its own, as under a plain `compile()`), in one whose time axis is dynamic
# (the loops uncompiled, in the executor: batches of varying length), and XLA-compiled whole as
# `train` runs it (`TrainConfig.xla`); JAX: under jax.jit, as Keras's compiled train step runs it.
GRAPHS = {"tensorflow": [None, "tf.function", "dynamic", "xla"], "jax": ["jit"]}.get(backend(), [])

# Both paths run float32; the fused backward sums the weight gradient over all B*T rows in one
# matmul and multiplies the chain-rule factors in another order, so results differ by rounding
# only: O(1e-7) of the result's scale (values are O(1), gradients up to O(10) here).
# The fused path of a layer up to TRAINING_PER_STEP_MAX_UNITS also projects x_t W inside each step,
# the reference path all steps at once: another rounding of the same sum. Measured worst case
# 9.6e-7 of the scale (JAX, SimpleRNN tanh; 4.1e-7 projecting before the loop), so 2e-6 of
# max(1, max |result|) leaves a margin and fails on any wrong term.
TOL_FUSED = 2e-6
SEED = 7
FUSED_CASES = SIMPLE_CASES + LSTM_CASES[:1] + GRU_CASES
# Masking is the same for every activation: one SimpleRNN, each gated cell.
MASK_CASES = SIMPLE_CASES[:1] + LSTM_CASES[:1] + GRU_CASES
LAYERS = {"simple_rnn": keras_gated.SimpleRNN, "lstm": keras_gated.LSTM, "gru": keras_gated.GRU}


def make_layer(case, **kwargs):
    return LAYERS[case.kind](U, **case.kw, return_sequences=True, return_state=True, **kwargs)


def forward_and_gradients(layer, x, states, graph, mask=None):
    """Outputs, final states, and the gradients of a random functional of both w.r.t. every
    weight, the inputs and the initial states, from one training call of `layer`."""
    rng = np.random.default_rng(1)
    out_coef = rng.normal(size=(B, T, U)).astype("float32")
    state_coefs = [rng.normal(size=(B, U)).astype("float32") for _ in states]

    def functional(ys, final):
        return keras.ops.sum(ys * out_coef) + sum(
            keras.ops.sum(s * k) for s, k in zip(final, state_coefs)
        )

    if backend() == "jax":
        import jax

        def loss(trainable, x, states):
            (ys, *final), _ = layer.stateless_call(
                trainable,
                [v.value for v in layer.non_trainable_variables],
                x,
                initial_state=list(states),
                mask=mask,
                training=True,
            )
            return functional(ys, final), [ys, *final]

        (_, outs), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(
            [v.value for v in layer.trainable_variables], x, states
        )
        return [np.asarray(r) for r in [*outs, *jax.tree.leaves(grads)]]

    import tensorflow as tf

    def run(x, states):
        with tf.GradientTape() as tape:
            tape.watch([x, *states])
            ys, *final = layer(x, initial_state=list(states), mask=mask, training=True)
            loss = functional(ys, final)
        weights = layer.trainable_variables
        grads = tape.gradient(loss, [*weights, x, *states])
        return [ys, *final, *grads]

    if graph == "dynamic":
        run = tf.function(
            run,
            input_signature=[tf.TensorSpec((B, None, D)), [tf.TensorSpec((B, U)) for _ in states]],
        )
    elif graph:
        run = tf.function(run, jit_compile=graph == "xla")
    results = run(tf.constant(x), [tf.constant(s) for s in states])
    assert all(r is not None for r in results)
    return [np.asarray(r) for r in results]


def fused_and_reference(case, monkeypatch, graph, mask=None, **layer_kwargs):
    """The same computation by two layers with equal weights and equal dropout seeds (input,
    recurrent and weight dropout), the second forced onto the reference path. Under XLA both
    are compiled: XLA draws other dropout masks than TensorFlow's kernels, the same for both
    layers."""
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(B, T, D)).astype("float32")
    states = [s.astype("float32") for s in random_states(case, B, U, rng)]
    weights = random_weights(case, D, U, rng)
    results = []
    options = {"dropout": 0.3, "recurrent_dropout": 0.4, "weight_dropout": 0.2, **layer_kwargs}
    for forced in (False, True):
        layer = make_layer(case, seed=SEED, **options)
        layer(x, initial_state=states)
        assign_weights(layer, weights)
        with monkeypatch.context() as patch:
            if forced:
                patch.setattr(fused, "applies", lambda cell: False)
            results.append(forward_and_gradients(layer, x, states, graph, mask))
    return results


def graph_cases():
    """Every case in every graph mode; SimpleRNN's other activations (they change one factor,
    the derivative, not the plumbing) only in a tf.function on TensorFlow, the rest `slow`.
    Eagerly and compiled whole by XLA only the LSTM in the quick tier: the other chains run
    the same code uncompiled with a dynamic time axis and XLA-compiled in a tf.function."""
    for case in FUSED_CASES:
        for graph in GRAPHS:
            other_activation = case.kind == "simple_rnn" and case is not SIMPLE_CASES[0]
            slow = (other_activation or case.kind != "lstm") and graph in (None, "xla")
            yield pytest.param(
                case, graph, id=f"{case.id}-{graph}", marks=[pytest.mark.slow] if slow else []
            )


@pytest.mark.parametrize("case, graph", list(graph_cases()))
def test_fused_path_equals_reference_path(case, graph, monkeypatch):
    assert_equal_results(case, *fused_and_reference(case, monkeypatch, graph))


@pytest.mark.parametrize("case", FUSED_CASES[:1] + FUSED_CASES[4:], ids=lambda c: c.id)
def test_fused_path_projecting_before_the_loop_equals_reference_path(case, monkeypatch):
    """Wider layers (U > TRAINING_PER_STEP_MAX_UNITS) project all steps before the loops, where the
    small layers above project x_t inside each step (P); here the same layers take that
    path, with the mixed mask backwards."""
    if not GRAPHS:
        pytest.skip("no fused path on this backend")
    from keras_gated.layers import recurrent

    monkeypatch.setattr(recurrent, "TRAINING_PER_STEP_MAX_UNITS", 0)
    graph = "tf.function" if backend() == "tensorflow" else GRAPHS[-1]
    got, want = fused_and_reference(
        case, monkeypatch, graph, MASK, go_backwards=True, zero_output_for_mask=True
    )
    assert_equal_results(case, got, want)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("graph", ["tf.function", "xla"])
@pytest.mark.parametrize("case", FUSED_CASES[:1] + FUSED_CASES[4:], ids=lambda c: c.id)
def test_batch_sharded_loops_equal_the_reference_path(case, graph, monkeypatch):
    """Compiled loops that carry the batch in independent shards (`fused_tensorflow.shards`;
    here B shards of one row, at this U) compute the reference path, with the mixed mask
    backwards and zoneout on the gated cells, in loops compiled alone and in a step compiled
    whole. The shards apply without recurrent dropout (its mask is one (B, U) constant)."""
    from keras_gated.layers import fused_tensorflow

    monkeypatch.setattr(fused_tensorflow, "BATCH_SHARDS", B)
    monkeypatch.setattr(fused_tensorflow, "SHARDED_UNITS", (U, U))
    counts = []
    original = fused_tensorflow.shards
    monkeypatch.setattr(
        fused_tensorflow, "shards", lambda *a: counts.append(original(*a)) or counts[-1]
    )
    zoneout = {} if case.kind == "simple_rnn" else {"zoneout": 0.3}
    got, want = fused_and_reference(
        case,
        monkeypatch,
        graph,
        MASK,
        go_backwards=True,
        zero_output_for_mask=True,
        recurrent_dropout=0.0,
        **zoneout,
    )
    assert counts and set(counts) == {B}
    assert_equal_results(case, got, want)


@pytest.mark.tensorflow_only
def test_loops_shard_the_batch_exactly_where_measured():
    """`shards`: BATCH_SHARDS for compiled loops of U in SHARDED_UNITS over an evenly divided
    static batch without a recurrent dropout mask; one chain otherwise."""
    import tensorflow as tf

    from keras_gated.layers import fused_tensorflow as ft

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("on a GPU the loops run in the executor")
    k, (low, high) = ft.BATCH_SHARDS, ft.SHARDED_UNITS
    loops = fused.Loops(*[None] * len(fused.Loops._fields))

    def decided(batch, units, m_h=None, dtype="float32", steps=5, graph=True):
        def run(xs, state):
            return ft.shards(xs, state, loops._replace(recurrent_mask=m_h))

        if not graph:
            return run(tf.zeros((steps, batch, 3), dtype), tf.zeros((batch, units), dtype))
        signature = [tf.TensorSpec((steps, batch, 3), dtype), tf.TensorSpec((batch, units), dtype)]
        found = []

        def trace(xs, state):
            found.append(run(xs, state))
            return tf.constant(0.0)

        tf.function(trace, input_signature=signature).get_concrete_function()
        return found[-1]

    assert decided(4 * k, low) == decided(4 * k, high) == k
    assert decided(4 * k, low - 1) == decided(4 * k, high + 1) == 1  # narrower, wider
    assert decided(4 * k + 1, low) == 1  # the batch does not divide
    assert decided(None, low) == 1  # a dynamic batch
    assert decided(4 * k, low, m_h=tf.ones((4 * k, low))) == 1  # recurrent dropout
    assert decided(4 * k, low, dtype="bfloat16") == 1  # not compiled
    assert decided(4 * k, low, steps=None) == 1  # a dynamic time axis: not compiled
    assert decided(4 * k, low, graph=False) == 1  # eager: not compiled


# Every pattern Keras accepts, one per row: left padding (keras.utils.pad_sequences's
# default), holes with a masked last step, right padding.
MASK = np.array([[0, 0, 1, 1, 1], [1, 0, 0, 1, 0], [1, 1, 1, 1, 0]], bool)


def mask_cases():
    """Each cell both ways in a tf.function with the loops compiled and uncompiled (TensorFlow)
    or under jit (JAX); on TensorFlow the LSTM also under XLA as a whole (the masked loops
    compile; the other cells share that code)."""
    if not GRAPHS:  # no fused path on this backend
        return
    graphs = ["tf.function", "dynamic"] if backend() == "tensorflow" else GRAPHS[-1:]
    for case in MASK_CASES:
        for go_backwards in (False, True):
            direction = "backward" if go_backwards else "forward"
            for graph in graphs:
                yield pytest.param(case, go_backwards, graph, id=f"{case.id}-{direction}-{graph}")
    if backend() == "tensorflow":
        yield pytest.param(LSTM_CASES[0], True, "xla", id=f"{LSTM_CASES[0].id}-backward-xla")


@pytest.mark.parametrize("case, go_backwards, graph", list(mask_cases()))
def test_fused_path_with_masks_equals_reference_path(case, go_backwards, graph, monkeypatch):
    """Keras's mask semantics on the fused path, both directions; backwards also with
    `zero_output_for_mask` (what `Bidirectional(return_sequences=True)` sets)."""
    assert MASK.shape == (B, T)
    got, want = fused_and_reference(
        case, monkeypatch, graph, MASK, go_backwards=go_backwards, zero_output_for_mask=go_backwards
    )
    assert_equal_results(case, got, want)


# Zoneout (cells/zoneout.py) on the fused path is the mask rule (M1) per unit: h alone, c alone
# and both on the LSTM, each GRU variant; fresh masks per step and one per sequence.
ZONEOUT_CASES = [
    (LSTM_CASES[0], {"zoneout": 0.3}),
    (LSTM_CASES[0], {"cell_zoneout": 0.4}),
    (LSTM_CASES[0], {"zoneout": 0.3, "cell_zoneout": 0.4}),
    (GRU_CASES[0], {"zoneout": 0.3}),
    (GRU_CASES[1], {"zoneout": 0.3}),
]


def zoneout_cases():
    """Each zoneout case with fresh masks and no mask forwards, and variational with the mixed
    mask backwards (the drawn test below mixes the rest); in a tf.function with compiled loops
    (TensorFlow; the LSTM with both rates also in a step compiled whole by XLA) or under
    jit (JAX)."""
    if not GRAPHS:
        return
    first = "tf.function" if backend() == "tensorflow" else GRAPHS[-1]
    for case, rates in ZONEOUT_CASES:
        for variational in (False, True):
            masked = variational
            name = "-".join(rates) + ("-variational-masked-backward" if variational else "")
            kw = {**rates, "zoneout_variational": variational}
            yield pytest.param(case, kw, masked, first, id=f"{case.id}-{name}-{first}")
    if backend() == "tensorflow":
        both = {"zoneout": 0.3, "cell_zoneout": 0.4}
        yield pytest.param(LSTM_CASES[0], both, True, "xla", id="lstm-both-masked-xla")


@pytest.mark.parametrize("case, zoneout, masked, graph", list(zoneout_cases()))
def test_fused_path_with_zoneout_equals_reference_path(case, zoneout, masked, graph, monkeypatch):
    """Zoneout's training masks on the fused path, with the same draws as the reference path
    (equal seeds), alone and with Keras's mask backwards."""
    calls = []
    original = fused.fused_recurrence
    monkeypatch.setattr(
        fused, "fused_recurrence", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    mask_kw = {"go_backwards": True, "zero_output_for_mask": True} if masked else {}
    got, want = fused_and_reference(
        case, monkeypatch, graph, MASK if masked else None, **zoneout, **mask_kw
    )
    assert calls  # the first layer took the fused path
    assert_equal_results(case, got, want)


# Any mask with a valid step in each row (B rows of T steps).
masks = st.lists(
    st.lists(st.booleans(), min_size=T, max_size=T).filter(any), min_size=B, max_size=B
).map(lambda rows: np.array(rows, bool))
ZONEOUT_RATES = [{}, {"zoneout": 0.3}, {"cell_zoneout": 0.4}, {"zoneout": 0.3, "cell_zoneout": 0.4}]


@pytest.mark.skipif(not GRAPHS, reason="no fused path on this backend")
@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    case=st.sampled_from(FUSED_CASES),
    mask=st.none() | masks,
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
    rates=st.sampled_from(ZONEOUT_RATES),
    variational=st.booleans(),
    per_step=st.booleans(),
)
def test_drawn_calls_on_the_fused_path_equal_the_reference_path(
    case, mask, go_backwards, zero_output_for_mask, rates, variational, per_step
):
    """Drawn combinations of cell, mask, direction, zoneout (the gated cells; c only on the
    LSTM) and where x W is projected, with dropout on, in one compiled graph."""
    from keras_gated.layers import recurrent

    rates = {k: r for k, r in rates.items() if case.kind == "lstm" or k == "zoneout"}
    zoneout = (
        {**rates, "zoneout_variational": variational} if rates and case.kind != "simple_rnn" else {}
    )
    graph = "tf.function" if backend() == "tensorflow" else GRAPHS[-1]
    with pytest.MonkeyPatch.context() as monkeypatch:
        if not per_step:
            monkeypatch.setattr(recurrent, "TRAINING_PER_STEP_MAX_UNITS", 0)
        got, want = fused_and_reference(
            case,
            monkeypatch,
            graph,
            mask,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            **zoneout,
        )
    assert_equal_results(case, got, want)


def assert_equal_results(case, got, want):
    # ys, final states, then d/d(kernel, recurrent_kernel, bias), d/dx, d/d(initial states)
    assert len(got) == len(want) == 1 + 2 * case.n_states + 3 + 1
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, k
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, atol=TOL_FUSED * scale, rtol=0, err_msg=f"result {k}")
    # Non-vacuous: dropout is on, every gradient is non-zero.
    assert all(np.abs(w).max() > 1e-3 for w in want)


@pytest.mark.tensorflow_only
def test_loops_compile_in_a_graph_with_a_static_time_axis(monkeypatch):
    """A float32 training step traced on CPU with a static time axis holds the forward and
    backward loops as two XLA-compiled calls; with a dynamic one (a new length would compile
    again), or with COMPILE_LOOPS off, none."""
    import tensorflow as tf

    from keras_gated.layers import cudnn, fused_tensorflow

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("on a GPU the loops run in the executor")
    monkeypatch.setattr(cudnn, "applies", lambda cell: False)
    layer = keras_gated.LSTM(U, return_sequences=True)
    layer(np.zeros((B, T, D), "float32"))

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, x)

    def compiled_calls(shape):
        graph = (
            tf.function(step, input_signature=[tf.TensorSpec(shape)]).get_concrete_function().graph
        )
        return sum(
            1
            for op in graph.get_operations()
            if "_XlaMustCompile" in op.node_def.attr and op.node_def.attr["_XlaMustCompile"].b
        )

    assert compiled_calls((B, T, D)) == 2
    assert compiled_calls((B, None, D)) == 0
    monkeypatch.setattr(fused_tensorflow, "COMPILE_LOOPS", False)
    assert compiled_calls((B, T, D)) == 0


def test_fused_path_is_taken_exactly_when_it_applies(monkeypatch):
    if backend() == "tensorflow":
        from keras_gated.layers import cudnn

        monkeypatch.setattr(cudnn, "applies", lambda cell: False)  # on a GPU cuDNN comes first
    if backend() == "torch":
        from keras_gated.layers import aten

        monkeypatch.setattr(aten, "applies", lambda cell: False)  # ATen comes first on torch
    calls = []
    original = fused.fused_recurrence

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(fused, "fused_recurrence", counting)
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[0, -1] = False

    def count(layer, **call_kwargs):
        calls.clear()
        layer(x, **call_kwargs)
        return len(calls)

    for cls in (keras_gated.SimpleRNN, keras_gated.LSTM, keras_gated.GRU):
        assert count(cls(U), training=True) == 1
        assert count(cls(U), training=False) == 0
        assert count(cls(U), training=True, mask=mask) == 1
        assert count(cls(U, go_backwards=True), training=True) == 1
    assert count(keras_gated.GRU(U, reset_after=False), training=True) == 1
    assert count(keras_gated.LSTM(U, peephole=True), training=True) == 0
    assert count(keras_gated.LSTM(U, layer_norm=True), training=True) == 0
    assert count(keras_gated.LSTM(U, zoneout=0.1, cell_zoneout=0.1), training=True) == 1
    assert count(keras_gated.GRU(U, zoneout=0.1), training=True) == 1
    assert count(keras_gated.GRU(U, zoneout=0.1, layer_norm=True), training=True) == 0


def test_stateful_layers_fit_on_the_fused_path(monkeypatch):
    """`model.fit` traces the fused path; a stateful layer carries its final state on."""
    calls = []
    original = fused.fused_recurrence
    monkeypatch.setattr(
        fused, "fused_recurrence", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype("float32")
    y = rng.normal(size=(B, U)).astype("float32")
    layer = keras_gated.LSTM(U, recurrent_dropout=0.2, stateful=True)
    model = keras.Sequential([keras.Input((T, D), batch_size=B), layer])
    model.compile("sgd", "mse")
    history = model.fit(x, y, epochs=2, batch_size=B, verbose=0)
    assert calls and np.all(np.isfinite(history.history["loss"]))
    if backend() == "tensorflow":  # on JAX, Keras's RNN (its built-in LSTM too) does not
        # write stateful states back from a compiled train step
        assert np.abs(np.asarray(layer.states[1])).max() > 0


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("layer_class", [keras_gated.SimpleRNN, keras_gated.LSTM, keras_gated.GRU])
def test_inference_loops_compile_where_they_gain(layer_class, monkeypatch):
    """At inference in a graph on CPU with a static time axis, a layer runs its time loop as
    one XLA-compiled call, with the executor's results; dynamic time axes and eager calls
    stay in the executor."""
    import tensorflow as tf

    from keras_gated.layers import fused_tensorflow

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("on a GPU the loops run in the executor")
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[0, -2:] = False

    def compiled_calls(layer, shape):
        graph = (
            tf.function(lambda x: layer(x, mask=mask), input_signature=[tf.TensorSpec(shape)])
            .get_concrete_function()
            .graph
        )
        return sum(
            1
            for op in graph.get_operations()
            if "_XlaMustCompile" in op.node_def.attr and op.node_def.attr["_XlaMustCompile"].b
        )

    narrow = layer_class(U, return_sequences=True, return_state=True)
    eager = narrow(x, mask=mask)
    assert compiled_calls(narrow, (B, T, D)) == 1
    assert compiled_calls(narrow, (B, None, D)) == 0
    for got, want in zip(tf.function(lambda x: narrow(x, mask=mask))(x), eager):
        np.testing.assert_allclose(got, want, atol=1e-6)
    monkeypatch.setattr(fused_tensorflow, "COMPILE_LOOPS", False)
    assert compiled_calls(narrow, (B, T, D)) == 0
