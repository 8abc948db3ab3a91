"""The classic comparison, measured on our own layers (`keras-gated diagnose --demo`).

Three experiments on the recall task (`recall_task`), loss at the last step only, so the
gradient at step t has travelled k = T - 1 - t steps back:

1. Comparison: vanilla RNN (tanh), LSTM and GRU of the same width, ||d loss/d h_t|| (and the
   LSTM's ||d loss/d c_t||) at random initialisation and after `train_steps` Adam steps, every
   cell on the same training sequences. The gated cells start with chrono gate biases
   (`DemoConfig.gate_bias`, `chrono.chrono_gate_bias`). With Keras's default ones
   (`--gate-bias keras`) the gradient through the gates decays like 0.73^k (LSTM) and 0.5^k
   (GRU) at initialisation while the orthogonal vanilla RNN's barely shrinks, and at T = 30,
   500 steps the accuracies were RNN 1.00, LSTM 0.52, GRU 0.25 (chance) at lr 1e-2 and
   1.00, 0.78, 0.26 at lr 1e-3: the learning rate is not the cause. With chrono biases all
   three reach 1.00 at either rate. `sweep` compares the cells as T grows.
2. Vanishing / exploding: a vanilla RNN whose recurrent matrix U is rescaled so that its
   largest singular value is sigma_1 < 1 or > 1, with the identity ("linear") and the tanh
   activation. Equation (1) of `gradient_flow` bounds each backward step by sigma_1, so
   ||g_{T-1-k}|| <= sigma_1^k ||g_{T-1}|| (the "predicted" curve); the default orthogonal U
   has all singular values equal, which makes the bound exact for the linear recurrence.
3. Clipping: the exploding linear case trained with SGD, with and without global-norm
   clipping (the optimizer's `global_clipnorm`): the norm of the gradient before clipping
   and of the update the optimizer actually applied, ||delta w|| / learning_rate.
   The embedding's gradient is made dense first: Keras measures a sparse (IndexedSlices)
   gradient by its un-summed rows, which overstates or understates the true norm whenever
   a token repeats in the batch, and the applied update would then not have norm clipnorm.

Every number is returned (`run_demo`) and written as CSV/JSON beside the pictures (`write_demo`).
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_gated.atomic import write_json
from keras_gated.diagnostics import plots, tables
from keras_gated.diagnostics.chrono import chrono_gate_bias
from keras_gated.diagnostics.demo_config import DemoConfig, describe_init
from keras_gated.diagnostics.gradient_flow import gradient_reach, growth_rates
from keras_gated.diagnostics.recall_task import (
    recall_batch,
    recall_gradient_norms,
    recall_loss,
    recall_model,
    scale_recurrent_kernel,
)
from keras_gated.diagnostics.tasks import TASKS

CELL_ORDER = ("rnn", "lstm", "gru")
ACTIVATIONS = ("linear", "tanh")


def _stage(progress, name):
    if progress is not None:
        progress.set_description(name)


def _advance(progress):
    if progress is not None:
        progress.update(1)


def demo_stages(config):
    """How many `progress.update` calls `run_demo` makes (for a progress bar's total)."""
    return 2 * len(CELL_ORDER) + len(config.sigmas) * len(ACTIVATIONS) + 2


def run_demo(config=None, progress=None):
    """Runs the three experiments; returns their numbers (numpy arrays indexed by step t).

    Args:
        config: a `DemoConfig` (default values if None).
        progress: optional tqdm bar, advanced `demo_stages(config)` times.

    Returns:
        dict with "config", "task" (`Task.describe`), "comparison" (cell -> {"init",
        "trained"} -> state -> (T,) norms, and accuracies), "vanishing_exploding" (list of
        cases) and "clipping".
    """
    config = config or DemoConfig()
    task = TASKS["recall"]
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x_eval, y_eval = task.batch(rng, config.eval_size, config.seq_len)
    return {
        "config": dataclasses.asdict(config),
        "task": task.describe(config.seq_len),
        "comparison": compare_cells(config, task, rng, x_eval, y_eval, progress),
        "vanishing_exploding": _vanishing_exploding(config, x_eval, y_eval, progress),
        "clipping": _clipping(config, rng, progress),
    }


def cell_model(cell, config, task, rng):
    """`task.model` for `cell` under `config`'s recipe, gate biases included."""
    model = task.model(
        cell,
        config.seq_len,
        config.units,
        learning_rate=config.learning_rate,
        clipnorm=config.clipnorm,
    )
    if cell != "rnn" and config.gate_bias == "chrono":
        chrono_gate_bias(model.get_layer("rnn"), config.max_delay, rng)
    return model


def compare_cells(config, task, rng, x_eval, y_eval, progress=None):
    """Trains each of `CELL_ORDER` on the same `train_steps` batches of `task` (a `Task`).

    Returns:
        dict cell -> {"init", "trained"}: state -> (T,) gradient norms on (x_eval, y_eval);
        "score_init", "score_trained" (`task.metric` on (x_eval, y_eval)), "loss_trained";
        "init_description"; "seconds" (wall time of training).
    """
    x, y = task.batch(rng, config.batch_size * config.train_steps, config.seq_len)
    results = {}
    for cell in CELL_ORDER:
        _stage(progress, f"T={config.seq_len} {cell}: random init")
        model = cell_model(cell, config, task, rng)
        entry = {
            "init": task.gradient_norms(model, x_eval, y_eval),
            "score_init": task.score(model, x_eval, y_eval),
            "init_description": describe_init(cell, config),
        }
        _advance(progress)
        _stage(progress, f"T={config.seq_len} {cell}: training")
        start = time.perf_counter()
        model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0)
        entry["seconds"] = time.perf_counter() - start
        entry["trained"] = task.gradient_norms(model, x_eval, y_eval)
        entry["score_trained"] = task.score(model, x_eval, y_eval)
        entry["loss_trained"] = task.loss(model, x_eval, y_eval)
        results[cell] = entry
        _advance(progress)
    return results


