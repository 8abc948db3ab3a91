"""Sequence layers as Keras layers: variational dropout, composition, state, introspection,
serialization and argument checking."""

import keras
import numpy as np
import pytest

import keras_gated
from tests.oracles.harness import (
    ALL_CASES,
    ATOL_F32,
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
    oracle,
    plain_errors,
    random_states,
    random_weights,
    to_numpy,
)

# Dropout scales kept units by 1/(1-p) in float32: relative error O(1e-7) per product.
RTOL_SCALE = 1e-6
# A stateful layer runs the same float32 operations as one call on the whole sequence.
ATOL_STATEFUL = 1e-6
# Dropout masks are (B, U) Bernoulli draws; these sizes make a repeated mask (2^-64) impossible
# in practice while keeping the layers tiny.
DROP_B, DROP_T, DROP_U = 4, 5, 16

LAYER_CLASSES = [keras_gated.SimpleRNN, keras_gated.LSTM, keras_gated.GRU]
CELL_CLASSES = [keras_gated.SimpleRNNCell, keras_gated.LSTMCell, keras_gated.GRUCell]
COMPARE_CASES = KIND_CASES + GRU_CASES[1:]


def make_layer(case, units, **layer_kwargs):
    cls = {"simple_rnn": keras_gated.SimpleRNN, "lstm": keras_gated.LSTM, "gru": keras_gated.GRU}[
        case.kind
    ]
    return cls(units, **case.kw, **layer_kwargs)


def data(case, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D)).astype("float32")
    states = [s.astype("float32") for s in random_states(case, B, U, rng)]
    return rng, x, states, random_weights(case, D, U, rng)


