"""Embedding dropout: whole rows of the embedding matrix, that is whole word types, dropped.

    (1) m ~ Bernoulli(1 - rate) / (1 - rate)        (V,), one mask per call
    (2) y[b, t] = m[w[b, t]] * x[b, t]              x = E[w] (B, T, E), tokens w (B, T)

(2) is the lookup of w in the masked matrix diag(m) E, computed on the (B, T) rows looked up
rather than on all V rows. A dropped word type is zero at every position of every sequence of
the batch; a kept one is scaled by 1 / (1 - rate). At inference the layer is the identity.

Reference: Gal & Ghahramani 2016 (dropout of word embeddings); awd-lstm's
`embedded_dropout` (its `dropoute`). Unlike `VariationalDropout` on the embeddings (awd-lstm's
`dropouti`, features of one sequence dropped at every step), the mask here is over the
vocabulary.
"""

import keras
from keras import ops

from keras_gated import checks


@keras.saving.register_keras_serializable(package="keras_gated")
class EmbeddingDropout(keras.layers.Layer):
    """y = m[w] * x, m (V,) ~ Bernoulli(1 - rate) / (1 - rate) when training; see the module.

    Args:
        vocab_size: V (> 0), the number of rows the mask covers.
        rate: probability in [0, 1) of dropping a word type.
        seed: seed for the masks. Default None.

    Call arguments: `embedded` x (B, T, E) = E[w]; `tokens` w (B, T) int in [0, V);
    `training` enables the mask. Returns y (B, T, E).
    """

    def __init__(self, vocab_size, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = checks.positive_int("vocab_size", vocab_size)
        self.rate = checks.rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, embedded, tokens, training=False):
        if not training or self.rate == 0.0:
            return embedded
        m = keras.random.dropout(
            ops.ones((self.vocab_size,), dtype=embedded.dtype),  # (1)
            self.rate,
            seed=self.seed_generator,
        )
        return embedded * ops.expand_dims(ops.take(m, tokens), -1)  # (2)

    def compute_output_shape(self, embedded_shape, tokens_shape):
        return embedded_shape

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "rate": self.rate,
            "seed": self.seed,
        }
