"""A warning when validation perplexity is worse than a uniform guess over the vocabulary.

A model that gives each of V tokens probability 1/V has perplexity exactly V, so validation
perplexity above V means the trained model predicts held-out text worse than knowing nothing.

One recipe-level cause is measured (docs/results/gru_anomaly.md): trained with carried state
(`TrainConfig.carry_state`, zeroed only at epoch starts), the 2-layer GRU of docs/results/table.md holds
a saturated state pattern, the same in every stream, which the layers above learn as a
constant. Evaluation starts from zero, which the final weights can send to a different stable
pattern, kept for the whole split: after 600 windows, validation perplexity 6,813-29,779 over
three seeds from zero against 255-288 from the state training ended in. Training with
`carry_state=False`, or with learning rate 1e-3, removed it in every seed tried.
"""

import warnings

import keras


class WorseThanUniformWarning(UserWarning):
    """Validation perplexity exceeded the vocabulary size (a uniform model's perplexity)."""


class WarnWorseThanUniform(keras.callbacks.Callback):
    """At each epoch end, warns if `logs[monitor]` > `vocab_size`.

    Args:
        vocab_size: V, the perplexity of the uniform distribution over the vocabulary.
        monitor: the perplexity to check. Default "val_perplexity"; epochs without it
            (no validation) and NaN are not checked, +inf warns. The message also names
            `logs["perplexity"]` (training) when present.
    """

    def __init__(self, vocab_size, monitor="val_perplexity"):
        super().__init__()
        self.vocab_size, self.monitor = vocab_size, monitor

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not float(value) > self.vocab_size:  # NaN compares False
            return
        trained = logs.get("perplexity")
        seen = f" (training perplexity {float(trained):,.1f})" if trained is not None else ""
        warnings.warn(
            f"epoch {epoch + 1}: {self.monitor} {float(value):,.1f}{seen} is worse than uniform "
            f"over the vocabulary (perplexity {self.vocab_size:,}). One known cause: with "
            "carried state (carry_state, the default) a recurrent layer can settle during "
            "training into a state pattern that evaluation's zero initial state does not "
            "reach; training with --carry-state false, or a lower --learning-rate (1e-3), "
            "removed it (docs/results/gru_anomaly.md)",
            WorseThanUniformWarning,
            stacklevel=2,
        )