def assert_all_close(got, want, atol):
    assert len(got) == len(want), (len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(to_numpy(g), w, atol=atol, rtol=0, err_msg=f"result {k}")


def nonzero_uniform(rng, shape):
    """Entries in +-[0.5, 1.5]: never zero, so a zero downstream can only come from a mask."""
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype("float32")


def linear_rnn(units, kernel, recurrent_kernel, input_dim, **layer_kwargs):
    """A SimpleRNN computing h_t = x_t K + h_{t-1} R exactly (linear, zero bias)."""
    layer = keras_gated.SimpleRNN(units, activation="linear", return_sequences=True, **layer_kwargs)
    layer(np.zeros((DROP_B, DROP_T, input_dim), "float32"))
    assign_weights(
        layer,
        {
            "kernel": kernel,
            "recurrent_kernel": recurrent_kernel,
            "bias": np.zeros(units),
        },
    )
    return layer


def recover_mask(numerator, denominator, rate):
    """numerator / denominator, checked to be a dropout mask with values in {0, 1/(1-rate)}."""
    m = numerator / denominator
    keep = np.isclose(m, 1.0 / (1.0 - rate), rtol=RTOL_SCALE, atol=0)
    dropped = m == 0.0
    assert np.all(keep | dropped), m
    assert keep.any() and dropped.any(), m  # non-vacuous at these sizes
    return np.where(keep, 1.0 / (1.0 - rate), 0.0)


# --- variational dropout inside the recurrent layers ----------------------------------------


def test_recurrent_dropout_mask_is_the_same_at_every_step():
    """Linear RNN, zero input kernel, identity recurrence: h_t = (h_{t-1} * m_h) I, so
    h_t = h0 * m_h^t; a unit is zero at every step or scaled by 1/(1-p) at every step."""
    rate = 0.5
    rng = np.random.default_rng(20)
    layer = linear_rnn(DROP_U, np.zeros((3, DROP_U)), np.eye(DROP_U), 3, recurrent_dropout=rate)
    x = rng.normal(size=(DROP_B, DROP_T, 3)).astype("float32")
    h0 = nonzero_uniform(rng, (DROP_B, DROP_U))
    masks = []
    for _ in range(2):
        out = to_numpy(layer(x, initial_state=[h0], training=True))
        m = recover_mask(out[:, 0], h0, rate)
        for t in range(DROP_T):
            np.testing.assert_allclose(
                out[:, t], h0 * m ** (t + 1), rtol=RTOL_SCALE * (t + 1), atol=0
            )
        assert not all(np.array_equal(m[0], row) for row in m[1:]), "one mask for the whole batch"
        masks.append(m)
    assert not np.array_equal(masks[0], masks[1]), "the mask did not change between calls"


def test_input_dropout_mask_is_the_same_at_every_step():
    """Linear RNN, identity input kernel, zero recurrence: h_t = (x_t * m_x) I."""
    rate = 0.5
    rng = np.random.default_rng(21)
    layer = linear_rnn(DROP_U, np.eye(DROP_U), np.zeros((DROP_U, DROP_U)), DROP_U, dropout=rate)
    x = nonzero_uniform(rng, (DROP_B, DROP_T, DROP_U))
    masks = []
    for _ in range(2):
        out = to_numpy(layer(x, training=True))
        m = recover_mask(out[:, 0], x[:, 0], rate)
        for t in range(DROP_T):
            np.testing.assert_allclose(out[:, t], x[:, t] * m, rtol=RTOL_SCALE, atol=0)
        assert not all(np.array_equal(m[0], row) for row in m[1:]), "one mask for the whole batch"
        masks.append(m)
    assert not np.array_equal(masks[0], masks[1]), "the mask did not change between calls"


@pytest.mark.parametrize("case", cases_slow_beyond(ALL_CASES))
def test_no_dropout_is_exact_identity(case):
    """p = 0 with training=True, and p > 0 with training=False, change nothing."""
    _, x, states, weights = data(case, 22)
    layers = {
        "plain": make_layer(case, U, return_sequences=True),
        "p0": make_layer(case, U, return_sequences=True, dropout=0.0, recurrent_dropout=0.0),
        "p": make_layer(case, U, return_sequences=True, dropout=0.4, recurrent_dropout=0.3),
    }
    for layer in layers.values():
        layer(x, initial_state=states)
        assign_weights(layer, weights)
    want = to_numpy(layers["plain"](x, initial_state=states))
    trained = to_numpy(layers["p0"](x, initial_state=states, training=True))
    if keras.backend.backend() == "jax":  # training takes the fused path, compiled by XLA as
        # another program than the reference scan: equal up to float32 rounding
        np.testing.assert_allclose(trained, want, atol=ATOL_F32, rtol=0)
    else:
        np.testing.assert_array_equal(trained, want)
    np.testing.assert_array_equal(
        to_numpy(layers["p"](x, initial_state=states, training=False)), want
    )
    np.testing.assert_array_equal(to_numpy(layers["p"](x, initial_state=states)), want)
    # Non-vacuous: the same layer does drop when training.
    assert not np.allclose(to_numpy(layers["p"](x, initial_state=states, training=True)), want)


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.id)
def test_dropout_seed_reproducibility(case):
    _, x, states, weights = data(case, 23)
    kw = dict(return_sequences=True, dropout=0.3, recurrent_dropout=0.3)
    a, b, c = (make_layer(case, U, seed=s, **kw) for s in (1234, 1234, 99))
    for layer in (a, b, c):
        layer(x, initial_state=states)
        assign_weights(layer, weights)
    first_a = to_numpy(a(x, initial_state=states, training=True))
    first_b = to_numpy(b(x, initial_state=states, training=True))
    first_c = to_numpy(c(x, initial_state=states, training=True))
    np.testing.assert_array_equal(first_a, first_b)  # same seed, same masks
    assert not np.array_equal(first_a, first_c)  # another seed, other masks
    second_a = to_numpy(a(x, initial_state=states, training=True))
    assert not np.array_equal(first_a, second_a)  # fresh masks on every call


# --- VariationalDropout ------------------------------------------------------------------------


def test_variational_dropout_one_mask_per_sequence():
    rate = 0.4
    rng = np.random.default_rng(24)
    x = nonzero_uniform(rng, (DROP_B, DROP_T, DROP_U))
    layer = keras_gated.VariationalDropout(rate)
    masks = []
    for _ in range(2):
        y = to_numpy(layer(x, training=True))
        m = recover_mask(y, x, rate)  # (B, T, F)
        np.testing.assert_array_equal(m, np.broadcast_to(m[:, :1], m.shape))  # same at every t
        np.testing.assert_allclose(y, x * m, rtol=RTOL_SCALE, atol=0)
        assert not all(np.array_equal(m[0], row) for row in m[1:]), "one mask for the whole batch"
        masks.append(m)
    assert not np.array_equal(masks[0], masks[1])


