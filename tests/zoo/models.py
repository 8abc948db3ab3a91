"""Every keras.io example whose model holds a recurrent layer, rebuilt small.

One builder per example, named after its file under keras-io's `examples/` (folder_file), taking
`rnn`: the namespace the recurrent layers and cells come from (`keras_gated` or
`keras.layers`), so the same architecture is built once with our layers and once with Keras's
built-ins. A builder returns a `Case`: the model, synthetic inputs and targets (ROWS rows: two
fit steps of batch B), the loss, and how many native ONNX recurrent nodes the
export must hold (a Bidirectional layer is one node).

What each rebuild keeps: the layer graph of the example (masks, Bidirectional, stacking,
initial_state / return_state, TimeDistributed, convolutional front ends, attention, the
recurrent layers' own arguments). What it changes: sizes (vocabulary <= 50, units <= 16,
T <= 12), data (random), and what is not the model: pretrained encoders (BERT, keras_hub's
TransformerEncoder) become a few plain layers with the same outputs' role, and CTC endpoint
layers become `keras.losses.CTC` in `compile` (the same loss). Custom layers the examples
define around the recurrent one (graph convolution, message passing) are written here as
small serialisable layers.
"""

import dataclasses

import keras
import numpy as np

B = 4  # batch
ROWS = 2 * B  # two fit steps
V = 24  # vocabulary
SEED = 0


@dataclasses.dataclass
class Case:
    """A rebuilt example.

    Attributes:
        model: the built Keras model.
        x: its inputs, one array or a dict by input name, ROWS rows.
        y: the targets, ROWS rows.
        loss: for `compile`.
        native_nodes: ONNX LSTM/GRU/RNN nodes the export must hold.
    """

    model: keras.Model
    x: object
    y: np.ndarray
    loss: object
    native_nodes: int


def _rng(seed=SEED):
    return np.random.default_rng(seed)


def _normal(shape, seed=SEED):
    return _rng(seed).standard_normal(shape).astype("float32")


