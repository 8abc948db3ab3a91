"""LanguageModel: tying, serialisation, perplexity and generation against independent figures."""

import keras
import numpy as np
import pytest

import keras_gated as kg
from keras_gated.training import Perplexity, perplexity, token_nll
from tests import backend_ops
from tests.oracles.harness import to_numpy

V, E = 37, 8
ATOL = 1e-5  # float32 forward passes of identical weights agree to ~1e-6


def _model(**kw):
    return kg.language_model(V, embed_dim=E, units=E, num_layers=2, seed=0, **kw)


def test_tying_removes_exactly_vocab_times_embed_parameters():
    tied, untied = _model(tie_weights=True), _model(tie_weights=False)
    assert untied.count_params() - tied.count_params() == V * E


def test_tied_model_uses_one_variable_for_both_ends():
    model = _model(tie_weights=True)
    shaped = [w for w in model.trainable_weights if tuple(w.shape) in ((V, E), (E, V))]
    assert len(shaped) == 1


def test_tied_gradient_is_sum_of_input_and_output_gradients():
    """d loss / d E (tied) = d/dE_in + (d/dE_out)^T of an untied copy with E_out = E_in^T."""
    tied, untied = _model(tie_weights=True), _model(tie_weights=False)
    weights = {w.path.split("/", 1)[1]: w for w in untied.weights}
    for w in tied.weights:
        weights[w.path.split("/", 1)[1]].assign(w)
    untied.embedding.reverse_embeddings.assign(keras.ops.transpose(tied.embedding.embeddings))
    x = np.random.default_rng(0).integers(0, V, (3, 6)).astype("int32")
    y = np.roll(x, -1, axis=1)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def grads(model, variables):
        return backend_ops.value_and_grads(lambda: loss(y, model(x)), variables)[1]

    (g_tied,) = grads(tied, [tied.embedding.embeddings])
    g_in, g_out = grads(untied, [untied.embedding.embeddings, untied.embedding.reverse_embeddings])
    assert np.abs(g_out).max() > 0 and np.abs(g_in).max() > 0
    np.testing.assert_allclose(g_tied, g_in + g_out.T, atol=ATOL)


def test_tying_survives_save_and_load(tmp_path):
    model = _model(tie_weights=True, cell="gru")
    path = tmp_path / "lm.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).integers(0, V, (2, 5)).astype("int32")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=ATOL)
    shaped = [w for w in loaded.trainable_weights if tuple(w.shape) in ((V, E), (E, V))]
    assert len(shaped) == 1


def test_tying_with_mismatched_width_is_refused():
    with pytest.raises(ValueError, match="embed_dim"):
        kg.language_model(V, embed_dim=8, units=12, tie_weights=True)