def test_variational_dropout_is_identity_at_inference():
    rng = np.random.default_rng(25)
    x = nonzero_uniform(rng, (DROP_B, DROP_T, DROP_U))
    layer = keras_gated.VariationalDropout(0.4)
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(
        to_numpy(keras_gated.VariationalDropout(0.0)(x, training=True)), x
    )


def test_variational_dropout_seed_reproducibility():
    x = nonzero_uniform(np.random.default_rng(26), (DROP_B, DROP_T, DROP_U))
    a, b = keras_gated.VariationalDropout(0.4, seed=7), keras_gated.VariationalDropout(0.4, seed=7)
    np.testing.assert_array_equal(to_numpy(a(x, training=True)), to_numpy(b(x, training=True)))


# --- composition with Keras containers ---------------------------------------------------------


def _copy_into(ours_model, ref_model, rng):
    """Random weights into ref_model, then the same list into ours_model."""
    ref_model.set_weights(
        [rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in ref_model.get_weights()]
    )
    ours_model.set_weights(ref_model.get_weights())


@pytest.mark.parametrize("case", COMPARE_CASES, ids=lambda c: c.id)
def test_sequential_matches_keras_builtin(case):
    rng, x, _, _ = data(case, 27)

    def model(make):
        return keras.Sequential(
            [
                keras.Input((T, D)),
                make(return_sequences=True),
                make(),
                keras.layers.Dense(2),
            ]
        )

    ours = model(lambda **kw: make_layer(case, U, **kw))
    ref = model(lambda **kw: builtin_layer(case, U, **kw))
    _copy_into(ours, ref, rng)
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(ref(x)), atol=ATOL_F32, rtol=0)


@pytest.mark.parametrize("case", COMPARE_CASES, ids=lambda c: c.id)
def test_functional_matches_keras_builtin(case):
    rng, x, _, _ = data(case, 28)

    def model(rnn):
        inputs = keras.Input((T, D))
        out, *states = rnn(inputs)
        return keras.Model(inputs, [keras.layers.Dense(2)(out), *states])

    kw = dict(return_sequences=True, return_state=True)
    ours, ref = model(make_layer(case, U, **kw)), model(builtin_layer(case, U, **kw))
    _copy_into(ours, ref, rng)
    assert_all_close(as_list(ours(x)), as_list(ref(x)), ATOL_F32)


BIDIRECTIONAL_MASK = np.array(
    [[True] * T, [True] * (T - 2) + [False] * 2, [False] + [True] * (T - 1)]
)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("case", COMPARE_CASES, ids=lambda c: c.id)
def test_bidirectional_matches_keras_builtin(case, masked):
    """Bidirectional rebuilds the backward copy from our get_config, and with a mask sets
    zero_output_for_mask on both copies."""
    rng, x, _, _ = data(case, 29)

    def model(rnn):
        inputs = keras.Input((T, D))
        mask = keras.Input((T,), dtype="bool")
        if not masked:
            return keras.Model(inputs, keras.layers.Bidirectional(rnn)(inputs))
        return keras.Model([inputs, mask], keras.layers.Bidirectional(rnn)(inputs, mask=mask))

    ours = model(make_layer(case, U, return_sequences=True))
    ref = model(builtin_layer(case, U, return_sequences=True))
    _copy_into(ours, ref, rng)
    bidirectional = next(l for l in ours.layers if isinstance(l, keras.layers.Bidirectional))
    backward = bidirectional.backward_layer
    assert backward.go_backwards and type(backward) is type(bidirectional.forward_layer)
    args = [x, BIDIRECTIONAL_MASK] if masked else x
    np.testing.assert_allclose(to_numpy(ours(args)), to_numpy(ref(args)), atol=ATOL_F32, rtol=0)


