"""Keras's published RNN examples, rebuilt small with random weights, on our layers and on
Keras's built-ins: each exports with exactly one native node per recurrent layer (a
Bidirectional counts once), no Loop or Scan, and onnxruntime equals Keras within
`EXAMPLE_ATOL` on batches whose rows have different lengths (left-padded, as
`keras.utils.pad_sequences` pads, where the example masks).

Examples (keras.io/examples): bidirectional LSTM IMDB classifier, addition with a
sequence-to-sequence LSTM, character-level seq2seq translation (training model, and the
inference encoder and decoder with state inputs), character-level text generation, weather
forecasting, video classification (GRU with an explicit mask input), speech recognition
(DeepSpeech2-like: Bidirectional GRUs over convolutional features), captcha OCR (Bi-LSTMs
with dropout over convolutional features).
"""

import keras
import numpy as np
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, op_types, randomize

# float32 onnxruntime vs float32 Keras at these sizes (U <= 8, T <= 9): measured max ~3e-7;
# 1e-5 leaves a 30x margin while a wrong mask step or gate shows as O(0.1).
EXAMPLE_ATOL = 1e-5
V, B = 20, 4
LENGTHS = [9, 5, 1, 7]  # one row per length: the batch's rows differ

IMPLS = {"ours": keras_gated, "keras": keras.layers}


def rnn(impl, kind, units, **options):
    """`kind` ("LSTM", "GRU", "SimpleRNN") from our layers or Keras's built-ins."""
    return getattr(IMPLS[impl], kind)(units, **options)


def left_padded_tokens(rng, lengths=LENGTHS):
    """Token ids (B, max length) with zeros on the left, as `pad_sequences` writes them."""
    tokens = np.zeros((len(lengths), max(lengths)), np.int32)
    for row, n in enumerate(lengths):
        tokens[row, -n:] = rng.integers(1, V, n)
    return tokens


def check(tmp_path, model, feeds, native_nodes, name="model"):
    """Exports `model`, then compares onnxruntime with Keras on `feeds` (by input name)."""
    path = tmp_path / f"{name}.onnx"
    result = to_onnx(model, path)
    types = op_types(path)
    assert len([t for t in types if t in RECURRENT_OPS]) == native_nodes
    assert not [t for t in types if t in LOOP_OPS]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert len(names) == len(model.outputs)
    got = session.run(names, feeds)
    xs = [feeds[x.name] for x in model.inputs]
    want = model(xs if len(xs) > 1 else xs[0], training=False)
    want = want if isinstance(want, (list, tuple)) else [want]
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        assert float(np.max(np.abs(g - np.asarray(w)))) <= EXAMPLE_ATOL
    return path, result


@pytest.fixture(params=sorted(IMPLS))
def impl(request):
    return request.param