def _tokens(time, vocab=V, seed=SEED, left_pad=False):
    """Token ids (ROWS, time) in 1..vocab-1; with `left_pad`, rows of different lengths
    zero-padded on the left as `keras.utils.pad_sequences` pads."""
    tokens = _rng(seed).integers(1, vocab, (ROWS, time)).astype("int32")
    if left_pad:
        lengths = [time, time // 2, 1, time - 2] * (ROWS // 4)
        for row, n in enumerate(lengths):
            tokens[row, : time - n] = 0
    return tokens


def _classes(n, count=ROWS, seed=SEED):
    return _rng(seed + 1).integers(0, n, (count,)).astype("int32")


def _ctc_labels(length, classes, seed=SEED):
    """Dense CTC targets (ROWS, length) with ids in 1..classes-1 (0 is CTC's blank)."""
    return _rng(seed + 2).integers(1, classes, (ROWS, length)).astype("int32")


# --- nlp ---------------------------------------------------------------------------------


def nlp_bidirectional_lstm_imdb(rnn):
    """Embedding -> Bi-LSTM(return_sequences) -> Bi-LSTM -> sigmoid (no mask, as the example)."""
    inputs = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(V, 8)(inputs)
    x = keras.layers.Bidirectional(rnn.LSTM(8, return_sequences=True))(x)
    x = keras.layers.Bidirectional(rnn.LSTM(8))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    return Case(
        model, _tokens(10), _classes(2)[:, None].astype("float32"), "binary_crossentropy", 2
    )


def nlp_addition_rnn(rnn):
    """One-hot question -> LSTM encoder -> RepeatVector -> LSTM decoder -> softmax per digit."""
    maxlen, chars, digits = 7, 12, 3
    model = keras.Sequential(
        [
            keras.Input((maxlen, chars), name="question"),
            rnn.LSTM(16),
            keras.layers.RepeatVector(digits + 1),
            rnn.LSTM(16, return_sequences=True),
            keras.layers.Dense(chars, activation="softmax"),
        ]
    )
    x = np.eye(chars, dtype="float32")[_rng().integers(0, chars, (ROWS, maxlen))]
    y = np.eye(chars, dtype="float32")[_rng(1).integers(0, chars, (ROWS, digits + 1))]
    return Case(model, x, y, "categorical_crossentropy", 2)


def nlp_lstm_seq2seq(rnn):
    """Encoder LSTM(return_state) whose [h, c] start the decoder LSTM (initial_state)."""
    source_chars, target_chars, units = 10, 11, 8
    encoder_inputs = keras.Input((None, source_chars), name="encoder_inputs")
    _, h, c = rnn.LSTM(units, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input((None, target_chars), name="decoder_inputs")
    y, _, _ = rnn.LSTM(units, return_sequences=True, return_state=True)(
        decoder_inputs, initial_state=[h, c]
    )
    outputs = keras.layers.Dense(target_chars, activation="softmax")(y)
    model = keras.Model([encoder_inputs, decoder_inputs], outputs)
    x = {
        "encoder_inputs": _normal((ROWS, 9, source_chars)),
        "decoder_inputs": _normal((ROWS, 6, target_chars), seed=1),
    }
    y = np.eye(target_chars, dtype="float32")[_rng(2).integers(0, target_chars, (ROWS, 6))]
    return Case(model, x, y, "categorical_crossentropy", 2)


def nlp_active_learning_review_classification(rnn):
    """Embedding -> Bi-LSTM(return_sequences) -> GlobalMaxPool1D -> Dense -> Dropout -> sigmoid."""
    model = keras.Sequential(
        [
            keras.Input((12,), name="tokens"),
            keras.layers.Embedding(V, 8),
            keras.layers.Bidirectional(rnn.LSTM(8, return_sequences=True)),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    return Case(
        model, _tokens(12), _classes(2)[:, None].astype("float32"), "binary_crossentropy", 1
    )


def nlp_semantic_similarity_with_bert(rnn):
    """(input_ids, attention_masks, token_type_ids) -> encoder -> Bi-LSTM(return_sequences)
    -> [GlobalAveragePooling1D, GlobalMaxPooling1D] -> Dropout -> softmax(3).

    The frozen BERT becomes the sum of token, attention-mask and segment embeddings (the
    Bi-LSTM sees BERT's last_hidden_state without a Keras mask, as here)."""
    time = 12
    ids = keras.Input((time,), dtype="int32", name="input_ids")
    attention = keras.Input((time,), dtype="int32", name="attention_masks")
    segments = keras.Input((time,), dtype="int32", name="token_type_ids")
    hidden = keras.layers.Add()(
        [
            keras.layers.Embedding(V, 8)(ids),
            keras.layers.Embedding(2, 8)(attention),
            keras.layers.Embedding(2, 8)(segments),
        ]
    )
    x = keras.layers.Bidirectional(rnn.LSTM(8, return_sequences=True))(hidden)
    x = keras.layers.concatenate(
        [keras.layers.GlobalAveragePooling1D()(x), keras.layers.GlobalMaxPooling1D()(x)]
    )
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model([ids, attention, segments], outputs)
    tokens = _tokens(time, left_pad=False)
    attention_masks = np.arange(time)[None, :] < np.array([12, 7, 3, 10] * 2)[:, None]
    x = {
        "input_ids": tokens * attention_masks,
        "attention_masks": attention_masks.astype("int32"),
        "token_type_ids": (np.arange(time)[None, :] >= 6).astype("int32").repeat(ROWS, 0),
    }
    y = np.eye(3, dtype="float32")[_classes(3)]
    return Case(model, x, y, "categorical_crossentropy", 1)


def nlp_imdb_lstm_sentiment(rnn):
    """Embedding -> LSTM(dropout) -> sigmoid (a keras-io pull request's file)."""
    model = keras.Sequential(
        [
            keras.Input((12,), name="tokens"),
            keras.layers.Embedding(V, 8),
            rnn.LSTM(8, dropout=0.2),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    return Case(
        model,
        _tokens(12, left_pad=True),
        _classes(2)[:, None].astype("float32"),
        "binary_crossentropy",
        1,
    )


def nlp_character_and_byte_level_text_generation(rnn):
    """Token ids -> Embedding -> LSTM -> softmax over the next character."""
    inputs = keras.Input((None,), name="tokens")
    x = keras.layers.Embedding(V, 8)(inputs)
    x = rnn.LSTM(8)(x)
    outputs = keras.layers.Dense(V, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    return Case(
        model, _tokens(10).astype("float32"), _classes(V), "sparse_categorical_crossentropy", 1
    )


# --- generative --------------------------------------------------------------------------


def generative_lstm_character_level_text_generation(rnn):
    """One-hot window -> LSTM -> softmax over the next character."""
    maxlen, chars = 8, 9
    model = keras.Sequential(
        [
            keras.Input((maxlen, chars), name="chars"),
            rnn.LSTM(16),
            keras.layers.Dense(chars, activation="softmax"),
        ]
    )
    x = np.eye(chars, dtype="float32")[_rng().integers(0, chars, (ROWS, maxlen))]
    return Case(
        model, x, np.eye(chars, dtype="float32")[_classes(chars)], "categorical_crossentropy", 1
    )


# --- timeseries --------------------------------------------------------------------------


def timeseries_timeseries_weather_forecasting(rnn):
    """Features (T, 7) -> LSTM(32 in the example) -> Dense(1)."""
    inputs = keras.Input((12, 7), name="features")
    outputs = keras.layers.Dense(1)(rnn.LSTM(8)(inputs))
    return Case(
        keras.Model(inputs, outputs), _normal((ROWS, 12, 7)), _normal((ROWS, 1), 1), "mse", 1
    )


def timeseries_timeseries_forecasting_with_lstm_for_temperature_prediction(rnn):
    """Sequential LSTM(20) -> Dense(1) (a keras-io pull request's file; the weather example's
    architecture)."""
    model = keras.Sequential([keras.Input((10, 1)), rnn.LSTM(8), keras.layers.Dense(1)])
    return Case(model, _normal((ROWS, 10, 1)), _normal((ROWS, 1), 1), "mse", 1)


def timeseries_multivariate_timeseries_forecasting_using_lstm(rnn):
    """LSTM(rs) -> LeakyReLU -> LSTM(rs) -> LeakyReLU -> Dropout -> LSTM -> Dropout -> Dense(1)
    (a keras-io pull request's file)."""
    model = keras.Sequential(
        [
            keras.Input((12, 5)),
            rnn.LSTM(8, return_sequences=True),
            keras.layers.LeakyReLU(negative_slope=0.5),
            rnn.LSTM(8, return_sequences=True),
            keras.layers.LeakyReLU(negative_slope=0.5),
            keras.layers.Dropout(0.3),
            rnn.LSTM(6),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    return Case(model, _normal((ROWS, 12, 5)), _normal((ROWS, 1), 1), "mse", 3)


def timeseries_lstm_vs_cnn_timeseries_classification(rnn):
    """LSTM(rs, dropout, recurrent_dropout) -> LSTM(dropout, recurrent_dropout) -> Dense ->
    softmax (a keras-io pull request's file)."""
    model = keras.Sequential(
        [
            keras.Input((12, 1)),
            rnn.LSTM(8, return_sequences=True, dropout=0.3, recurrent_dropout=0.3),
            rnn.LSTM(6, dropout=0.3, recurrent_dropout=0.3),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    return Case(model, _normal((ROWS, 12, 1)), _classes(2), "sparse_categorical_crossentropy", 2)


@keras.saving.register_keras_serializable(package="keras_gated_zoo")
class GraphConv(keras.layers.Layer):
    """The traffic example's graph convolution, here over (batch, nodes, time, features): node
    representations x W beside the mean of their neighbours' x W, concatenated.

    Args:
        out_feat: width of x W.
        neighbours: for node i, the list of its neighbours j (the example's edges).
    """

    def __init__(self, out_feat, neighbours, **kwargs):
        super().__init__(**kwargs)
        self.out_feat = out_feat
        self.neighbours = [list(n) for n in neighbours]
        adjacency = np.zeros((len(neighbours), len(neighbours)), "float32")
        for i, row in enumerate(self.neighbours):
            adjacency[i, row] = 1.0 / max(len(row), 1)
        self._mean = adjacency  # rows average the neighbours (unsorted_segment_mean)

    def build(self, input_shape):
        self.weight = self.add_weight(shape=(input_shape[-1], self.out_feat), name="weight")

    def call(self, features):
        nodes = keras.ops.matmul(features, self.weight)  # (B, nodes, T, out_feat)
        messages = keras.ops.einsum("ij,bjtf->bitf", self._mean, nodes)
        return keras.ops.concatenate([nodes, messages], axis=-1)

    def get_config(self):
        return {**super().get_config(), "out_feat": self.out_feat, "neighbours": self.neighbours}


def timeseries_timeseries_traffic_forecasting(rnn):
    """LSTMGC: speeds (T, nodes, 1) -> graph convolution -> per-node LSTM(activation="relu")
    -> Dense(horizon) -> (horizon, nodes).

    The example reshapes (nodes, batch, T, F) to (nodes * batch, T, F) for its LSTM; here the
    same per-node LSTM runs under TimeDistributed over the node axis."""
    time, nodes, horizon = 8, 5, 3
    neighbours = [[1, 4], [0, 2], [1, 3], [2, 4], [3, 0]]
    inputs = keras.Input((time, nodes, 1), name="speeds")
    x = keras.layers.Permute((2, 1, 3))(inputs)  # (B, nodes, T, 1)
    x = GraphConv(4, neighbours)(x)  # (B, nodes, T, 8)
    x = keras.layers.TimeDistributed(rnn.LSTM(8, activation="relu"))(x)  # (B, nodes, 8)
    x = keras.layers.Dense(horizon)(x)
    outputs = keras.layers.Permute((2, 1))(x)  # (B, horizon, nodes)
    return Case(
        keras.Model(inputs, outputs),
        _normal((ROWS, time, nodes, 1)),
        _normal((ROWS, horizon, nodes), 1),
        "mse",
        1,
    )


# --- structured_data ---------------------------------------------------------------------


def _transformer_encoder(x, intermediate_dim, num_heads):
    """Stands in for keras_hub's TransformerEncoder: self-attention and a feed-forward block,
    each with a residual and layer normalisation."""
    width = x.shape[-1]
    attended = keras.layers.MultiHeadAttention(num_heads, width // num_heads)(x, x)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attended]))
    forward = keras.layers.Dense(intermediate_dim, activation="relu")(x)
    forward = keras.layers.Dense(width)(forward)
    return keras.layers.LayerNormalization()(keras.layers.Add()([x, forward]))


def structured_data_customer_lifetime_value(rnn):
    """Hybrid model: country embedding repeated over time beside projected temporal features ->
    3 transformer encoders; LSTM over the trend features; both merged, repeated over the output
    horizon and decoded by LSTM(return_sequences, recurrent_regularizer=L1L2) -> Dense(1)."""
    time, horizon, countries, width = 6, 6, 4, 8
    temporal = keras.Input((time, 5), name="temporal_inputs")
    trend = keras.Input((time, 12), name="trend_inputs")
    country = keras.Input((countries,), dtype="int32", name="country_inputs")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(countries, width)(country))
    repeated = keras.layers.RepeatVector(time)(embedded)
    projected = keras.layers.Dense(width, activation="tanh")(temporal)
    x = keras.layers.Concatenate()([projected, repeated])
    for _ in range(3):
        x = _transformer_encoder(x, intermediate_dim=16, num_heads=4)
    trend_state = rnn.LSTM(8, name="lstm_trend")(trend)
    pooled = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling1D()(x))
    merged = keras.layers.Concatenate()([pooled, trend_state])
    decoded = rnn.LSTM(
        8, return_sequences=True, recurrent_regularizer=keras.regularizers.L1L2(l1=1e-5, l2=1e-4)
    )(keras.layers.RepeatVector(horizon)(merged))
    outputs = keras.layers.Dense(1, activation="linear")(decoded)
    model = keras.Model([temporal, trend, country], outputs)
    one_hot = np.eye(countries, dtype="int32")[_classes(countries)]
    x = {
        "temporal_inputs": _normal((ROWS, time, 5)),
        "trend_inputs": _normal((ROWS, time, 12), 1),
        "country_inputs": one_hot,
    }
    return Case(model, x, _normal((ROWS, horizon, 1), 2), "mse", 2)


# --- vision ------------------------------------------------------------------------------


def vision_video_classification(rnn):
    """Frame features with an explicit boolean mask input -> GRU(rs) -> GRU -> Dropout ->
    Dense -> softmax."""
    frames, features, classes = 9, 6, 5
    frame_features = keras.Input((frames, features), name="frame_features")
    mask = keras.Input((frames,), dtype="bool", name="frame_mask")
    x = rnn.GRU(16, return_sequences=True)(frame_features, mask=mask)
    x = rnn.GRU(8)(x)
    x = keras.layers.Dropout(0.4)(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model([frame_features, mask], outputs)
    valid = np.arange(frames)[None, :] < np.array([9, 5, 1, 7] * 2)[:, None]  # padded at the end
    x = {
        "frame_features": _normal((ROWS, frames, features)) * valid[..., None],
        "frame_mask": valid,
    }
    return Case(model, x, _classes(classes), "sparse_categorical_crossentropy", 2)


def _ocr(rnn, width, height, filters, dense, units, classes):
    """The OCR examples' model: two conv + pool blocks -> columns as time steps -> Dense ->
    Dropout -> Bi-LSTM(rs, dropout=0.25) x 2 -> softmax per column (+1 for CTC's blank)."""
    image = keras.Input((width, height, 1), name="image")
    x = keras.layers.Conv2D(
        filters[0], (3, 3), activation="relu", kernel_initializer="he_normal", padding="same"
    )(image)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Conv2D(
        filters[1], (3, 3), activation="relu", kernel_initializer="he_normal", padding="same"
    )(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Reshape((width // 4, (height // 4) * filters[1]))(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    x = keras.layers.Dropout(0.2)(x)
    x = keras.layers.Bidirectional(rnn.LSTM(units[0], return_sequences=True, dropout=0.25))(x)
    x = keras.layers.Bidirectional(rnn.LSTM(units[1], return_sequences=True, dropout=0.25))(x)
    outputs = keras.layers.Dense(classes + 1, activation="softmax")(x)
    return Case(
        keras.Model(image, outputs),
        _normal((ROWS, width, height, 1)),
        _ctc_labels(3, classes),
        keras.losses.CTC(),
        2,
    )


def vision_captcha_ocr(rnn):
    """Captcha OCR (its CTCLayer endpoint becomes keras.losses.CTC)."""
    return _ocr(rnn, 32, 8, (4, 8), 8, (8, 6), classes=10)


def vision_handwriting_recognition(rnn):
    """Handwriting recognition: the captcha model's graph at other sizes."""
    return _ocr(rnn, 24, 8, (4, 6), 8, (8, 4), classes=12)


# --- audio -------------------------------------------------------------------------------


def audio_ctc_asr(rnn):
    """DeepSpeech2-like: spectrogram -> 2 Conv2D/BatchNorm/ReLU -> Bi-GRU(reset_after=True,
    activation/recurrent_activation/use_bias given) x 5 with Dropout -> Dense -> ReLU ->
    Dropout -> softmax (+1 for CTC's blank)."""
    bins, units, layers, classes = 16, 6, 5, 8
    spectrogram = keras.Input((None, bins), name="input")
    x = keras.layers.Reshape((-1, bins, 1))(spectrogram)
    x = keras.layers.Conv2D(4, (3, 5), strides=(2, 2), padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(4, (3, 5), strides=(1, 2), padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Reshape((-1, x.shape[-2] * x.shape[-1]))(x)
    for i in range(1, layers + 1):
        recurrent = rnn.GRU(
            units,
            activation="tanh",
            recurrent_activation="sigmoid",
            use_bias=True,
            return_sequences=True,
            reset_after=True,
            name=f"gru_{i}",
        )
        x = keras.layers.Bidirectional(recurrent, merge_mode="concat")(x)
        if i < layers:
            x = keras.layers.Dropout(rate=0.5)(x)
    x = keras.layers.Dense(2 * units)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(rate=0.5)(x)
    outputs = keras.layers.Dense(classes + 1, activation="softmax")(x)
    return Case(
        keras.Model(spectrogram, outputs),
        _normal((ROWS, 12, bins)),
        _ctc_labels(2, classes),
        keras.losses.CTC(),
        layers,
    )


# --- graph -------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_gated_zoo")
class MessagePassing(keras.layers.Layer):
    """The MPNN example's message passing: `steps` rounds of an edge network (a D x D matrix
    per bond from its features, summed over neighbours) and a GRUCell update of every atom,
    called directly as the example calls it: `h, _ = cell(aggregated, h)`.

    Args:
        units: atom state width; atom features are zero-padded up to it.
        steps: rounds of message passing.
        implementation: "ours" (keras_gated.GRUCell) or "keras" (keras.layers.GRUCell).
    """

    def __init__(self, units, steps=4, implementation="keras", **kwargs):
        super().__init__(**kwargs)
        self.units, self.steps, self.implementation = units, steps, implementation

    def build(self, input_shape):
        atoms_shape, bonds_shape, _ = input_shape
        self.atom_dim = atoms_shape[-1]
        self.pad_length = max(0, self.units - self.atom_dim)
        width = self.atom_dim + self.pad_length
        self.edge_kernel = self.add_weight(
            shape=(bonds_shape[-1], width * width), initializer="glorot_uniform", name="edge_kernel"
        )
        self.edge_bias = self.add_weight(
            shape=(width * width,), initializer="zeros", name="edge_bias"
        )
        self.update_step = cell_namespace(self.implementation).GRUCell(width)
        self.update_step.build((None, width))

    def call(self, inputs):
        atoms, bonds, adjacency = inputs  # (B, N, D), (B, N, N, F), (B, N, N)
        width = self.atom_dim + self.pad_length
        n = keras.ops.shape(atoms)[1]
        kernels = keras.ops.matmul(bonds, self.edge_kernel) + self.edge_bias
        kernels = keras.ops.reshape(kernels, (-1, n, n, width, width))
        h = keras.ops.pad(atoms, [(0, 0), (0, 0), (0, self.pad_length)])
        for _ in range(self.steps):
            messages = keras.ops.einsum("bij,bijkl,bjl->bik", adjacency, kernels, h)
            flat, _ = self.update_step(
                keras.ops.reshape(messages, (-1, width)), keras.ops.reshape(h, (-1, width))
            )
            h = keras.ops.reshape(flat, (-1, n, width))
        return h

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "steps": self.steps,
            "implementation": self.implementation,
        }


def cell_namespace(implementation):
    import keras_gated

    return {"ours": keras_gated, "keras": keras.layers}[implementation]


def graph_mpnn_molecular_graphs(rnn):
    """Atoms, bonds -> message passing (edge network + GRUCell update, 4 steps) -> readout
    (the example's padded transformer readout becomes average pooling) -> Dense -> sigmoid."""
    atoms_n, atom_dim, bond_dim = 5, 6, 3
    implementation = "ours" if rnn is not keras.layers else "keras"
    atoms = keras.Input((atoms_n, atom_dim), name="atom_features")
    bonds = keras.Input((atoms_n, atoms_n, bond_dim), name="bond_features")
    adjacency = keras.Input((atoms_n, atoms_n), name="adjacency")
    x = MessagePassing(8, steps=4, implementation=implementation)([atoms, bonds, adjacency])
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model([atoms, bonds, adjacency], outputs)
    links = (_rng(3).random((ROWS, atoms_n, atoms_n)) < 0.5).astype("float32")
    links = np.maximum(links, links.transpose(0, 2, 1)) * (1 - np.eye(atoms_n, dtype="float32"))
    x = {
        "atom_features": _normal((ROWS, atoms_n, atom_dim)),
        "bond_features": _normal((ROWS, atoms_n, atoms_n, bond_dim), 1) * links[..., None],
        "adjacency": links,
    }
    return Case(model, x, _classes(2)[:, None].astype("float32"), "binary_crossentropy", 0)


def graph_gnn_citations(rnn):
    """The GNN's node update with combination_type="gru": the node's representation and its
    aggregated neighbour messages as a 2-step sequence through GRU(activation, recurrent_activation,
    dropout, recurrent_dropout, return_state=True); the final state is the new node embedding.

    Nodes are the batch, as in the example; the neighbour aggregation (a mean over a fixed
    edge list) is an input here."""
    features, units, classes = 10, 8, 7
    node = keras.Input((features,), name="node_features")
    neighbours = keras.Input((features,), name="aggregated_messages")
    prepare = keras.layers.Dense(units, activation="gelu")
    message = keras.layers.Dense(units, activation="gelu")
    sequence = keras.layers.Concatenate(axis=1)(
        [
            keras.layers.Reshape((1, units))(prepare(node)),
            keras.layers.Reshape((1, units))(message(neighbours)),
        ]
    )
    _, state = rnn.GRU(
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        dropout=0.2,
        return_state=True,
        recurrent_dropout=0.2,
    )(sequence)
    outputs = keras.layers.Dense(classes)(keras.layers.UnitNormalization()(state))
    x = {
        "node_features": _normal((ROWS, features)),
        "aggregated_messages": _normal((ROWS, features), 1),
    }
    return Case(
        keras.Model([node, neighbours], outputs),
        x,
        _classes(classes),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        1,
    )


# --- keras_rs ----------------------------------------------------------------------------


def keras_rs_sequential_retrieval(rnn):
    """Query tower Embedding -> GRU over the watched movies; scores against the candidate
    embedding table (a bias-free Dense here), trained with softmax cross-entropy."""
    movies, width = V, 8
    history = keras.Input((10,), dtype="int32", name="history")
    query = rnn.GRU(width)(keras.layers.Embedding(movies + 1, width)(history))
    scores = keras.layers.Dense(movies + 1, use_bias=False, name="candidates")(query)
    return Case(
        keras.Model(history, scores),
        _tokens(10),
        _classes(movies + 1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        1,
    )


# Every rebuilt example, by name (folder_file of keras-io's examples/).
EXAMPLES = {
    builder.__name__: builder
    for builder in [
        nlp_bidirectional_lstm_imdb,
        nlp_addition_rnn,
        nlp_lstm_seq2seq,
        nlp_active_learning_review_classification,
        nlp_semantic_similarity_with_bert,
        nlp_imdb_lstm_sentiment,
        nlp_character_and_byte_level_text_generation,
        generative_lstm_character_level_text_generation,
        timeseries_timeseries_weather_forecasting,
        timeseries_timeseries_forecasting_with_lstm_for_temperature_prediction,
        timeseries_multivariate_timeseries_forecasting_using_lstm,
        timeseries_lstm_vs_cnn_timeseries_classification,
        timeseries_timeseries_traffic_forecasting,
        structured_data_customer_lifetime_value,
        vision_video_classification,
        vision_captcha_ocr,
        vision_handwriting_recognition,
        audio_ctc_asr,
        graph_mpnn_molecular_graphs,
        graph_gnn_citations,
        keras_rs_sequential_retrieval,
    ]
}