@pytest.mark.parametrize(
    "bad,name",
    [
        (dict(vocab_size=0), "vocab_size"),
        (dict(units=-1, tie_weights=False), "units"),
        (dict(num_layers=0), "num_layers"),
        (dict(cell="transformer"), "cell"),
        (dict(dropout=1.0), "rate"),
        (dict(recurrent_dropout=-0.1), "recurrent_dropout"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(bad, name):
    args = {"vocab_size": V, "embed_dim": E, "units": E, **bad}
    with pytest.raises(ValueError, match=name):
        kg.language_model(**args)


def test_uniform_model_has_perplexity_equal_to_vocab_size():
    model = _model(tie_weights=True)
    model.embedding.embeddings.assign(np.zeros((V, E), "float32"))  # logits are exactly 0
    ids = np.random.default_rng(2).integers(0, V, 200)
    ppl, count = perplexity(model, ids, batch_size=4, seq_len=7)
    assert count == 4 * (200 // 4 - 1)
    assert ppl == pytest.approx(V, rel=1e-9)


def test_perplexity_equals_hand_computation_over_the_whole_stream():
    model = _model(tie_weights=False, cell="lstm")
    ids = np.random.default_rng(3).integers(0, V, 61)
    ppl, count = perplexity(model, ids, batch_size=2, seq_len=7)  # windows 7,7,7,7,1 per row
    rows = ids[:60].reshape(2, 30)
    logits = to_numpy(model(rows[:, :-1]))  # one pass over each whole row
    nll = token_nll(logits, rows[:, 1:])
    assert count == nll.size == 58
    assert ppl == pytest.approx(float(np.exp(nll.sum() / nll.size)), rel=1e-5)


def test_forward_in_chunks_with_carried_state_equals_one_pass():
    model = _model(cell="lstm", tie_weights=True)
    x = np.random.default_rng(4).integers(0, V, (2, 9)).astype("int32")
    whole, states = model.call_with_states(x)
    a, s = model.call_with_states(x[:, :4])
    b, s2 = model.call_with_states(x[:, 4:], s)
    np.testing.assert_allclose(
        np.concatenate([to_numpy(a), to_numpy(b)], axis=1), to_numpy(whole), atol=ATOL
    )
    for p, q in zip(s2, states):
        np.testing.assert_allclose(to_numpy(p), to_numpy(q), atol=ATOL)


def test_generation_is_reproducible_given_a_seed():
    from keras_gated.data import WordTokenizer

    tokenizer = WordTokenizer().fit("a b c d e f g h i j k l m n o p")
    model = kg.language_model(tokenizer.vocab_size, embed_dim=8, units=8, seed=0)
    one = kg.generate(model, tokenizer, "a b c", tokens=12, seed=5)
    assert one == kg.generate(model, tokenizer, "a b c", tokens=12, seed=5)
    assert one != kg.generate(model, tokenizer, "a b c", tokens=12, seed=6)
    assert len(tokenizer.encode(one)) == 12
    with pytest.raises(ValueError, match="temperature"):
        kg.generate(model, tokenizer, "a", temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        kg.generate(model, tokenizer, "a", top_k=0)


@pytest.mark.parametrize(
    "tokens,needle",
    [
        (np.array([[1, 2, V]], "int32"), "vocab_size"),
        (np.array([[1, -1]], "int32"), "vocab_size"),
        (np.zeros((1, 3), "float32"), "integer"),
        (np.zeros((3,), "int32"), "batch, time"),
    ],
)
def test_bad_tokens_are_a_clear_error(tokens, needle):
    with pytest.raises(ValueError, match=needle):
        _model()(tokens)


@pytest.mark.tensorflow_only
def test_out_of_range_ids_fail_inside_a_compiled_function_too():
    import tensorflow as tf

    model = _model()
    step = tf.function(lambda x: model(x))
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocab_size"):
        step(np.array([[0, V + 3]], "int32"))


def test_a_lambda_layer_is_refused_when_loading(tmp_path):
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.Lambda(lambda x: x * 2), kg.GRU(4)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="[Ll]ambda"):
        keras.models.load_model(tmp_path / "lambda.keras", safe_mode=True)


# Keras's loss and our Perplexity metric both reduce float32 NLLs; their sums over 48 tokens
# agree to float32 rounding, O(1e-6) relative.
RTOL_PERPLEXITY = 1e-5


@pytest.mark.parametrize(
    "cell,options", [("lstm", {"peephole": True}), ("gru", {"reset_after": False})]
)
def test_fit_predict_evaluate(cell, options):
    """fit lowers the loss; evaluate's perplexity is exp(its loss) and exp(mean NLL) of predict."""
    model = kg.language_model(
        V,
        cell=cell,
        embed_dim=E,
        units=E,
        num_layers=2,
        dropout=0.1,
        recurrent_dropout=0.1,
        embed_dropout=0.1,
        seed=0,
        cell_options=options,
    )
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
    )
    x = np.random.default_rng(5).integers(0, V, (8, 6)).astype("int32")
    y = np.roll(x, -1, axis=1)
    history = model.fit(x, y, epochs=4, batch_size=4, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    result = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert result["perplexity"] == pytest.approx(np.exp(result["loss"]), rel=RTOL_PERPLEXITY)
    predicted = model.predict(x, batch_size=4, verbose=0)
    assert predicted.shape == (8, 6, V)
    np.testing.assert_allclose(predicted, to_numpy(model(x)), atol=ATOL)
    nll = token_nll(predicted, y)
    assert result["perplexity"] == pytest.approx(float(np.exp(nll.mean())), rel=RTOL_PERPLEXITY)