# --- stateful ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_slow_beyond(KIND_CASES + LSTM_CASES[1:]))
def test_stateful_carries_state_and_reset_clears_it(case):
    _, x, _, weights = data(case, 30)
    whole = make_layer(case, U, return_sequences=True, return_state=True)
    stateful = make_layer(case, U, return_sequences=True, stateful=True)
    for layer in (whole, stateful):
        layer(x)
        assign_weights(layer, weights)
    stateful.reset_states()
    want, *want_states = as_list(whole(x))
    first = to_numpy(stateful(x[:, :2]))
    second = to_numpy(stateful(x[:, 2:]))
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), want, atol=ATOL_STATEFUL, rtol=0
    )
    assert_all_close([to_numpy(s) for s in stateful.states], want_states, ATOL_STATEFUL)
    stateful.reset_states()
    for s in stateful.states:
        np.testing.assert_array_equal(to_numpy(s), 0.0)
    np.testing.assert_allclose(
        to_numpy(stateful(x[:, :2])), want[:, :2], atol=ATOL_STATEFUL, rtol=0
    )


# --- gate activations --------------------------------------------------------------------------


GATE_KEYS = {"lstm": ("i", "f", "g", "o"), "gru": ("z", "r")}


@pytest.mark.parametrize("with_initial_state", [True, False], ids=["h0", "zeros"])
@pytest.mark.parametrize("case", LSTM_CASES + GRU_CASES, ids=lambda c: c.id)
def test_gate_activations_match_oracle(case, with_initial_state):
    _, x, states, weights = data(case, 31)
    if not with_initial_state:
        states = [np.zeros_like(s) for s in states]
    layer = make_layer(case, U)
    layer(x)
    assign_weights(layer, weights)
    got = (
        layer.gate_activations(x, initial_state=states)
        if with_initial_state
        else layer.gate_activations(x)
    )
    _, _, want = oracle(case, x, states, weights)
    assert set(GATE_KEYS[case.kind]) <= set(got), sorted(got)
    shared = sorted(set(got) & set(want))  # the GRU candidate "h~" when both name it so
    for name in shared:
        assert np.shape(got[name]) == (B, T, U), (name, np.shape(got[name]))
        np.testing.assert_allclose(
            to_numpy(got[name]), want[name], atol=ATOL_F32, rtol=0, err_msg=name
        )


# --- serialization -----------------------------------------------------------------------------


SERIAL_KW = dict(dropout=0.25, recurrent_dropout=0.1, seed=3, return_sequences=True)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_get_config_round_trip(case):
    layer = make_layer(case, U, **SERIAL_KW)
    config = layer.get_config()
    assert config["units"] == U
    for key, value in {**case.kw, **SERIAL_KW}.items():
        assert config[key] == value, (key, config[key], value)
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_cell_get_config_round_trip(case):
    cls = {
        "simple_rnn": keras_gated.SimpleRNNCell,
        "lstm": keras_gated.LSTMCell,
        "gru": keras_gated.GRUCell,
    }[case.kind]
    cell = cls(U, **case.kw)
    config = cell.get_config()
    assert config["units"] == U
    for key, value in case.kw.items():
        assert config[key] == value, (key, config[key], value)
    assert cls.from_config(config).get_config() == config


def test_variational_dropout_config_round_trip():
    layer = keras_gated.VariationalDropout(0.3, seed=5)
    config = layer.get_config()
    assert config["rate"] == 0.3 and config["seed"] == 5
    assert keras_gated.VariationalDropout.from_config(config).get_config() == config


# Every case: tests/backends/test_registration.py loads every layer type and option.
@pytest.mark.parametrize("case", cases_slow_beyond(ALL_CASES))
def test_saved_model_reloads_with_identical_outputs(case, tmp_path):
    rng, x, _, weights = data(case, 32)
    inputs = keras.Input((T, D))
    rnn = make_layer(case, U, **SERIAL_KW)
    outputs = keras_gated.VariationalDropout(0.2, seed=1)(rnn(inputs))
    model = keras.Model(inputs, outputs)
    assign_weights(rnn, weights)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.layers[1]) is type(rnn)
    assert type(loaded.layers[2]) is keras_gated.VariationalDropout
    assert loaded.layers[1].get_config() == rnn.get_config()
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.id)
def test_saved_keras_rnn_of_our_cell_reloads(case, tmp_path):
    _, x, _, weights = data(case, 35)
    cls = {
        "simple_rnn": keras_gated.SimpleRNNCell,
        "lstm": keras_gated.LSTMCell,
        "gru": keras_gated.GRUCell,
    }[case.kind]
    inputs = keras.Input((T, D))
    rnn = keras.layers.RNN(cls(U, **case.kw), return_sequences=True)
    model = keras.Model(inputs, rnn(inputs))
    assign_weights(rnn, weights)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.layers[1].cell) is cls
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


