"""One training step of a word language model, in each system compared.

The step: forward, backward, update, cross-entropy over all B x T
tokens. The architecture is the same everywhere: tied embedding (V, E) -> `layers` recurrent
layers of U = E units -> logits x E^T (no output bias) -> mean token cross-entropy -> plain
SGD. Tokens are uniform random ids (speed does not depend on them).

Systems (`SYSTEMS`), built per cell ("lstm" or "gru"):
    ours          keras_gated.language_model with dropout: embed_dropout = dropout =
                  `setup.dropout` (locked masks) and recurrent_dropout = `setup.recurrent_dropout`;
                  the step compiled by XLA, as `keras_gated.train` compiles it (TrainConfig.xla)
    ours-nodrop   the same model without dropout
    ours-noxla    `ours` in a step without XLA: our layers in a plain `model.compile()` on CPU
    keras         keras.layers.LSTM/GRU(use_cudnn=False), no dropout
    keras-drop    the same with dropout=`setup.dropout`, recurrent_dropout=`setup.recurrent_dropout`
    torch         torch.nn.LSTM/GRU, no dropout (skipped when torch does not import)
    floor         embedding + tied output projection only (no recurrent layer): the cost
                  no recurrent layer can go below
    floor-xla     the same, compiled by XLA
Every Keras system runs the same `tf.function` step with `keras.optimizers.SGD`, without XLA
unless its name says otherwise (Keras's "auto" leaves XLA off on CPU, where it slows Keras's
built-in recurrent layers).
"""

import dataclasses

import numpy as np

SYSTEMS = (
    "ours",
    "ours-nodrop",
    "ours-noxla",
    "keras",
    "keras-drop",
    "torch",
    "floor",
    "floor-xla",
)
DESCRIPTIONS = {
    "ours": "keras-gated, dropout {d}/{r} (embedding, between layers, recurrent)",
    "ours-nodrop": "keras-gated, no dropout",
    "ours-noxla": "keras-gated, dropout as `ours`, step without XLA",
    "keras": "Keras built-in {cell} (use_cudnn=False), no dropout",
    "keras-drop": "Keras built-in {cell}, dropout={d}, recurrent_dropout={r}",
    "torch": "PyTorch nn.{cell}, no dropout",
    "floor": "embedding + tied projection only",
    "floor-xla": "embedding + tied projection only, XLA",
}


@dataclasses.dataclass(frozen=True)
class TrainSetup:
    """Sizes of the benchmarked language model and its training step."""

    vocab: int = 10_000  # V
    units: int = 650  # U = E (tied weights need equal widths)
    layers: int = 2
    batch: int = 20  # B
    steps: int = 35  # T, BPTT length
    dropout: float = 0.5  # input/locked dropout rate where a system has it
    recurrent_dropout: float = 0.5
    lr: float = 1.0  # SGD learning rate
    seed: int = 0

    def label(self):
        return (
            f"V={self.vocab}, E=U={self.units}, {self.layers} layers, "
            f"B={self.batch}, T={self.steps}"
        )


def batch_data(setup):
    """Inputs and next-token targets, int32 (B, T) each."""
    rng = np.random.default_rng(setup.seed)
    ids = rng.integers(0, setup.vocab, (setup.batch, setup.steps + 1), dtype=np.int32)
    return ids[:, :-1], ids[:, 1:]


def describe(name, cell, setup):
    return DESCRIPTIONS[name].format(cell=cell.upper(), d=setup.dropout, r=setup.recurrent_dropout)


# -- Keras ------------------------------------------------------------------------------
def builtin_language_model(setup, cell, dropout=0.0, recurrent_dropout=0.0):
    """Keras's built-in LSTM/GRU layers in the benchmarked LM, built and returned."""
    import keras

    layer_class = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]

    class BuiltinLanguageModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.embedding = keras.layers.ReversibleEmbedding(
                setup.vocab, setup.units, tie_weights=True, name="embedding"
            )
            self.rnn_layers = [
                layer_class(
                    setup.units,
                    dropout=dropout,
                    recurrent_dropout=recurrent_dropout,
                    return_sequences=True,
                    use_cudnn=False,
                    name=f"{cell}_{k}",
                )
                for k in range(setup.layers)
            ]

        def call(self, tokens, training=False):
            x = self.embedding(tokens)
            for layer in self.rnn_layers:
                x = layer(x, training=training)
            return self.embedding(x, reverse=True)

    keras.utils.set_random_seed(setup.seed)
    model = BuiltinLanguageModel()
    model(np.zeros((1, 1), np.int32))
    return model