def _vanishing_exploding(config, x_eval, y_eval, progress):
    cases = []
    for sigma in config.sigmas:
        for activation in ACTIVATIONS:
            _stage(progress, f"rnn sigma_1={sigma} {activation}")
            model = recall_model("rnn", config.seq_len, config.units, activation=activation)
            scale_recurrent_kernel(model.get_layer("rnn"), sigma)
            norms = recall_gradient_norms(model, x_eval, y_eval)["h"]
            distance = np.arange(config.seq_len)[::-1]  # k = T - 1 - t
            rates = growth_rates(norms)
            cases.append(
                {
                    "case": "vanishing" if sigma < 1 else "exploding",
                    "activation": activation,
                    "sigma1": float(sigma),
                    "norms": norms,
                    "predicted": norms[-1] * float(sigma) ** distance,
                    "rates": rates,
                    "mean_rate": float((norms[0] / norms[-1]) ** (1.0 / (config.seq_len - 1))),
                    "max_rate": float(np.max(rates)),
                }
            )
            _advance(progress)
    return cases


def _global_norm(tensors):
    return float(tf.linalg.global_norm(list(tensors)))


def _clipping(config, rng, progress):
    """SGD on the exploding linear RNN, with and without `global_clipnorm`."""
    _stage(progress, "clipping")
    sigma = max(config.sigmas)
    base = recall_model("rnn", config.seq_len, config.units, activation="linear")
    scale_recurrent_kernel(base.get_layer("rnn"), sigma)
    batches = [
        recall_batch(rng, config.batch_size, config.seq_len) for _ in range(config.clip_steps)
    ]
    runs = {}
    for name, clip in (("clipped", config.clipnorm), ("unclipped", None)):
        model = recall_model("rnn", config.seq_len, config.units, activation="linear")
        model.set_weights(base.get_weights())
        optimizer = keras.optimizers.SGD(config.clip_learning_rate, global_clipnorm=clip)
        runs[name] = _sgd_steps(model, optimizer, batches, config.clip_learning_rate)
    _advance(progress)
    return {
        "sigma1": float(sigma),
        "clipnorm": config.clipnorm,
        "learning_rate": config.clip_learning_rate,
        **runs,
    }


