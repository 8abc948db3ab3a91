"""Embedding dropout drops whole word types: y = m[w] * E[w] = (diag(m) E)[w], m (V,) with
entries 0 or 1 / (1 - p), one mask per call, none at inference.

Black box: the mask is read off the output (a token's row is all zero or all E[w] / (1 - p)),
and the whole output must then equal the lookup in the masked matrix diag(m) E, computed in
numpy. Tokens repeat at several positions and in several rows of the batch, so a per-position
or per-sequence mask cannot pass.
"""

import keras
import numpy as np
import pytest

import keras_gated
from tests.oracles.harness import to_numpy

V, E, B, T = 40, 5, 4, 30  # 120 tokens over 40 types: every type seen about 3 times
RATE = 0.5
# float32 products x / (1 - p) against float64: relative rounding O(1e-7).
RTOL = 1e-6


def lookup(seed=0):
    """Random tokens w (B, T), matrix E (V, E) without zeros, and x = E[w] (float32)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, V, (B, T)).astype("int32")
    matrix = rng.uniform(0.5, 1.5, (V, E)) * rng.choice([-1, 1], (V, E))
    return w, matrix, matrix[w].astype("float32")


def read_mask(y, w):
    """m (V,) from the output: 1 / (1 - p) for a type whose first occurrence is kept, else 0
    (types that do not occur stay nan)."""
    m = np.full(V, np.nan)
    for b, t in np.ndindex(w.shape):
        if np.isnan(m[w[b, t]]):
            m[w[b, t]] = 1 / (1 - RATE) if np.any(y[b, t] != 0) else 0.0
    return m


def test_whole_word_types_dropped_and_kept_rows_scaled():
    w, matrix, x = lookup()
    layer = keras_gated.EmbeddingDropout(V, RATE, seed=3)
    masks = []
    for _ in range(2):
        y = to_numpy(layer(x, w, training=True))
        m = read_mask(y, w)
        want = (m[:, None] * matrix)[w]  # the lookup in diag(m) E
        np.testing.assert_allclose(y, want, rtol=RTOL, atol=0)
        seen = m[~np.isnan(m)]
        assert 0.25 < np.mean(seen == 0) < 0.75, seen  # p = 0.5 over ~37 types
        masks.append(m)
    assert not np.array_equal(masks[0], masks[1]), "a new mask on every call"


def test_same_token_same_fate_everywhere():
    """A type that occurs at several positions of several sequences is kept or dropped at all."""
    w, _, x = lookup(1)
    w[:, 0] = w[0, 3] = w[2, 7] = 5  # type 5 in every row and twice in rows 0 and 2
    x = x.copy()
    x[w == 5] = 1.0
    y = to_numpy(keras_gated.EmbeddingDropout(V, RATE, seed=4)(x, w, training=True))
    fates = {bool(np.any(row != 0)) for row in y[w == 5]}
    assert len(fates) == 1


def test_identity_at_inference_and_at_rate_zero():
    w, _, x = lookup(2)
    layer = keras_gated.EmbeddingDropout(V, RATE)
    np.testing.assert_array_equal(to_numpy(layer(x, w)), x)
    np.testing.assert_array_equal(to_numpy(layer(x, w, training=False)), x)
    zero = keras_gated.EmbeddingDropout(V, 0.0)
    np.testing.assert_array_equal(to_numpy(zero(x, w, training=True)), x)


def test_config_round_trip_and_checked_arguments():
    layer = keras_gated.EmbeddingDropout(V, 0.25, seed=7, name="drop_rows")
    config = layer.get_config()
    assert (config["vocab_size"], config["rate"], config["seed"]) == (V, 0.25, 7)
    assert keras_gated.EmbeddingDropout.from_config(config).get_config() == config
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is keras_gated.EmbeddingDropout and again.get_config() == config
    with pytest.raises(ValueError, match="rate"):
        keras_gated.EmbeddingDropout(V, 1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        keras_gated.EmbeddingDropout(0, 0.1)


def test_in_a_tied_language_model_only_the_lookup_is_dropped():
    """With tied weights the projection reads the undropped E: no logit column is all zero,
    though about half of the word types lose their embedding row in the call."""
    model = keras_gated.language_model(
        V, embed_dim=E, units=E, num_layers=1, seed=0, embed_weight_dropout=RATE
    )
    w, _, _ = lookup(3)
    trained = to_numpy(model(w, training=True))
    assert np.all(np.any(trained != 0, axis=(0, 1))), "a column of E^T was dropped"
    inferred = to_numpy(model(w, training=False))
    assert not np.allclose(trained, inferred)  # the rows were dropped in the lookup
    plain = keras_gated.language_model(V, embed_dim=E, units=E, num_layers=1, seed=0)
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(to_numpy(plain(w)), inferred)
