"""The training recipe as one dataclass; every field has its default and meaning."""

import dataclasses


@dataclasses.dataclass
class TrainConfig:
    corpus: str = "shakespeare"  # "shakespeare", a UTF-8 file, or a directory of .txt files
    level: str = "word"  # "word" or "char" tokens
    max_vocab: int = 10_000  # word level: most frequent words kept, the rest <unk>
    cell: str = "lstm"  # "lstm", "gru", "rnn", or "keras-lstm" (Keras's built-in, for comparison)
    layers: int = 2  # stacked recurrent layers
    embed_dim: int = 200  # embedding width E
    units: int = 200  # recurrent width U (must equal E when tied)
    dropout: float = 0.3  # locked dropout between layers and before the output
    recurrent_dropout: float = 0.2  # variational dropout on h_{t-1}
    embed_dropout: float = 0.1  # locked dropout on the embeddings
    tie_weights: bool = True  # output projection reuses the embedding matrix
    batch_size: int = 32  # parallel contiguous streams
    seq_len: int = 35  # BPTT window
    epochs: int = 4  # passes over the training split
    steps_per_epoch: int = 0  # 0: the whole training split each epoch
    learning_rate: float = 3e-3  # Adam step size
    clipnorm: float = 1.0  # global-norm gradient clipping (optimizer's global_clipnorm)
    lr_decay: float = 0.25  # factor on the learning rate when validation perplexity stalls
    patience: int = 2  # epochs without improvement before early stopping
    seed: int = 0  # weights, dropout masks and data splits
    carry_state: bool = True  # carry h (and c) across consecutive BPTT windows
    strategy: str = "none"  # "none", "mirrored" (GPUs of one machine) or "multiworker" (TF_CONFIG)
    xla: bool = True  # XLA-compiled training step (our cells, one CPU device; ~10-20% faster)

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
        if self.level not in ("word", "char"):
            raise ValueError(f"`level` must be 'word' or 'char', got {self.level!r}")
        for name in ("learning_rate", "clipnorm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
        if not 0.0 < self.lr_decay < 1.0:
            raise ValueError(f"`lr_decay` must be in (0, 1), got {self.lr_decay!r}")
        if self.strategy not in ("none", "mirrored", "multiworker"):
            raise ValueError(f"`strategy` must be none, mirrored or multiworker, got {self.strategy!r}")
        if self.strategy != "none" and self.carry_state:
            raise ValueError("`carry_state` needs strategy='none': replicas cannot share carried "
                             "state; pass --carry-state false with --strategy")
        if self.steps_per_epoch < 0 or self.patience < 0:
            raise ValueError("`steps_per_epoch` and `patience` must be >= 0")
        return self
