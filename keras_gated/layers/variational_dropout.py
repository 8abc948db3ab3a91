"""Locked (variational) dropout for (B, T, F) tensors: one mask per sequence, shared over time."""

import keras
from keras import ops

from keras_gated import checks


@keras.saving.register_keras_serializable(package="keras_gated")
class VariationalDropout(keras.layers.Layer):
    """y = x * m, m ~ Bernoulli(1 - rate) / (1 - rate) of shape (B, 1, F), when training.

    The same features are dropped at every time step of a sequence (dropout in the depth
    direction only); at inference the layer is the identity. Used on embeddings and between
    stacked recurrent layers (Gal & Ghahramani 2016; awd-lstm's `LockedDropout`).

    Args:
        rate: drop probability in [0, 1).
        seed: seed for the masks. Default None.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = checks.rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        shape = ops.shape(inputs)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=(shape[0], 1, shape[2]), seed=self.seed_generator
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
