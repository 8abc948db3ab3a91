"""The training recipe as one dataclass; every field has its default, meaning and choices.

Each field's `metadata` holds the one-line `help` the command line shows (and `choices` where
the values are a closed set), so `keras-gated train --help` and this class cannot drift apart.
Importing this module imports neither TensorFlow nor Keras.
"""

import argparse
import dataclasses
import math

from keras_gated import checks

CELLS = ("lstm", "gru", "rnn", "indrnn", "keras-lstm")  # the keys of models.language_model.CELLS
GATED_CELLS = ("lstm", "gru")  # the cells with `layer_norm` and `zoneout` options
LEVELS = ("word", "char")
STRATEGIES = ("none", "mirrored", "multiworker")


def _field(default, help, choices=None, group="training", parse=None):
    """`parse`: the command line's text -> value, when not the default's type."""
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "group": group, "parse": parse}
    )


def widths(text):
    """`--units`: "200" -> 200 (every layer); "1150,1150,400" -> [1150, 1150, 400] (per layer).

    Raises:
        argparse.ArgumentTypeError: a part is not an integer (argparse prints it after the
            option's name); a width <= 0 is `validate`'s to refuse.
    """
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, got {text!r}"
        ) from None
    return values if "," in text else values[0]


@dataclasses.dataclass
class TrainConfig:
    corpus: str = _field(
        "shakespeare",
        "'shakespeare' (built in), a UTF-8 file, or a directory of .txt files",
        group="data",
    )
    level: str = _field(
        "word", "token level: words and punctuation, or characters", LEVELS, group="data"
    )
    max_vocab: int = _field(
        10_000, "word level: most frequent words kept, the rest <unk>", group="data"
    )
    cell: str = _field(
        "lstm",
        "recurrent cell; keras-lstm is Keras's built-in LSTM, for comparison",
        CELLS,
        group="model",
    )
    layer_norm: bool = _field(
        False,
        "layer-normalised gate pre-activations (Ba et al. 2016); lstm and gru only",
        group="model",
    )
    zoneout: float = _field(
        0.0,
        "zoneout on h (Krueger et al. 2016): each unit keeps its "
        "previous value with this probability at each training step, the "
        "expectation at inference; in [0, 1), lstm and gru only",
        group="model",
    )
    layers: int = _field(2, "stacked recurrent layers", group="model")
    embed_dim: int = _field(200, "embedding width E", group="model")
    units: int | list = _field(
        200,
        "recurrent width U of every layer, or one per layer "
        "comma-separated (e.g. 1150,1150,400); the last must equal E",
        group="model",
        parse=widths,
    )
    dropout: float = _field(
        0.3, "locked dropout between layers and before the output, in [0, 1)", group="model"
    )
    recurrent_dropout: float = _field(
        0.2, "variational dropout on h_{t-1}, in [0, 1)", group="model"
    )
    embed_dropout: float = _field(
        0.1, "locked dropout on the embedding features (AWD's dropouti), in [0, 1)", group="model"
    )
    embed_weight_dropout: float = _field(
        0.0,
        "drops whole word types: rows of the embedding "
        "matrix, at every occurrence in a batch (AWD's "
        "dropoute), in [0, 1)",
        group="model",
    )
    weight_dropout: float = _field(
        0.0,
        "DropConnect on each layer's recurrent kernel (AWD's "
        "wdrop), in [0, 1); not with keras-lstm",
        group="model",
    )
    ar_alpha: float = _field(
        0.0,
        "activation regularisation: adds alpha * mean(y^2) of the "
        "last layer's output after dropout to the loss (AWD: 2); 0: off",
        group="model",
    )
    tar_beta: float = _field(
        0.0,
        "temporal activation regularisation: adds beta * "
        "mean((h_t - h_{t-1})^2) of the last layer's output before "
        "dropout to the loss (AWD: 1); 0: off",
        group="model",
    )
    tie_weights: bool = _field(True, "output projection reuses the embedding matrix", group="model")
    batch_size: int = _field(
        32,
        "parallel contiguous streams (the global batch); smaller "
        "corpora train with fewer, with a notice",
    )
    seq_len: int = _field(35, "BPTT window in tokens")
    variable_bptt: bool = _field(
        False,
        "AWD-LSTM's variable windows: each seq_len tokens "
        "(probability 0.95) or seq_len/2, plus Normal(0, 5^2) noise, "
        "in [5, seq_len+20], tiling the whole training split; the "
        "learning rate scaled by length/seq_len per window. With XLA "
        "each new length compiles once (~50 in a run, seconds each)",
    )
    epochs: int = _field(4, "passes over the training split (a finished run resumes to more)")
    steps_per_epoch: int = _field(0, "batches per epoch; 0: the whole training split")
    learning_rate: float = _field(3e-3, "Adam step size")
    clipnorm: float = _field(1.0, "global-norm gradient clipping")
    lr_decay: float = _field(
        0.25, "learning-rate factor when validation perplexity stalls, in (0, 1)"
    )
    patience: int = _field(2, "epochs without improvement before early stopping")
    nonmono: int = _field(
        0,
        "NT-ASGD weight averaging: once validation perplexity is worse "
        "than the best before the last N evaluations, average the weights of "
        "every later step; validation, test and the saved model use the "
        "average (AWD-LSTM: 5; needs patience >= N + 2); 0: off",
    )
    seed: int = _field(0, "seed of the weights, dropout masks and data splits")
    carry_state: bool = _field(
        True,
        "carry h (and c) across consecutive BPTT windows (with "
        "--strategy, each replica those of its own streams)",
        group="devices",
    )
    strategy: str = _field(
        "none",
        "data parallelism: mirrored (the devices of one machine) "
        "or multiworker (several processes: TF_CONFIG on TensorFlow, "
        "KERAS_DISTRIBUTION_* on JAX; the same --out on every worker)",
        STRATEGIES,
        group="devices",
    )
    xla: bool = _field(
        True, "XLA-compiled training step (our cells on one CPU device)", group="devices"
    )

    def validate(self):
        """Raises ValueError naming the first field out of range."""
        positive = ("max_vocab", "layers", "embed_dim", "batch_size", "seq_len", "epochs")
        for name in positive:
            checks.positive_int(name, getattr(self, name))
        units = self.units if isinstance(self.units, list) else [self.units]
        if not units or not all(isinstance(u, int) and u > 0 for u in units):
            raise ValueError(
                f"`units` must be a positive integer or a list of them, got {self.units!r}"
            )
        rates = (
            "dropout",
            "recurrent_dropout",
            "embed_dropout",
            "embed_weight_dropout",
            "weight_dropout",
            "zoneout",
        )
        for name in rates:
            checks.rate(name, getattr(self, name))
        for name in ("ar_alpha", "tar_beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}")
        for field in dataclasses.fields(self):
            choices = field.metadata["choices"]
            if choices and getattr(self, field.name) not in choices:
                raise ValueError(
                    f"`{field.name}` must be one of {', '.join(choices)}, "
                    f"got {getattr(self, field.name)!r}"
                )
        for name in ("layer_norm", "zoneout"):
            if getattr(self, name) and self.cell not in GATED_CELLS:
                raise ValueError(
                    f"`{name}` applies to cell {' or '.join(GATED_CELLS)}, got cell={self.cell!r}"
                )
        for name in ("learning_rate", "clipnorm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
        for name in ("learning_rate", "clipnorm", "ar_alpha", "tar_beta"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"`{name}` must be a finite number, got {getattr(self, name)!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"`seed` must be an integer in [0, 2**32), got {self.seed!r}")
        if not 0.0 < self.lr_decay < 1.0:
            raise ValueError(f"`lr_decay` must be in (0, 1), got {self.lr_decay!r}")
        if self.steps_per_epoch < 0 or self.patience < 0:
            raise ValueError("`steps_per_epoch` and `patience` must be >= 0")
        if self.nonmono < 0:
            raise ValueError(f"`nonmono` must be >= 0, got {self.nonmono!r}")
        if self.nonmono and self.patience < self.nonmono + 2:
            raise ValueError(
                f"`nonmono`={self.nonmono} needs `patience` >= {self.nonmono + 2}: "
                "early stopping would end the run before averaging could start"
            )
        return self
