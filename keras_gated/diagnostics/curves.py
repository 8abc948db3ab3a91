"""Training curves from a run directory's logs: `log.csv` (Keras's CSVLogger) and
`grad_norm.csv` (`GradientNormLogger`)."""

import csv
import os

import numpy as np

# LOG's columns: epoch, loss, perplexity, val_loss, val_perplexity, learning_rate
from keras_gated.training.run_dir import GRAD_NORM, LOG


def read_csv_columns(path):
    """A CSV of numbers -> dict column -> float64 array, rows sorted by "epoch".

    A resumed run appends to its logs, so an epoch may appear twice: the last row wins.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path!r} holds no rows")
    by_epoch = {int(float(row["epoch"])): row for row in rows}
    epochs = sorted(by_epoch)
    columns = {}
    for name in rows[0]:
        values = [by_epoch[e].get(name) for e in epochs]
        columns[name] = np.array([_number(v) for v in values])
    columns["epoch"] = np.array(epochs)
    return columns


def _number(text):
    """A CSV cell as a float; empty or "NA" (CSVLogger's missing value) -> NaN."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return np.nan


def read_training_log(run_dir):
    """`run_dir/log.csv` as columns; FileNotFoundError if the run has none."""
    path = os.path.join(run_dir, LOG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir!r} has no {LOG}")
    return read_csv_columns(path)


def read_grad_norms(run_dir):
    """`run_dir/grad_norm.csv` as columns, or None if the run was trained without the logger."""
    path = os.path.join(run_dir, GRAD_NORM)
    return read_csv_columns(path) if os.path.exists(path) else None