def floor_model(setup):
    """Embedding + tied projection, nothing between: the step's fixed cost."""
    import keras

    class Floor(keras.Model):
        def __init__(self):
            super().__init__()
            self.embedding = keras.layers.ReversibleEmbedding(
                setup.vocab, setup.units, tie_weights=True
            )

        def call(self, tokens, training=False):
            return self.embedding(self.embedding(tokens), reverse=True)

    model = Floor()
    model(np.zeros((1, 1), np.int32))
    return model


def ours_language_model(setup, cell, dropout=True):
    """keras_gated.language_model in the benchmarked sizes, built."""
    import keras

    import keras_gated

    keras.utils.set_random_seed(setup.seed)
    d, r = (setup.dropout, setup.recurrent_dropout) if dropout else (0.0, 0.0)
    return keras_gated.language_model(
        setup.vocab,
        cell=cell,
        embed_dim=setup.units,
        units=setup.units,
        num_layers=setup.layers,
        dropout=d,
        recurrent_dropout=r,
        embed_dropout=d,
        tie_weights=True,
        seed=setup.seed,
    )


def keras_step(model, setup, jit_compile=False):
    """A callable running one SGD step of `model` on the benchmark batch; returns the loss."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(setup.lr)
    optimizer.build(model.trainable_variables)
    x, y = (tf.constant(a) for a in batch_data(setup))
    step = train_step(model, optimizer, jit_compile)
    return lambda: float(step(x, y))


def train_step(model, optimizer, jit_compile=False):
    """A tf.function: one optimizer step on mean token cross-entropy; returns the loss."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


# -- PyTorch ----------------------------------------------------------------------------
def torch_available():
    """torch's version string, or None when it does not import."""
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def torch_step(setup, cell):
    """The same LM and SGD step in PyTorch (nn.Embedding, nn.LSTM/GRU, tied nn.Linear)."""
    x, y = batch_data(setup)
    return torch_lm_step(
        x, y, setup.vocab, setup.units, setup.layers, cell, lr=setup.lr, tied=True, seed=setup.seed
    )


def torch_lm_step(x, y, vocab, units, layers, cell="lstm", lr=0.01, tied=False, seed=0):
    """PyTorch's word LM without dropout, one SGD step per call: Embedding(V, U) ->
    nn.LSTM/GRU(U, U, layers) -> Linear(U, V) (tied to the embedding without a bias, or
    untied with one, as Keras's Dense) -> cross-entropy. x, y: (B, T) token ids."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]

    class TorchLanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, units)
            self.rnn = rnn_class(units, units, layers, batch_first=True)
            self.decoder = nn.Linear(units, vocab, bias=not tied)
            if tied:
                self.decoder.weight = self.embedding.weight

        def forward(self, tokens):  # (B, T) -> (B, T, V)
            return self.decoder(self.rnn(self.embedding(tokens))[0])

    model = TorchLanguageModel().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = (torch.from_numpy(np.asarray(a).astype(np.int64)) for a in (x, y))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


# -- all systems --------------------------------------------------------------------------
def build_system(name, setup, cell):
    """The step callable of one system of `SYSTEMS`; None for torch when not installed."""
    if name in ("ours", "ours-nodrop", "ours-noxla"):
        model = ours_language_model(setup, cell, dropout=name != "ours-nodrop")
        return keras_step(model, setup, jit_compile=name != "ours-noxla")
    if name == "keras":
        return keras_step(builtin_language_model(setup, cell), setup)
    if name == "keras-drop":
        return keras_step(
            builtin_language_model(setup, cell, setup.dropout, setup.recurrent_dropout), setup
        )
    if name == "torch":
        return torch_step(setup, cell) if torch_available() else None
    if name in ("floor", "floor-xla"):
        return keras_step(floor_model(setup), setup, jit_compile=name == "floor-xla")
    raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")