def test_bidirectional_imdb_classifier(tmp_path, impl):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(V, 8, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(rnn(impl, "LSTM", 6, return_sequences=True))(x)
    x = keras.layers.Bidirectional(rnn(impl, "LSTM", 5))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = randomize(keras.Model(tokens, outputs))
    _, result = check(tmp_path, model, {"tokens": left_padded_tokens(np.random.default_rng(0))}, 2)
    assert result.tf2onnx_layers == []


def test_addition_seq2seq(tmp_path, impl):
    inputs = keras.Input((7, 12), name="question")
    x = rnn(impl, "LSTM", 8)(inputs)
    x = keras.layers.RepeatVector(4)(x)
    x = rnn(impl, "LSTM", 8, return_sequences=True)(x)
    outputs = keras.layers.TimeDistributed(keras.layers.Dense(12, activation="softmax"))(x)
    model = randomize(keras.Model(inputs, outputs))
    x = np.random.default_rng(1).standard_normal((B, 7, 12)).astype(np.float32)
    check(tmp_path, model, {"question": x}, 2)


def test_character_translation_training_and_inference_models(tmp_path, impl):
    encoder_inputs = keras.Input((None, 10), name="encoder_inputs")
    _, h, c = rnn(impl, "LSTM", 8, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input((None, 11), name="decoder_inputs")
    decoder_lstm = rnn(impl, "LSTM", 8, return_sequences=True, return_state=True)
    decoder_dense = keras.layers.Dense(11, activation="softmax")
    y, _, _ = decoder_lstm(decoder_inputs, initial_state=[h, c])
    training = randomize(keras.Model([encoder_inputs, decoder_inputs], decoder_dense(y)))
    rng = np.random.default_rng(2)
    source = rng.standard_normal((B, 6, 10)).astype(np.float32)
    target = rng.standard_normal((B, 5, 11)).astype(np.float32)
    check(tmp_path, training, {"encoder_inputs": source, "decoder_inputs": target}, 2, "train")

    encoder = keras.Model(encoder_inputs, [h, c])  # the inference models reuse the layers
    state_h, state_c = keras.Input((8,), name="state_h"), keras.Input((8,), name="state_c")
    y, h2, c2 = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder = keras.Model([decoder_inputs, state_h, state_c], [decoder_dense(y), h2, c2])
    check(tmp_path, encoder, {"encoder_inputs": source}, 1, "encoder")
    path, _ = check(
        tmp_path,
        decoder,
        {"decoder_inputs": target, "state_h": source[:, 0, :8], "state_c": source[:, 1, :8]},
        1,
        "decoder",
    )

    # greedy decoding as the example runs it: one step at a time, states fed back
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    states = [np.asarray(s) for s in encoder(source)]
    onnx_states = list(states)
    for step in range(3):
        token = target[:, step : step + 1]
        _, *states = [np.asarray(t) for t in decoder([token, *states])]
        _, *onnx_states = session.run(
            names, {"decoder_inputs": token, "state_h": onnx_states[0], "state_c": onnx_states[1]}
        )
    assert (
        max(float(np.max(np.abs(o - np.asarray(s)))) for o, s in zip(onnx_states, states))
        <= EXAMPLE_ATOL
    )


def test_text_generation(tmp_path, impl):
    inputs = keras.Input((6, 9), name="chars")
    outputs = keras.layers.Dense(9, activation="softmax")(rnn(impl, "LSTM", 8)(inputs))
    model = randomize(keras.Model(inputs, outputs))
    x = np.eye(9, dtype=np.float32)[np.random.default_rng(3).integers(0, 9, (B, 6))]
    check(tmp_path, model, {"chars": x}, 1)


def test_weather_forecasting(tmp_path, impl):
    inputs = keras.Input((None, 5), name="features")
    outputs = keras.layers.Dense(1)(rnn(impl, "LSTM", 8)(inputs))
    model = randomize(keras.Model(inputs, outputs))
    x = np.random.default_rng(4).standard_normal((B, 9, 5)).astype(np.float32)
    check(tmp_path, model, {"features": x}, 1)


def test_video_classification_with_mask_input(tmp_path, impl):
    frames = keras.Input((None, 6), name="frame_features")
    mask = keras.Input((None,), dtype="bool", name="frame_mask")
    x = rnn(impl, "GRU", 8, return_sequences=True)(frames, mask=mask)
    x = rnn(impl, "GRU", 4)(x)
    x = keras.layers.Dropout(0.4)(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = randomize(keras.Model([frames, mask], outputs))
    valid = np.arange(9)[None, :] < np.asarray(LENGTHS)[:, None]  # frames padded at the end
    x = np.random.default_rng(5).standard_normal((B, 9, 6)).astype(np.float32)
    check(tmp_path, model, {"frame_features": x, "frame_mask": valid}, 2)


def test_speech_recognition_bidirectional_gru_stack(tmp_path, impl):
    spectrogram = keras.Input((None, 8), name="spectrogram")
    x = keras.layers.Reshape((-1, 8, 1))(spectrogram)
    x = keras.layers.Conv2D(4, (3, 3), strides=(1, 2), padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Reshape((-1, 4 * 4))(x)
    for _ in range(2):
        gru = rnn(impl, "GRU", 6, return_sequences=True, reset_after=True)
        x = keras.layers.Dropout(0.5)(keras.layers.Bidirectional(gru, merge_mode="concat")(x))
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(5, activation="softmax")(keras.layers.Dropout(0.5)(x))
    model = randomize(keras.Model(spectrogram, outputs))
    for layer in model.layers:  # a variance must stay positive
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(np.abs(layer.moving_variance.numpy()) + 0.5)
    x = np.random.default_rng(6).standard_normal((B, 9, 8)).astype(np.float32)
    _, result = check(tmp_path, model, {"spectrogram": x}, 2)
    assert [name.split("_")[0] for name in result.tf2onnx_layers] == ["conv2d"]


def test_captcha_ocr_bidirectional_lstm_with_dropout(tmp_path, impl):
    image = keras.Input((16, 8, 1), name="image")
    x = keras.layers.Conv2D(4, (3, 3), activation="relu", padding="same")(image)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Reshape((8, 4 * 4))(x)
    x = keras.layers.Dropout(0.2)(keras.layers.Dense(8, activation="relu")(x))
    x = keras.layers.Bidirectional(rnn(impl, "LSTM", 6, return_sequences=True, dropout=0.25))(x)
    x = keras.layers.Bidirectional(rnn(impl, "LSTM", 4, return_sequences=True, dropout=0.25))(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = randomize(keras.Model(image, outputs))
    x = np.random.default_rng(7).standard_normal((B, 16, 8, 1)).astype(np.float32)
    check(tmp_path, model, {"image": x}, 2)
