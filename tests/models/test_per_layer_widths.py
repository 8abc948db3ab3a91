"""A LanguageModel with one width per layer (units=[U_1, ..., U_L], U_L = E): shapes, states,
training, generation and an ONNX export equal to Keras."""

import keras
import numpy as np
import pytest

import keras_gated as kg
from tests.export.helpers import (
    PARITY_ATOL,
    RECURRENT_OPS,
    V,
    keras_forward,
    max_diff,
    op_types,
    ort_forward,
    random_inputs,
    randomize,
)
from tests.oracles.harness import to_numpy

E = 16
WIDTHS = [24, 40, E]  # wider, wider still, then E for the projection
ATOL = 1e-5  # float32 forward passes of identical weights agree to ~1e-6


def _model(cell="lstm", **kwargs):
    return kg.language_model(
        V, cell=cell, embed_dim=E, units=WIDTHS, num_layers=3, seed=0, **kwargs
    )


@pytest.mark.parametrize("cell,per_layer", [("lstm", 2), ("gru", 1), ("rnn", 1)])
def test_each_layer_has_its_width_and_states(cell, per_layer):
    model = _model(cell)
    assert [layer.units for layer in model.rnn_layers] == WIDTHS
    assert model.state_sizes == [u for u in WIDTHS for _ in range(per_layer)]
    assert [tuple(s.shape) for s in model.initial_states(3)] == [(3, s) for s in model.state_sizes]
    assert model.get_config()["units"] == WIDTHS
    clone = kg.LanguageModel.from_config(model.get_config())
    clone.build((None, None))
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tied", "untied"])
def test_the_last_width_must_equal_embed_dim(tie_weights):
    with pytest.raises(ValueError, match="embed_dim"):
        kg.language_model(V, embed_dim=E, units=[24, 40, 20], num_layers=3, tie_weights=tie_weights)


@pytest.mark.parametrize(
    "units,needle", [([24, E], "num_layers"), ([24, 0, E], "units"), ([24, 2.5, E], "units")]
)
def test_bad_widths_are_a_clear_error(units, needle):
    with pytest.raises(ValueError, match=needle):
        kg.language_model(V, embed_dim=E, units=units, num_layers=3)


def test_chunks_with_carried_state_equal_one_pass():
    model = _model("lstm")
    x = np.random.default_rng(4).integers(0, V, (2, 9)).astype("int32")
    whole, states = model.call_with_states(x)
    a, s = model.call_with_states(x[:, :4])
    b, s2 = model.call_with_states(x[:, 4:], s)
    np.testing.assert_allclose(
        np.concatenate([to_numpy(a), to_numpy(b)], 1), to_numpy(whole), atol=ATOL
    )
    for p, q in zip(s2, states):
        np.testing.assert_allclose(to_numpy(p), to_numpy(q), atol=ATOL)


def test_one_training_step_changes_every_layer():
    model = _model("gru", dropout=0.1, weight_dropout=0.2)
    model.compile(
        keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x = np.random.default_rng(5).integers(0, V, (4, 6)).astype("int32")
    before = [to_numpy(w) for w in model.trainable_weights]
    loss = model.train_on_batch(x, np.roll(x, -1, axis=1))
    assert np.isfinite(loss)
    assert all(not np.array_equal(b, to_numpy(w)) for b, w in zip(before, model.trainable_weights))


def test_generation_carries_states_of_every_width():
    from keras_gated.data import WordTokenizer

    tokenizer = WordTokenizer().fit("a b c d e f g h i j k l m n o p")
    model = kg.language_model(tokenizer.vocab_size, embed_dim=8, units=[12, 8], seed=0)
    text = kg.generate(model, tokenizer, "a b c", tokens=5, seed=1)
    assert len(tokenizer.encode(text)) == 5


@pytest.mark.parametrize("cell,op", [("lstm", "LSTM"), ("gru", "GRU")])
def test_export_parity(tmp_path, cell, op):
    from keras_gated.export import to_onnx

    model = randomize(_model(cell))
    path = tmp_path / "widths.onnx"
    result = to_onnx(model, path)
    tokens, states = random_inputs(model.state_sizes)
    want_logits, want_states = keras_forward(model, tokens, states)
    got_logits, got_states = ort_forward(path, tokens, states)
    assert [s.shape[1] for s in got_states] == model.state_sizes
    assert max_diff([got_logits, *got_states], [want_logits, *want_states]) <= PARITY_ATOL
    assert result.max_abs_diff <= PARITY_ATOL
    assert [t for t in op_types(path) if t in RECURRENT_OPS] == [op] * len(WIDTHS)
