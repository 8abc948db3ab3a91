"""The synthetic tasks of the demo and the sweep, behind one interface (`TASKS`).

recall   recall the first of T tokens (`recall_task`), scored by accuracy
adding   add the two marked of T numbers (`adding_task`), scored by mean squared error
"""

import dataclasses
from collections.abc import Callable

from keras_gated.diagnostics.adding_task import (
    BASELINE_MSE,
    adding_batch,
    adding_gradient_norms,
    adding_model,
    adding_mse,
)
from keras_gated.diagnostics.recall_task import (
    NUM_CLASSES,
    recall_accuracy,
    recall_batch,
    recall_gradient_norms,
    recall_loss,
    recall_model,
)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    title: str  # what the model must do, with {T} where the sequence length goes
    metric: str  # "accuracy" (higher is better) or "mse" (lower is better)
    baseline: float  # the metric of a model that carries nothing back: chance, or the mean
    batch: Callable  # (rng, size, seq_len) -> x, y
    model: Callable  # (cell, seq_len, units, learning_rate=, clipnorm=) -> compiled model
    gradient_norms: Callable  # (model, x, y) -> state name -> (T,) ||d loss/d s_t||
    loss: Callable  # (model, x, y) -> float, the training loss
    score: Callable  # (model, x, y) -> float, the metric

    def describe(self, seq_len=None):
        """The task in JSON-ready words and numbers, for results, tables and plot titles;
        the title names `seq_len` ("T=30") or, if None, just "T"."""
        length = "T" if seq_len is None else f"T={seq_len}"
        return {
            "name": self.name,
            "title": self.title.format(T=length),
            "metric": self.metric,
            "baseline": self.baseline,
        }


TASKS = {
    "recall": Task(
        "recall",
        "recall the first of {T} tokens",
        "accuracy",
        1.0 / NUM_CLASSES,
        recall_batch,
        recall_model,
        recall_gradient_norms,
        lambda model, x, y: float(recall_loss(model, x, y)),
        recall_accuracy,
    ),
    "adding": Task(
        "adding",
        "add the two marked of {T} numbers",
        "mse",
        BASELINE_MSE,
        adding_batch,
        adding_model,
        adding_gradient_norms,
        adding_mse,
        adding_mse,
    ),
}