# --- argument checking -------------------------------------------------------------------------


@pytest.mark.parametrize("units", [0, -3])
@pytest.mark.parametrize("cls", LAYER_CLASSES + CELL_CLASSES, ids=lambda c: c.__name__)
def test_bad_units(cls, units):
    with plain_errors(), pytest.raises(ValueError, match="units"):
        cls(units)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
@pytest.mark.parametrize("argument", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_bad_dropout_rate(cls, argument, rate):
    with plain_errors(), pytest.raises(ValueError, match=rf"\b{argument}\b"):
        cls(U, **{argument: rate})


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_bad_variational_dropout_rate(rate):
    with plain_errors(), pytest.raises(ValueError, match="rate"):
        keras_gated.VariationalDropout(rate)


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_rank_two_input(cls):
    x = np.zeros((B, D), "float32")
    with plain_errors(), pytest.raises(ValueError, match="inputs|sequences"):
        cls(U)(x)


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.id)
def test_initial_state_of_wrong_count(case):
    _, x, states, _ = data(case, 33)
    wrong = states[:1] if case.n_states == 2 else states * 2
    layer = make_layer(case, U)
    with plain_errors(), pytest.raises(ValueError, match="initial_state"):
        layer(x, initial_state=wrong)
    layer(x, initial_state=states)  # built now: the check must hold after build too
    with plain_errors(), pytest.raises(ValueError, match="initial_state"):
        layer(x, initial_state=wrong)


@pytest.mark.parametrize("shape", [(B, U + 1), (B + 1, U), (B, 1, U)], ids=str)
@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.id)
def test_initial_state_of_wrong_shape(case, shape):
    _, x, states, _ = data(case, 34)
    wrong = [np.zeros(shape, "float32")] + states[1:]
    layer = make_layer(case, U)
    layer(x, initial_state=states)
    with plain_errors(), pytest.raises(ValueError, match="initial_state"):
        layer(x, initial_state=wrong)


@pytest.mark.parametrize("case", [c for c in KIND_CASES if c.n_states == 1], ids=lambda c: c.id)
def test_single_initial_state_may_be_a_bare_tensor(case):
    """As in Keras, a one-state layer takes initial_state=h0 as well as [h0]."""
    _, x, states, _ = data(case, 36)
    layer = make_layer(case, U, return_sequences=True)
    np.testing.assert_array_equal(
        to_numpy(layer(x, initial_state=states[0])), to_numpy(layer(x, initial_state=states))
    )


@pytest.mark.tensorflow_only
def test_layers_train_under_xla():
    """`jit_compile=True` (Keras's default on GPUs) needs a bounded while_loop."""
    import keras_gated as kg

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    y = rng.normal(size=(4, 5)).astype("float32")
    for layer in (kg.LSTM(5, recurrent_dropout=0.2), kg.GRU(5), kg.SimpleRNN(5)):
        model = keras.Sequential([keras.Input((6, 3)), layer])
        model.compile("sgd", "mse", jit_compile=True)
        history = model.fit(x, y, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("cls", [keras_gated.LSTM, keras_gated.GRU])
def test_layer_norm_without_bias_equals_the_cell_in_keras_rnn(cls):
    """A layer-normalised cell without a bias (its step weights hold bias=None) runs in our
    layer as in Keras's own RNN loop (found by the torch pass of make test-backends)."""
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    ours = cls(6, layer_norm=True, use_bias=False, return_sequences=True)
    expected = keras.layers.RNN(ours.cell, return_sequences=True)(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(expected), atol=1e-6
    )
