"""The model a `TrainConfig` describes, compiled for training, and its stateless twin."""

import keras

from keras_gated.models import LanguageModel
from keras_gated.training.devices import uses_xla
from keras_gated.training.metrics import Perplexity


def build_model(config, vocab_size, stateful=True, batch_size=None):
    """A `LanguageModel` compiled with Adam, global-norm clipping and the `Perplexity` metric,
    its weights made for batches of `batch_size` (default `config.batch_size`) sequences
    before `fit` traces a step (JAX and torch trace the step statelessly, where no weight can
    be created)."""
    model = LanguageModel(
        vocab_size,
        cell=config.cell,
        embed_dim=config.embed_dim,
        units=config.units,
        num_layers=config.layers,
        dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout,
        weight_dropout=config.weight_dropout,
        embed_dropout=config.embed_dropout,
        embed_weight_dropout=config.embed_weight_dropout,
        ar_alpha=config.ar_alpha,
        tar_beta=config.tar_beta,
        tie_weights=config.tie_weights,
        stateful=stateful,
        seed=config.seed,
        cell_options=cell_options(config),
    )
    model.build((batch_size or config.batch_size, config.seq_len))
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
        jit_compile=uses_xla(config),
    )
    return model


def cell_options(config):
    """The cell arguments the config sets away from their defaults (none: None)."""
    options = {"layer_norm": True} if config.layer_norm else {}
    if config.zoneout:
        options["zoneout"] = config.zoneout
    return options or None


def stateless_copy(model):
    """The same weights in a non-stateful `LanguageModel` (any batch size)."""
    return model.stateless_twin()
