"""A stacked recurrent language model with AWD-LSTM's regularisers and optional weight tying.

    (1) e_t = m_w[w_t] E[w_t] * m_e               embedding E (V, E); row mask m_w (V,),
                                                  locked mask m_e (B, 1, E)
    (2) h^(l) = layer_l(x^(l-1)),  x^(0) = e      l = 1..L, widths U_l; U_L = E
    (3) x^(l) = h^(l) * m_l                       locked masks m_l (B, 1, U_l)
    (4) logits_t = x^(L)_t E^T  (tied)   or   x^(L)_t P  (untied, P (E, V))
    (5) AR  = alpha * mean_{b,t,u} (x^(L)_{b,t,u})^2
    (6) TAR = beta * mean_{b,t>=2,u} (h^(L)_{b,t,u} - h^(L)_{b,t-1,u})^2

Inputs tokens (B, T) int; outputs logits (B, T, V). Every mask is drawn once per call, with
entries 0 or 1 / (1 - p), and only when training; AR and TAR are terms of the training loss,
added through Keras's `add_loss` (`model.losses`) only when training. At inference the model
is (1)-(4) with every mask 1.

The regularisers are AWD-LSTM's (Merity, Keskar & Socher 2017), each an option:
- m_w, `embed_weight_dropout` (awd's `dropoute`, `EmbeddingDropout`): drops rows of E, so a
  word type is dropped at every occurrence in the batch. With tied weights it applies to the
  lookup (1) only; the projection (4) reads the undropped E, as awd's `embedded_dropout`
  does (it masks a copy of the matrix).
- m_e, `embed_dropout` (awd's `dropouti`): locked dropout on the embedding features.
- m_l, `dropout` (awd's `dropouth` between layers, `dropout` after the last).
- `recurrent_dropout` (a mask on h_{t-1}) and `weight_dropout` (awd's `wdrop`, DropConnect on
  the recurrent kernel U) act inside each layer (`keras_gated.layers.recurrent`).
- AR (5) on the last layer's output after its dropout, TAR (6) on it before (`ar_alpha`,
  `tar_beta`; `keras_gated.layers.activation_regularization`).

With `tie_weights=True` one variable `E` serves both ends (Inan et al. 2017, Press & Wolf
2017). The output projection, tied or not, is an (E, V) matrix, so the last layer's width U_L
must equal E; the others are free (awd: 1150 in the middle). The output layer has no bias, so
tying removes exactly V x E parameters.
"""

import keras
import numpy as np
from keras import ops

from keras_gated import checks
from keras_gated.layers import GRU, LSTM, EmbeddingDropout, IndRNN, SimpleRNN, VariationalDropout
from keras_gated.layers.activation_regularization import (
    activation_regularization,
    temporal_activation_regularization,
)

# "keras-lstm" is Keras's built-in layer, kept for side-by-side comparisons.
CELLS = {
    "lstm": LSTM,
    "gru": GRU,
    "rnn": SimpleRNN,
    "indrnn": IndRNN,
    "keras-lstm": keras.layers.LSTM,
}


