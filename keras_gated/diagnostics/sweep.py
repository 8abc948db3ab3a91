"""The metric against dependency distance, T = 10, 30, 100, 300 (`keras-gated diagnose --sweep`).

At every T the vanilla RNN, the LSTM and the GRU get the same budget: one recipe (`SWEEP`, a
`DemoConfig`: the same Adam learning rate and clipping, `train_steps` batches of `batch_size`,
the same training sequences for the three cells, the same initialisation whatever T, chrono's
T_max included). Only T changes, so a cell whose error climbs to the baseline as T grows no
longer carries the information T/2 ... T - 1 steps. Each point is `demo.compare_cells`,
re-seeded with (seed, T): it does not depend on which others ran.

The task is the adding problem (`adding_task`) by default, not the demo's recall task: recall
does not separate the cells. Its distractors are tokens of their own, so the embedding can map
them to ~0 and an orthogonally initialised vanilla RNN then carries the label losslessly: at
T = 300, 500 steps of batch 32, Adam lr 1e-3, the vanilla RNN, LSTM and GRU (chrono) all
reached accuracy 1.00 (`--task recall` reproduces it). On the adding problem a value counts by
its marker, which takes a gated decision at every step.

Writes (`write_sweep`):
    sweep.png / sweep.csv           the metric and the gradient's reach ||dL/ds_1|| / ||dL/ds_T||
                                    at init and trained against T, one row per (cell, T), the
                                    recipe in every row; s is the state that carries memory,
                                    c for the LSTM (its h reaches back only through c), h else
    sweep_gradient_flow.png / .csv  `plots.plot_gradient_comparison` at the longest T
    sweep.json                      the recipe, the metric table and the wall time
"""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_gated.atomic import write_json
from keras_gated.diagnostics import plots, tables
from keras_gated.diagnostics.demo import CELL_ORDER, compare_cells, gradient_rows
from keras_gated.diagnostics.demo_config import SWEEP, SWEEP_SEQ_LENS, SWEEP_TASK
from keras_gated.diagnostics.gradient_flow import gradient_reach
from keras_gated.diagnostics.tasks import TASKS

OPTIMIZER = "Adam"  # every task's optimizer, with global_clipnorm = config.clipnorm


def sweep_stages(seq_lens):
    """How many `progress.update` calls `run_sweep` makes."""
    return 2 * len(CELL_ORDER) * len(seq_lens)


def run_sweep(config=None, seq_lens=SWEEP_SEQ_LENS, task=SWEEP_TASK, progress=None):
    """Trains every cell at every T in `seq_lens` under `config`'s recipe.

    Args:
        config: a `DemoConfig` (`SWEEP` if None); its `seq_len` is replaced by each T.
        seq_lens: the T values, each >= 2.
        task: a name in `tasks.TASKS`, "adding" or "recall".
        progress: optional tqdm bar, advanced `sweep_stages(seq_lens)` times.

    Returns:
        dict with "config", "task" (`Task.describe()`), "seq_lens", "points" (T ->
        `compare_cells`'s dict) and "seconds" (wall time of the whole sweep).
    """
    config = config or SWEEP
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {sorted(TASKS)}, got {task!r}")
    if not seq_lens or min(seq_lens) < 2:
        raise ValueError(f"every T must be at least 2, got {seq_lens}")
    start = time.perf_counter()
    points = {}
    for seq_len in seq_lens:
        point = dataclasses.replace(config, seq_len=seq_len)
        keras.utils.set_random_seed(config.seed)
        rng = np.random.default_rng([config.seed, seq_len])
        x_eval, y_eval = TASKS[task].batch(rng, config.eval_size, seq_len)
        points[seq_len] = compare_cells(point, TASKS[task], rng, x_eval, y_eval, progress)
    return {
        "config": dataclasses.asdict(config),
        "task": TASKS[task].describe(),
        "seq_lens": list(seq_lens),
        "points": points,
        "seconds": time.perf_counter() - start,
    }


def memory_state(norms):
    """The state that carries memory, of a `gradient_norms` dict: "c" for the LSTM, else "h"."""
    return "c" if "c" in norms else "h"


def sweep_rows(results):
    """One CSV row per (cell, T): the metric, loss, gradient reach and the recipe."""
    config, task = results["config"], results["task"]
    metric = task["metric"]
    return [
        {
            "cell": cell,
            "seq_len": seq_len,
            "task": task["name"],
            metric: entry["score_trained"],
            f"{metric}_init": entry["score_init"],
            "baseline": task["baseline"],
            "loss": entry["loss_trained"],
            "grad_state": memory_state(entry["init"]),
            "grad_reach_init": gradient_reach(entry["init"][memory_state(entry["init"])]),
            "grad_reach_trained": gradient_reach(entry["trained"][memory_state(entry["init"])]),
            "train_seconds": round(entry["seconds"], 2),
            "optimizer": OPTIMIZER,
            "learning_rate": config["learning_rate"],
            "clipnorm": config["clipnorm"],
            "train_steps": config["train_steps"],
            "batch_size": config["batch_size"],
            "units": config["units"],
            "init": entry["init_description"],
        }
        for seq_len, point in results["points"].items()
        for cell, entry in point.items()
    ]


def summarize_sweep(results):
    """The recipe, metric[cell][T] and the wall time, JSON-ready."""
    points, lengths = results["points"], results["seq_lens"]
    table = {
        cell: {str(t): points[t][cell]["score_trained"] for t in lengths} for cell in CELL_ORDER
    }
    inits = {cell: points[lengths[-1]][cell]["init_description"] for cell in CELL_ORDER}
    return {
        "config": results["config"],
        "task": results["task"],
        "optimizer": OPTIMIZER,
        "init": inits,
        "seq_lens": lengths,
        results["task"]["metric"]: table,
        "seconds": results["seconds"],
    }


def write_sweep(results, out):
    """Writes the sweep's pictures and numbers into `out`; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    path = lambda name: os.path.join(out, name)  # noqa: E731
    longest = max(results["seq_lens"])
    rows = sweep_rows(results)
    tables.write_csv(path("sweep.csv"), rows)
    tables.write_csv(path("sweep_gradient_flow.csv"), gradient_rows(results["points"][longest]))
    write_json(path("sweep.json"), summarize_sweep(results))
    plots.plot_sweep(rows, results["task"], results["config"], path("sweep.png"))
    at_longest = {
        "config": {**results["config"], "seq_len": longest},
        "task": TASKS[results["task"]["name"]].describe(longest),
        "comparison": results["points"][longest],
    }
    plots.plot_gradient_comparison(at_longest, path("sweep_gradient_flow.png"))
    return [
        path(name)
        for name in (
            "sweep.png",
            "sweep_gradient_flow.png",
            "sweep.csv",
            "sweep_gradient_flow.csv",
            "sweep.json",
        )
    ]
