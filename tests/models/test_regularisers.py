"""AWD-LSTM's regularisers as LanguageModel options, against numpy from the equations.

    AR  = alpha * mean(x^2)                 x: the last layer's output after its dropout
    TAR = beta * mean((h_t - h_{t-1})^2)    h: the same output before the dropout
Both are terms of the training loss (`model.losses`) and absent at inference; `weight_dropout`
reaches every recurrent layer; a model trained with every option exports equal to Keras.
"""

import keras
import numpy as np
import pytest

import keras_gated as kg
from keras_gated.layers.activation_regularization import (
    activation_regularization,
    temporal_activation_regularization,
)
from keras_gated.training.build import build_model
from keras_gated.training.config import TrainConfig
from tests.export.helpers import randomize
from tests.oracles.harness import to_numpy

V, E, B, T = 37, 8, 2, 6
ALPHA, BETA = 2.0, 1.0  # awd-lstm's defaults
# float32 means of O(0.01)..O(1) squares against float64: relative rounding O(1e-7); 1e-5
# leaves margin, while a wrong tensor (before/after dropout, a missing term) is off by O(1).
RTOL = 1e-5
# x recovered from the tied logits x E^T by least squares, in float64 from float32 logits
# of O(0.01): O(1e-8) absolute (E (37, 8) ~ U(-0.1, 0.1) has smallest singular value ~0.2);
# h from the inference path differs from training's by float32 rounding, O(1e-8) here.
ATOL_RECOVERED = 1e-6


def tokens(seed=0, batch=B, time=T):
    w = np.random.default_rng(seed).integers(0, V, (batch, time)).astype("int32")
    return w, np.roll(w, -1, axis=1)


def last_layer_output(model, w):
    """h of the last layer (B, T, E), at inference: equal to training's with no dropout inside
    or before the layers."""
    x = model.embedding(w)
    for layer in model.rnn_layers:
        x, *_ = layer(x)
    return to_numpy(x).astype(np.float64)


def ar(x, alpha):
    return alpha * np.mean(np.square(x))


def tar(h, beta):
    return beta * np.mean(np.square(np.diff(h, axis=1)))


def test_ar_and_tar_on_a_known_tensor():
    y = np.random.default_rng(1).normal(size=(3, 5, 4))
    got_ar = to_numpy(activation_regularization(y.astype("float32"), ALPHA))
    got_tar = to_numpy(temporal_activation_regularization(y.astype("float32"), BETA))
    np.testing.assert_allclose(got_ar, ALPHA * (y**2).mean(), rtol=RTOL)
    np.testing.assert_allclose(got_tar, BETA * ((y[:, 1:] - y[:, :-1]) ** 2).mean(), rtol=RTOL)
    assert (
        float(to_numpy(temporal_activation_regularization(y[:, :1].astype("float32"), BETA))) == 0.0
    )


def test_ar_reads_the_output_after_dropout_and_tar_before():
    """One layer with dropout after it: x = h * m (m (B, 1, E) locked). x is recovered from the
    tied logits x E^T; AR must be alpha mean(x^2) and TAR beta mean(diff(h)^2) exactly."""
    rate = 0.5
    model = kg.language_model(
        V, embed_dim=E, units=E, num_layers=1, dropout=rate, seed=0, ar_alpha=ALPHA, tar_beta=BETA
    )
    w, _ = tokens()
    h = last_layer_output(model, w)
    logits = to_numpy(model(w, training=True)).astype(np.float64)
    got_ar, got_tar = (float(to_numpy(loss)) for loss in model.losses)
    matrix = to_numpy(model.embedding.embeddings).astype(np.float64)
    x = np.linalg.lstsq(matrix, logits.reshape(-1, V).T, rcond=None)[0].T.reshape(B, T, E)
    k = np.abs(h).argmax(axis=1)[:, None]  # per (b, u), the step where h is largest
    ratio = np.take_along_axis(x, k, 1) / np.take_along_axis(h, k, 1)  # 0 or 1 / (1 - p)
    m = np.where(ratio > 1, 1 / (1 - rate), 0.0)  # (B, 1, E)
    np.testing.assert_allclose(x, h * m, atol=ATOL_RECOVERED)
    assert np.any(m == 0), "the dropout dropped nothing: the test would not tell x from h"
    np.testing.assert_allclose(got_ar, ar(h * m, ALPHA), rtol=RTOL)
    np.testing.assert_allclose(got_tar, tar(h, BETA), rtol=RTOL)