@keras.saving.register_keras_serializable(package="keras_gated")
class LanguageModel(keras.Model):
    """Embedding -> `num_layers` recurrent layers -> output projection; equations (1)-(6) above.

    Args:
        vocab_size: V (> 0).
        cell: "lstm" (default), "gru", "rnn", "indrnn", or "keras-lstm" (Keras's built-in
            LSTM).
        embed_dim: E (> 0). Default 200.
        units: the recurrent widths: one int U for every layer, or a list [U_1, ..., U_L] of
            `num_layers` ints (> 0). The last must equal E. Default 200.
        num_layers: L (> 0). Default 2.
        dropout: rate of the locked masks m_l after each recurrent layer (3), in [0, 1).
            Default 0.
        recurrent_dropout: variational dropout rate on h_{t-1} inside each layer. Default 0.
        weight_dropout: DropConnect rate on each layer's recurrent kernel, in [0, 1); our
            cells only (not "keras-lstm"). Default 0.
        embed_dropout: rate of the locked mask m_e on the embedding features (1). Default 0.
        embed_weight_dropout: rate of the row mask m_w (1), word types dropped. Default 0.
        ar_alpha: alpha >= 0 of AR (5); 0 leaves it out. Default 0.
        tar_beta: beta >= 0 of TAR (6); 0 leaves it out. Default 0.
        tie_weights: the output projection reuses the embedding matrix. Default True.
        stateful: recurrent layers carry state between calls (for BPTT training with a fixed
            batch size; `reset_states()` clears it). Default False.
        seed: seed for the dropout masks. Default None.
        cell_options: extra cell arguments, e.g. {"peephole": True}, {"reset_after": False}
            or {"layer_norm": True, "zoneout": 0.1} (lstm, gru).
    """

    def __init__(
        self,
        vocab_size,
        cell="lstm",
        embed_dim=200,
        units=200,
        num_layers=2,
        dropout=0.0,
        recurrent_dropout=0.0,
        weight_dropout=0.0,
        embed_dropout=0.0,
        embed_weight_dropout=0.0,
        ar_alpha=0.0,
        tar_beta=0.0,
        tie_weights=True,
        stateful=False,
        seed=None,
        cell_options=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("num_layers", num_layers),
        ):
            checks.positive_int(name, value)
        widths = list(units) if isinstance(units, (list, tuple)) else [units] * num_layers
        for U_l in widths:
            checks.positive_int("units", U_l)
        if len(widths) != num_layers:
            raise ValueError(
                f"`units` lists {len(widths)} widths for num_layers={num_layers}: "
                f"give one per layer"
            )
        if cell not in CELLS:
            raise ValueError(f"`cell` must be one of {sorted(CELLS)}, got cell={cell!r}")
        if widths[-1] != embed_dim:
            raise ValueError(
                f"the output projection ({'tied to' if tie_weights else 'shaped as'} the "
                f"embedding: an (E, V) matrix, tied or untied) reads the last layer's output, "
                f"so its width must equal embed_dim={embed_dim}; got {widths[-1]} "
                f"(units={units})"
            )
        if cell == "keras-lstm" and weight_dropout:
            raise ValueError(
                "`weight_dropout` needs one of our cells (lstm, gru, rnn, indrnn): "
                "Keras's built-in LSTM (cell='keras-lstm') has no DropConnect"
            )
        for name, value in (("ar_alpha", ar_alpha), ("tar_beta", tar_beta)):
            if not value >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {name}={value!r}")
        self.vocab_size, self.cell_name, self.embed_dim = vocab_size, cell, embed_dim
        self.units = widths if isinstance(units, (list, tuple)) else units
        self.num_layers, self.tie_weights, self.stateful, self.seed = (
            num_layers,
            tie_weights,
            stateful,
            seed,
        )
        self.dropout, self.recurrent_dropout, self.embed_dropout = (
            dropout,
            recurrent_dropout,
            embed_dropout,
        )
        self.weight_dropout, self.embed_weight_dropout = weight_dropout, embed_weight_dropout
        self.ar_alpha, self.tar_beta = float(ar_alpha), float(tar_beta)
        self.cell_options = dict(cell_options or {})
        seeds = [None if seed is None else seed + k for k in range(2 * num_layers + 2)]
        self.embedding = keras.layers.ReversibleEmbedding(
            vocab_size,
            embed_dim,
            tie_weights=tie_weights,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            name="embedding",
        )
        self.embed_dropout_layer = VariationalDropout(
            embed_dropout, seed=seeds[0], name="embed_dropout"
        )
        layer_options = dict(self.cell_options)
        if cell != "keras-lstm":
            layer_options["weight_dropout"] = weight_dropout
        self.rnn_layers = [
            CELLS[cell](
                U_l,
                recurrent_dropout=recurrent_dropout,
                seed=seeds[1 + 2 * k],
                return_sequences=True,
                return_state=True,
                stateful=stateful,
                name=f"{cell}_{k}",
                **layer_options,
            )
            for k, U_l in enumerate(widths)
        ]
        self.dropouts = [
            VariationalDropout(dropout, seed=seeds[2 + 2 * k], name=f"dropout_{k}")
            for k in range(num_layers)
        ]
        # Made last: the other layers keep their seeds and their order among the seed states
        # (`training.callbacks.seed_states`) whether or not the model has this layer.
        self.embed_weight_dropout_layer = EmbeddingDropout(
            vocab_size, embed_weight_dropout, seed=seeds[-1], name="embed_weight_dropout"
        )

    def build(self, input_shape):
        """Creates the weights from a token shape (B, T); stateful models need B fixed."""
        batch = input_shape[0] or 1
        self.call_with_states(ops.zeros((batch, 1), dtype="int32"))
        self.reset_states()
        self.built = True

    @property
    def state_sizes(self):
        """The flat list of state widths: per layer l [U_l] (GRU, RNN, IndRNN) or [U_l, U_l]
        (LSTM)."""
        return [s for layer in self.rnn_layers for s in layer.state_size]

    def initial_states(self, batch_size):
        """Zero states for `call_with_states`: a flat list of (B, U_l)."""
        return [ops.zeros((batch_size, s), dtype=self.compute_dtype) for s in self.state_sizes]

    def check_tokens(self, tokens):
        """Raises ValueError for tokens that are not (B, T) integer ids in [0, V).

        Concrete tokens are checked at once. In a TensorFlow graph the range check is an
        assertion that raises when the graph runs (XLA drops such assertions: check the data
        before a compiled step). Traced JAX values cannot be checked here.
        """
        tokens = ops.convert_to_tensor(tokens)
        dtype = keras.backend.standardize_dtype(tokens.dtype)
        ids = _concrete(tokens)
        if "int" not in dtype:
            if ids is not None:
                raise ValueError(f"`tokens` must be integer ids, got dtype {dtype}")
            tokens = ops.cast(tokens, "int32")  # Keras traces some graphs with float placeholders
        if len(tokens.shape) != 2:
            raise ValueError(f"`tokens` must have shape (batch, time), got {tuple(tokens.shape)}")
        message = f"token ids must be in [0, vocab_size={self.vocab_size})"
        if ids is not None:
            bad = ids[(ids < 0) | (ids >= self.vocab_size)]
            if bad.size:
                raise ValueError(f"{message}, got id {int(bad[0])}")
            return tokens
        if keras.backend.backend() != "tensorflow":
            return tokens
        import tensorflow as tf

        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(tokens, message=message),
                tf.debugging.assert_less(
                    tokens, tf.cast(self.vocab_size, tokens.dtype), message=message
                ),
            ]
        ):
            return tf.identity(tokens)

    def call_with_states(self, tokens, states=None, training=False, run_layer=None):
        """tokens (B, T) -> (logits (B, T, V), final states as a flat list of (B, U_l)).

        When training, AR (5) and TAR (6) (those with a non-zero coefficient) go to
        `add_loss`; Keras clears them at the start of each `model(...)` call.
        `run_layer(layer, x, initial_state, training) -> [h (B, T, U_l), *final states]`
        runs each recurrent layer in (2) (default: calling it); the diagnostics run them one
        step at a time with it, to read every step's state.
        """
        tokens = self.check_tokens(tokens)
        e = self.embed_weight_dropout_layer(self.embedding(tokens), tokens, training=training)
        x = self.embed_dropout_layer(e, training=training)  # (1)
        new_states, k = [], 0
        for layer, drop in zip(self.rnn_layers, self.dropouts):
            n = len(layer.state_size)
            init = None if states is None else list(states[k : k + n])
            if run_layer is None:
                h, *s = layer(x, initial_state=init, training=training)  # (2)
            else:
                h, *s = run_layer(layer, x, init, training)
            x = drop(h, training=training)  # (3)
            new_states += s
            k += n
        if training and self.ar_alpha:
            self.add_loss(activation_regularization(x, self.ar_alpha))  # (5)
        if training and self.tar_beta:
            self.add_loss(temporal_activation_regularization(h, self.tar_beta))  # (6)
        return self.embedding(x, reverse=True), new_states  # (4)

    def call(self, tokens, training=False):
        return self.call_with_states(tokens, training=training)[0]

    # Keras's entry points check the ids before a compiled step sees them: XLA drops the
    # assertions of `check_tokens`, and would silently read a row that is not there.
    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        if isinstance(validation_data, tuple):
            validation_data = (
                self.checked_ids(validation_data[0]),
                *map(self.checked_ids, validation_data[1:2]),
                *validation_data[2:],
            )
        return super().fit(
            self.checked_ids(x),
            self.checked_ids(y),
            *args,
            validation_data=self.checked_ids(validation_data),
            **kwargs,
        )

    def evaluate(self, x=None, y=None, *args, **kwargs):
        return super().evaluate(self.checked_ids(x), self.checked_ids(y), *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(self.checked_ids(x), *args, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        return super().train_on_batch(self.checked_ids(x), self.checked_ids(y), *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        return super().test_on_batch(self.checked_ids(x), self.checked_ids(y), *args, **kwargs)

    def predict_on_batch(self, x):
        return super().predict_on_batch(self.checked_ids(x))

    def checked_ids(self, data):
        """`data` with its token ids (inputs or targets, (B, T)) checked to lie in [0, V).

        Arrays are checked now (ValueError); a `tf.data.Dataset` of (tokens, targets) is
        checked as it yields, by assertions in its own pipeline, outside any compiled step.
        Other inputs (None, tuples, generators, a `tf.distribute` dataset) pass unchanged.
        """
        if data is None or isinstance(data, tuple):
            return data
        if type(data).__module__.startswith("tensorflow") and hasattr(data, "map"):
            return data.map(self._assert_ids)
        if hasattr(data, "shape"):
            self.check_tokens(data)
        return data

    def _assert_ids(self, *batch):
        import tensorflow as tf

        message = f"token ids must be in [0, vocab_size={self.vocab_size})"
        size = tf.constant(self.vocab_size, "int64")
        checks = [
            tf.debugging.assert_less(tf.cast(t, "int64"), size, message=message) for t in batch[:2]
        ]
        checks += [tf.debugging.assert_non_negative(t, message=message) for t in batch[:2]]
        with tf.control_dependencies(checks):
            return tuple(tf.identity(t) for t in batch)

    def reset_states(self):
        for layer in self.rnn_layers:
            if layer.stateful:
                layer.reset_states()

    def stateless_twin(self, copy_weights=True):
        """The same configuration without `stateful` (any batch size), built; with this
        model's weights, or freshly initialised (`copy_weights=False`)."""
        twin = type(self).from_config({**self.get_config(), "stateful": False})
        twin(np.zeros((1, 1), dtype="int32"))
        if copy_weights:
            twin.set_weights(self.get_weights())
        return twin

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "cell": self.cell_name,
            "embed_dim": self.embed_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "weight_dropout": self.weight_dropout,
            "embed_dropout": self.embed_dropout,
            "embed_weight_dropout": self.embed_weight_dropout,
            "ar_alpha": self.ar_alpha,
            "tar_beta": self.tar_beta,
            "tie_weights": self.tie_weights,
            "stateful": self.stateful,
            "seed": self.seed,
            "cell_options": self.cell_options,
        }


def inference_fn(model):
    """`model.call_with_states(tokens, states)` at inference: (B, T) ids, flat states ->
    (logits, states). Compiled once per input shape: `tf.function` on TensorFlow, `jax.jit`
    on JAX; eager on torch."""

    def step(tokens, states):
        return model.call_with_states(tokens, states, training=False)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(step, reduce_retracing=True)
    if backend != "jax":
        return step
    import jax  # eager JAX would trace and compile the time loop's scan at every call

    @jax.jit
    def stateless(values, tokens, states):
        with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
            return step(tokens, states)

    return lambda tokens, states: stateless([v.value for v in model.variables], tokens, states)


def language_model(vocab_size, **kwargs):
    """Builds a `LanguageModel` (arguments as there) and creates its weights."""
    model = LanguageModel(vocab_size, **kwargs)
    if not model.stateful:
        model.build((None, None))
    return model


def _concrete(x):
    """x as a numpy array when its values are known now (eager), else None (traced)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return x.numpy() if tf.executing_eagerly() and hasattr(x, "numpy") else None
    if backend == "jax":
        import jax

        return None if isinstance(x, jax.core.Tracer) else np.asarray(x)
    if backend == "torch":  # on a GPU reading the ids would sync every step; torch's
        # embedding raises on an out-of-range id there itself
        return ops.convert_to_numpy(x) if x.device.type == "cpu" else None
    return None