def _sgd_steps(model, optimizer, batches, learning_rate):
    """Per step: loss, global gradient norm before clipping, applied update ||delta w|| / lr."""
    record = {"loss": [], "grad_norm": [], "update_norm": []}
    variables = model.trainable_variables
    for x, y in batches:
        with tf.GradientTape() as tape:
            loss = recall_loss(model, x, y)
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        before = [v.numpy() for v in variables]
        optimizer.apply_gradients(zip(grads, variables))
        delta = [v.numpy() - b for v, b in zip(variables, before)]
        record["loss"].append(float(loss))
        record["grad_norm"].append(_global_norm(grads))
        record["update_norm"].append(_global_norm(delta) / learning_rate)
        if not all(np.isfinite(record[k][-1]) for k in record):
            break
    return {k: np.array(v) for k, v in record.items()}


def write_demo(results, out):
    """Writes the demo's pictures and numbers into `out`; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    path = lambda name: os.path.join(out, name)  # noqa: E731
    steps = results["config"]["seq_len"]
    tables.write_csv(path("gradient_comparison.csv"), gradient_rows(results["comparison"]))
    rows = [
        {
            "case": c["case"],
            "activation": c["activation"],
            "sigma1": c["sigma1"],
            "t": t,
            "distance": steps - 1 - t,
            "norm": float(n),
            "predicted": float(p),
        }
        for c in results["vanishing_exploding"]
        for t, (n, p) in enumerate(zip(c["norms"], c["predicted"]))
    ]
    tables.write_csv(path("vanishing_exploding.csv"), rows)
    clip = results["clipping"]
    rows = [
        {
            "run": run,
            "step": i + 1,
            "loss": clip[run]["loss"][i],
            "grad_norm": clip[run]["grad_norm"][i],
            "update_norm": clip[run]["update_norm"][i],
        }
        for run in ("clipped", "unclipped")
        for i in range(len(clip[run]["loss"]))
    ]
    tables.write_csv(path("clipping.csv"), rows)
    write_json(path("demo.json"), summarize_demo(results))
    plots.plot_gradient_comparison(results, path("gradient_comparison.png"))
    plots.plot_vanishing_exploding(results, path("vanishing_exploding.png"))
    names = ("gradient_comparison", "vanishing_exploding", "clipping")
    return (
        [path(n + ".png") for n in names[:2]]
        + [path(n + ".csv") for n in names]
        + [path("demo.json")]
    )


def gradient_rows(comparison):
    """`compare_cells`'s gradient norms as CSV rows, one per (cell, stage, state, step t)."""
    return [
        {
            "cell": cell,
            "stage": stage,
            "state": state,
            "t": t,
            "distance": len(norms) - 1 - t,
            "norm": float(norm),
        }
        for cell, entry in comparison.items()
        for stage in ("init", "trained")
        for state, norms in entry[stage].items()
        for t, norm in enumerate(norms)
    ]


def summarize_demo(results):
    """The headline numbers of `run_demo`'s results, JSON-ready."""
    steps = results["config"]["seq_len"]
    comparison = {}
    for cell, entry in results["comparison"].items():
        metric = results["task"]["metric"]
        summary = {
            "init_description": entry["init_description"],
            f"{metric}_init": entry["score_init"],
            f"{metric}_trained": entry["score_trained"],
            "loss_trained": entry["loss_trained"],
        }
        for stage in ("init", "trained"):
            for state, norms in entry[stage].items():
                summary[f"{stage}_{state}"] = {
                    "last_step": float(norms[-1]),
                    "first_step": float(norms[0]),
                    f"ratio_{steps - 1}_steps_back": gradient_reach(norms),
                }
        comparison[cell] = summary
    cases = [
        {k: c[k] for k in ("case", "activation", "sigma1", "mean_rate", "max_rate")}
        for c in results["vanishing_exploding"]
    ]
    clip = results["clipping"]
    clipping = {k: clip[k] for k in ("sigma1", "clipnorm", "learning_rate")}
    for run in ("clipped", "unclipped"):
        clipping[run] = {k: [float(v) for v in clip[run][k]] for k in clip[run]}
    return {
        "config": results["config"],
        "task": results["task"],
        "comparison": comparison,
        "vanishing_exploding": cases,
        "clipping": clipping,
    }
