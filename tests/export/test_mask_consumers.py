"""Masks reach the layers that consume them, lowered or converted by tf2onnx, with the
recurrent layers still one native node each.

Keras hands masks on eagerly (`export/call_masks.py`): `Attention()([decoder, encoder])`
takes both sequences' masks though the functional graph records neither, and the decoder's
mask (its Embedding's `NotEqual`) is in the graph nowhere when the decoder LSTM, called with
`initial_state`, takes no mask. The export must find them: `Attention` and
`AdditiveAttention` and the global poolings are lowered natively, `MultiHeadAttention` is
converted by tf2onnx with the masks attached to its inputs. Each model is checked on token
batches whose rows have different lengths, left- and right-padded.
"""

import keras
import numpy as np
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, op_types, randomize

# float32 onnxruntime vs float32 Keras, U = 5, T <= 7: measured max ~1.2e-7; a lost mask
# shows as O(1e-3)..O(0.1) (the encoder mask lost in Attention gave 1.9e-3 to 0.2).
CONSUMER_ATOL = 1e-5
V, E, U = 13, 6, 5

ATTENTIONS = {
    "dot": lambda: keras.layers.Attention(),
    "dot-scaled": lambda: keras.layers.Attention(use_scale=True),
    "concat-scaled": lambda: keras.layers.Attention(use_scale=True, score_mode="concat"),
    "additive": lambda: keras.layers.AdditiveAttention(),
    "additive-unscaled": lambda: keras.layers.AdditiveAttention(use_scale=False),
    "multi_head": lambda: keras.layers.MultiHeadAttention(num_heads=2, key_dim=3),
}


def tokens(lengths, time, left, seed):
    """Token ids (B, time) in [1, V), zeros padding each row to `time` on the left or right."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), time), np.int32)
    for row, n in enumerate(lengths):
        if left:
            x[row, time - n :] = rng.integers(1, V, n)
        else:
            x[row, :n] = rng.integers(1, V, n)
    return x


def seq2seq(attention, use_causal_mask=False):
    """The encoder-decoder with attention of Keras's examples, small."""
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    encoded, h, c = keras_gated.LSTM(U, return_sequences=True, return_state=True)(
        keras.layers.Embedding(V, E, mask_zero=True)(source)
    )
    decoded = keras_gated.LSTM(U, return_sequences=True)(
        keras.layers.Embedding(V, E, mask_zero=True)(target), initial_state=[h, c]
    )
    layer = ATTENTIONS[attention]()
    options = {"use_causal_mask": True} if use_causal_mask else {}
    if isinstance(layer, keras.layers.MultiHeadAttention):
        attended = layer(decoded, encoded, **options)
    else:
        attended = layer([decoded, encoded], **options)
    y = keras.layers.TimeDistributed(keras.layers.Dense(U, activation="tanh"))(attended)
    return randomize(keras.Model([source, target], keras.layers.Dense(V)(y)))


def check(tmp_path, model, feeds, native_nodes):
    path = tmp_path / "model.onnx"
    result = to_onnx(model, path)
    types = op_types(path)
    assert len([t for t in types if t in RECURRENT_OPS]) == native_nodes
    assert not [t for t in types if t in LOOP_OPS]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, feeds)
    xs = [feeds[x.name] for x in model.inputs]
    want = np.asarray(model(xs if len(xs) > 1 else xs[0]))
    assert got.shape == want.shape
    assert float(np.max(np.abs(got - want))) <= CONSUMER_ATOL
    return result


@pytest.mark.parametrize("use_causal_mask", [False, True])
@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
def test_attention_seq2seq_takes_both_masks(tmp_path, attention, use_causal_mask):
    model = seq2seq(attention, use_causal_mask)
    feeds = {
        "source": tokens([7, 3, 5], 7, left=False, seed=0),
        "target": tokens([2, 6, 4], 6, left=False, seed=1),
    }
    result = check(tmp_path, model, feeds, 2)
    converted = [] if attention != "multi_head" else [model.layers[-3].name]
    assert result.tf2onnx_layers == converted


def test_masks_matter_here(tmp_path):
    """The oracle can fail: the same model with its masks dropped differs from Keras."""
    model = seq2seq("dot")
    feeds = [tokens([7, 3, 5], 7, left=False, seed=0), tokens([2, 6, 4], 6, left=False, seed=1)]
    masked = np.asarray(model(feeds))
    unmasked = np.asarray(model([np.where(f == 0, 1, f) for f in feeds]))
    assert float(np.max(np.abs(masked - unmasked))) > 100 * CONSUMER_ATOL


@pytest.mark.parametrize("left", [False, True], ids=["right_padded", "left_padded"])
@pytest.mark.parametrize("pooling", ["GlobalAveragePooling1D", "GlobalMaxPooling1D"])
@pytest.mark.parametrize("cell", ["ours", "keras"])
def test_global_pooling_after_a_masked_recurrent_layer(tmp_path, pooling, left, cell):
    """Average: a mean over the valid steps only (the mask passes Dense and TimeDistributed);
    max: over every step (Keras's ignores masks), masked ones holding repeated outputs."""
    source = keras.Input((None,), dtype="int32", name="source")
    x = keras.layers.Embedding(V, E, mask_zero=True)(source)
    rnn_cell = keras_gated.GRUCell(U) if cell == "ours" else keras.layers.LSTMCell(U)
    x = keras.layers.Bidirectional(keras.layers.RNN(rnn_cell, return_sequences=True))(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(U))(x)
    x = keras.layers.Dense(U, activation="relu")(x)
    x = getattr(keras.layers, pooling)()(x)
    model = randomize(keras.Model(source, keras.layers.Dense(2)(x)))
    result = check(tmp_path, model, {"source": tokens([7, 2, 5], 7, left, seed=2)}, 1)
    assert result.tf2onnx_layers == []


def test_a_converted_layer_gets_its_input_mask(tmp_path):
    """A layer with no native lowering (a user's masked mean) goes through tf2onnx and takes
    the mask of its input, as Keras hands it."""

    @keras.saving.register_keras_serializable(package="tests_export")
    class MaskedMean(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def call(self, x, mask=None):
            m = keras.ops.expand_dims(keras.ops.cast(mask, x.dtype), -1)
            return keras.ops.sum(x * m, axis=1) / keras.ops.sum(m, axis=1)

        def compute_mask(self, x, mask=None):
            return None

    source = keras.Input((None,), dtype="int32", name="source")
    x = keras.layers.Embedding(V, E, mask_zero=True)(source)
    x = keras_gated.LSTM(U, return_sequences=True)(x)
    model = randomize(keras.Model(source, MaskedMean()(x)))
    result = check(tmp_path, model, {"source": tokens([7, 2, 5], 7, True, seed=3)}, 1)
    assert result.tf2onnx_layers == [model.layers[-1].name]
