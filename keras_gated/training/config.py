"""The training recipe as one dataclass; every field has its default, meaning and choices.

Each field's `metadata` holds the one-line `help` the command line shows (and `choices` where
the values are a closed set), so `keras-gated train --help` and this class cannot drift apart.
Importing this module imports neither TensorFlow nor Keras.
"""

import dataclasses

CELLS = ("lstm", "gru", "rnn", "keras-lstm")  # the keys of models.language_model.CELLS
LEVELS = ("word", "char")
STRATEGIES = ("none", "mirrored", "multiworker")


def _field(default, help, choices=None, group="training"):
    return dataclasses.field(default=default,
                             metadata={"help": help, "choices": choices, "group": group})


@dataclasses.dataclass
class TrainConfig:
    corpus: str = _field("shakespeare", "'shakespeare' (built in), a UTF-8 file, or a directory "
                         "of .txt files", group="data")
    level: str = _field("word", "token level: words and punctuation, or characters",
                        LEVELS, group="data")
    max_vocab: int = _field(10_000, "word level: most frequent words kept, the rest <unk>",
                            group="data")
    cell: str = _field("lstm", "recurrent cell; keras-lstm is Keras's built-in LSTM, for "
                       "comparison", CELLS, group="model")
    layers: int = _field(2, "stacked recurrent layers", group="model")
    embed_dim: int = _field(200, "embedding width E", group="model")
    units: int = _field(200, "recurrent width U (must equal E)", group="model")
    dropout: float = _field(0.3, "locked dropout between layers and before the output, in [0, 1)",
                            group="model")
    recurrent_dropout: float = _field(0.2, "variational dropout on h_{t-1}, in [0, 1)",
                                      group="model")
    embed_dropout: float = _field(0.1, "locked dropout on the embeddings, in [0, 1)",
                                  group="model")
    tie_weights: bool = _field(True, "output projection reuses the embedding matrix",
                               group="model")
    batch_size: int = _field(32, "parallel contiguous streams (the global batch); smaller "
                             "corpora train with fewer, with a notice")
    seq_len: int = _field(35, "BPTT window in tokens")
    epochs: int = _field(4, "passes over the training split (a finished run resumes to more)")
    steps_per_epoch: int = _field(0, "batches per epoch; 0: the whole training split")
    learning_rate: float = _field(3e-3, "Adam step size")
    clipnorm: float = _field(1.0, "global-norm gradient clipping")
    lr_decay: float = _field(0.25, "learning-rate factor when validation perplexity stalls, "
                             "in (0, 1)")
    patience: int = _field(2, "epochs without improvement before early stopping")
    seed: int = _field(0, "seed of the weights, dropout masks and data splits")
    carry_state: bool = _field(True, "carry h (and c) across consecutive BPTT windows "
                               "(one device only)", group="devices")
    strategy: str = _field("none", "data parallelism: mirrored (GPUs of one machine) or "
                           "multiworker (TF_CONFIG)", STRATEGIES, group="devices")
    xla: bool = _field(True, "XLA-compiled training step (our cells on one CPU device)",
                       group="devices")

    def validate(self):
        """Raises ValueError naming the first field out of range."""
        positive = ("max_vocab", "layers", "embed_dim", "units", "batch_size", "seq_len", "epochs")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        for name in ("dropout", "recurrent_dropout", "embed_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {getattr(self, name)!r}")
        for field in dataclasses.fields(self):
            choices = field.metadata["choices"]
            if choices and getattr(self, field.name) not in choices:
                raise ValueError(f"`{field.name}` must be one of {', '.join(choices)}, "
                                 f"got {getattr(self, field.name)!r}")
        for name in ("learning_rate", "clipnorm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
        if not 0.0 < self.lr_decay < 1.0:
            raise ValueError(f"`lr_decay` must be in (0, 1), got {self.lr_decay!r}")
        if self.strategy != "none" and self.carry_state:
            raise ValueError("`carry_state` needs strategy='none': replicas cannot share carried "
                             "state; pass --carry-state false with --strategy")
        if self.steps_per_epoch < 0 or self.patience < 0:
            raise ValueError("`steps_per_epoch` and `patience` must be >= 0")
        return self