def test_losses_only_when_training_and_only_when_asked():
    model = kg.language_model(
        V, embed_dim=E, units=E, num_layers=2, seed=0, ar_alpha=ALPHA, tar_beta=BETA
    )
    w, _ = tokens()
    model(w, training=True)
    assert len(model.losses) == 2
    model(w, training=False)
    assert model.losses == []
    model(w)
    assert model.losses == []
    only_ar = kg.language_model(V, embed_dim=E, units=E, seed=0, ar_alpha=ALPHA)
    only_ar(w, training=True)
    assert len(only_ar.losses) == 1
    off = kg.language_model(V, embed_dim=E, units=E, seed=0)
    off(w, training=True)
    assert off.losses == []


def test_fit_reports_the_loss_with_ar_and_tar():
    """The training recipe's model (`build_model`, as `keras_gated.train` fits it): one batch's
    reported loss is cross-entropy + AR + TAR at the weights before the step."""
    config = TrainConfig(
        cell="lstm",
        layers=2,
        embed_dim=E,
        units=E,
        dropout=0.0,
        recurrent_dropout=0.0,
        embed_dropout=0.0,
        ar_alpha=ALPHA,
        tar_beta=BETA,
        seed=0,
    )
    model = build_model(config, V, stateful=False)
    model.build((None, None))
    randomize(model)  # activations of O(0.1), so AR and TAR weigh in the loss
    w, y = tokens(2)
    h = last_layer_output(model, w)
    logits = to_numpy(model(w)).astype(np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_p, y[..., None], -1).mean()
    history = model.fit(w, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    want = cross_entropy + ar(h, ALPHA) + tar(h, BETA)
    assert ar(h, ALPHA) + tar(h, BETA) > 10 * RTOL * want  # the terms exceed the tolerance
    np.testing.assert_allclose(history.history["loss"][0], want, rtol=RTOL)


def test_weight_dropout_reaches_every_recurrent_layer():
    model = kg.language_model(
        V, cell="gru", embed_dim=E, units=[12, E], num_layers=2, weight_dropout=0.3
    )
    assert [layer.weight_dropout for layer in model.rnn_layers] == [0.3, 0.3]
    assert kg.language_model(V, cell="keras-lstm", embed_dim=E, units=E).rnn_layers
    with pytest.raises(ValueError, match="weight_dropout"):
        kg.language_model(V, cell="keras-lstm", embed_dim=E, units=E, weight_dropout=0.3)
    with pytest.raises(ValueError, match="ar_alpha"):
        kg.language_model(V, embed_dim=E, units=E, ar_alpha=-1.0)


def test_model_trained_with_every_regulariser_exports_equal_to_keras(tmp_path):
    from keras_gated.export import to_onnx
    from tests.export.helpers import (
        PARITY_ATOL,
        RECURRENT_OPS,
        keras_forward,
        max_diff,
        op_types,
        ort_forward,
        random_inputs,
    )
    from tests.export.helpers import V as V_EXPORT

    model = kg.language_model(
        V_EXPORT,
        embed_dim=E,
        units=[12, E],
        num_layers=2,
        dropout=0.2,
        recurrent_dropout=0.1,
        weight_dropout=0.3,
        embed_dropout=0.1,
        embed_weight_dropout=0.2,
        ar_alpha=ALPHA,
        tar_beta=BETA,
        seed=0,
    )
    model.compile(
        keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    w = np.random.default_rng(3).integers(0, V_EXPORT, (8, T)).astype("int32")
    model.fit(w, np.roll(w, -1, axis=1), batch_size=4, epochs=2, verbose=0)
    path = tmp_path / "awd.onnx"
    result = to_onnx(model, path)
    ids, states = random_inputs(model.state_sizes)
    want = keras_forward(model, ids, states)
    got = ort_forward(path, ids, states)
    assert max_diff([got[0], *got[1]], [want[0], *want[1]]) <= PARITY_ATOL
    assert result.max_abs_diff <= PARITY_ATOL
    types = op_types(path)
    assert [t for t in types if t in RECURRENT_OPS] == ["LSTM", "LSTM"] and "Dropout" not in types
