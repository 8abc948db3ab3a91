"""The pictures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).

Each function takes numbers (as the other diagnostics modules return them) and a .png path.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 90  # keeps each picture well under 150 KB
CELL_STYLE = {"rnn": ("vanilla RNN", "C0"), "lstm": ("LSTM", "C1"), "gru": ("GRU", "C2")}
CASE_COLOR = {"vanishing": "C0", "exploding": "C3"}
GATE_LABELS = {
    "f": "forget gate f",
    "i": "input gate i",
    "o": "output gate o",
    "z": "update gate z",
    "r": "reset gate r",
}


def _figure(width, height):
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.savefig(path, dpi=DPI)
    return path


def _positive(values):
    """Values for a log axis: non-positive and non-finite entries become NaN (gaps)."""
    v = np.asarray(values, dtype="float64")
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _log_if_wide(ax, values, ratio=20.0):
    """A log y axis only when the values span more than `ratio` (else its ticks say little)."""
    v = _positive(values)
    if np.any(np.isfinite(v)) and np.nanmax(v) > ratio * np.nanmin(v):
        ax.set_yscale("log")


def _back(norms):
    """Norms indexed by step t -> indexed by distance k = T - 1 - t, relative to k = 0."""
    back = np.asarray(norms, dtype="float64")[::-1]
    return _positive(back / back[0]) if back[0] > 0 else _positive(back)


def plot_gradient_comparison(results, path):
    """Demo experiment 1: gradient against distance back, at init and trained, per cell."""
    config, comparison = results["config"], results["comparison"]
    metric = results["task"]["metric"]
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2, sharey=True)
    titles = {
        "init": "random initialisation",
        "trained": f"after {config['train_steps']} training steps",
    }
    for ax, stage in zip(axes, ("init", "trained")):
        for cell, entry in comparison.items():
            name, color = CELL_STYLE.get(cell, (cell, None))
            score = entry[f"score_{stage}"]
            for state, norms in entry[stage].items():
                label = f"{name} $h$" if state == "h" else f"{name} $c$ (cell state)"
                ax.plot(
                    _back(norms),
                    color=color,
                    ls="-" if state == "h" else "--",
                    label=f"{label}, {metric} {score:.3g}",
                )
        ax.set_yscale("log")
        ax.set_title(titles[stage])
        ax.set_xlabel("k, steps back from the loss")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(r"$\|\partial L/\partial s_{T-k}\| \;/\; \|\partial L/\partial s_T\|$")
    fig.suptitle(
        f"Gradient flowing back through time: {results['task']['title']}, "
        f"{config['units']} units, loss at the last step\n{_recipe(config)}"
    )
    return _save(fig, path)


def _recipe(config):
    """A `DemoConfig` (as a dict) in one line: optimiser, budget and initialisation."""
    gates = (
        "chrono gate biases, $T_{max}$ = " + str(config["max_delay"])
        if config["gate_bias"] == "chrono"
        else "Keras's gate biases ($b_f$ = 1, $b_z$ = 0)"
    )
    return (
        f"Adam lr {config['learning_rate']:g}, global clip {config['clipnorm']:g}, "
        f"{config['train_steps']} steps of batch {config['batch_size']}; init: W glorot, "
        f"U orthogonal, b = 0; LSTM/GRU {gates}"
    )


def plot_sweep(rows, task, config, path):
    """The trained metric and the gradient's reach against the distance T, one line per cell.

    Args:
        rows: `sweep.sweep_rows`, one dict per (cell, T) with "cell", "seq_len", the metric
            (e.g. "mse"), "grad_reach_init" and "grad_reach_trained".
        task: `Task.describe()`: "title", "metric" ("accuracy" or "mse") and "baseline".
        config: the `DemoConfig` as a dict, for the title.
    """
    metric = task["metric"]
    fig = _figure(12, 4.6)
    ax_score, ax_reach = fig.subplots(1, 2)
    seq_lens = sorted({r["seq_len"] for r in rows})
    for cell in dict.fromkeys(r["cell"] for r in rows):
        name, color = CELL_STYLE.get(cell, (cell, None))
        mine = sorted((r for r in rows if r["cell"] == cell), key=lambda r: r["seq_len"])
        t = [r["seq_len"] for r in mine]
        ax_score.plot(t, [r[metric] for r in mine], color=color, marker="o", label=name)
        for stage, style in (("trained", "-"), ("init", "--")):
            ax_reach.plot(
                t,
                _positive([r[f"grad_reach_{stage}"] for r in mine]),
                color=color,
                ls=style,
                marker="o",
                ms=4,
                label=f"{name}, {'trained' if stage == 'trained' else 'random init'}",
            )
    what = "chance" if metric == "accuracy" else "predicting the mean"
    ax_score.axhline(task["baseline"], color="k", ls=":", label=f"{what}: {task['baseline']:.3g}")
    if metric == "accuracy":
        ax_score.set_ylim(0, 1.03)
    else:
        ax_score.set_yscale("log")
    ax_score.set_ylabel(f"{metric} on held-out sequences")
    ax_score.set_title(
        f"{metric} after training ({'higher' if metric == 'accuracy' else 'lower'} is better)"
    )
    ax_reach.set_yscale("log")
    ax_reach.set_ylabel(r"$\|\partial L/\partial s_1\| \;/\; \|\partial L/\partial s_T\|$")
    ax_reach.set_title("gradient reaching step 1 (s = c for the LSTM, else h)")
    for ax in (ax_score, ax_reach):
        ax.set_xscale("log")
        ax.set_xticks(seq_lens)
        ax.set_xticklabels([str(t) for t in seq_lens])
        ax.minorticks_off()
        ax.set_xlabel("T, steps in the sequence")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{task['title'][0].upper()}{task['title'][1:]}: {config['units']} units, the "
        f"same budget at every T\n{_recipe(config)}"
    )
    return _save(fig, path)


def plot_vanishing_exploding(results, path):
    """Demo experiments 2 and 3: measured vs sigma_1-predicted decay and growth; clipping."""
    cases, clip = results["vanishing_exploding"], results["clipping"]
    fig = _figure(15, 4.4)
    ax_norm, ax_rate, ax_clip = fig.subplots(1, 3)
    drawn = set()
    for c in cases:
        color = CASE_COLOR[c["case"]]
        if (c["case"], "predicted") not in drawn:
            drawn.add((c["case"], "predicted"))
            ax_norm.plot(
                _back(c["predicted"]),
                color=color,
                lw=7,
                alpha=0.25,
                label=f"predicted $\\sigma_1^k$, $\\sigma_1$={c['sigma1']:g}",
            )
            ax_rate.axhline(
                c["sigma1"], color=color, lw=7, alpha=0.25, label=f"$\\sigma_1$ = {c['sigma1']:g}"
            )
        style = "-" if c["activation"] == "linear" else "--"
        label = f"{c['case']}, {c['activation']}"
        ax_norm.plot(_back(c["norms"]), color=color, ls=style, label=f"measured, {label}")
        ax_rate.plot(
            np.arange(1, len(c["rates"]) + 1), c["rates"], color=color, ls=style, label=label
        )
    ax_norm.set_yscale("log")
    ax_norm.set_title(r"$\|\partial L/\partial h_{T-k}\| \;/\; \|\partial L/\partial h_T\|$")
    ax_rate.set_title(
        r"per-step growth $\|\partial L/\partial h_{T-k}\| \;/\; "
        r"\|\partial L/\partial h_{T-k+1}\|$"
    )
    for ax in (ax_norm, ax_rate):
        ax.set_xlabel("k, steps back from the loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    _plot_clipping(ax_clip, clip)
    fig.suptitle(
        r"Vanilla RNN, recurrent matrix scaled to largest singular value $\sigma_1$"
        "; solid: linear (identity) activation, dashed: tanh"
    )
    return _save(fig, path)


def _plot_clipping(ax, clip):
    for run, color in (("unclipped", "C3"), ("clipped", "C1")):
        steps = np.arange(1, len(clip[run]["grad_norm"]) + 1)
        ax.plot(
            steps,
            _positive(clip[run]["grad_norm"]),
            color=color,
            marker="o",
            ms=3,
            label=f"{run}: gradient norm before clipping",
        )
    steps = np.arange(1, len(clip["clipped"]["update_norm"]) + 1)
    ax.plot(
        steps,
        _positive(clip["clipped"]["update_norm"]),
        color="C2",
        marker="s",
        ms=3,
        label="clipped: applied update ||dw|| / lr",
    )
    ax.axhline(clip["clipnorm"], color="k", ls=":", label=f"clip value {clip['clipnorm']:g}")
    unclipped = clip["unclipped"]["loss"]
    if len(unclipped) and not np.isfinite(unclipped[-1]):
        ax.annotate(
            f"unclipped loss non-finite at step {len(unclipped)}",
            xy=(0.02, 0.02),
            xycoords="axes fraction",
            fontsize=8,
            color="C3",
        )
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_title(
        f"exploding linear case ($\\sigma_1$={clip['sigma1']:g}), SGD, lr {clip['learning_rate']:g}"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def plot_gradient_flow(trained, init, path, loss_at="all"):
    """A language model's ||dL/ds_t|| against t, one panel per recurrent layer.

    Args:
        trained, init: dict layer name -> state name -> (T,) norms (init may be None).
        loss_at: "all" or "last", for the title.
    """
    fig = _figure(5.5 * len(trained) + 0.5, 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(trained), sharey=True))
    for ax, (layer, states) in zip(axes, trained.items()):
        for j, (state, norms) in enumerate(states.items()):
            t = np.arange(1, len(norms) + 1)
            ax.plot(t, _positive(norms), color=f"C{j}", label=f"${state}_t$, trained")
            if init is not None:
                ax.plot(
                    t,
                    _positive(init[layer][state]),
                    color=f"C{j}",
                    ls="--",
                    label=f"${state}_t$, random init",
                )
        ax.set_yscale("log")
        ax.set_title(layer)
        ax.set_xlabel("time step t")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(r"$\|\partial L/\partial s_t\|$")
    where = "every step" if loss_at == "all" else "the last step"
    fig.suptitle(f"Gradient of the next-token loss (at {where}) with respect to each state")
    return _save(fig, path)


def plot_gate_heatmaps(gates, tokens, path, title):
    """Gate activations over a sentence: one heat map (units x tokens) per gate.

    Args:
        gates: dict gate name -> (T, U) activations in [0, 1].
        tokens: T strings for the x axis.
    """
    fig = _figure(max(6.0, 0.22 * len(tokens) + 2.0), 1.9 * len(gates) + 1.2)
    axes = np.atleast_1d(fig.subplots(len(gates), 1, sharex=True))
    image = None
    for ax, (gate, values) in zip(axes, gates.items()):
        values = np.asarray(values)
        image = ax.imshow(
            values.T, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest"
        )
        ax.set_ylabel(f"{GATE_LABELS.get(gate, gate)}\nunit", fontsize=9)
    axes[-1].set_xticks(np.arange(len(tokens)))
    axes[-1].set_xticklabels(tokens, rotation=90, fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="activation")
    fig.suptitle(title)
    return _save(fig, path)


def plot_saturation(summary, path):
    """Stacked bars per layer and gate: fraction of activations < low, between, > high."""
    rows = [(f"{layer} {gate}", s) for layer, gates in summary.items() for gate, s in gates.items()]
    fig = _figure(7, 0.45 * len(rows) + 1.4)
    ax = fig.subplots()
    y = np.arange(len(rows))
    below = np.array([s["below"] for _, s in rows])
    above = np.array([s["above"] for _, s in rows])
    low, high = rows[0][1]["low"], rows[0][1]["high"]
    ax.barh(y, below, color="C0", label=f"< {low:g} (closed)")
    ax.barh(y, 1 - below - above, left=below, color="0.8", label="in between")
    ax.barh(y, above, left=1 - above, color="C1", label=f"> {high:g} (open)")
    ax.set_yticks(y)
    ax.set_yticklabels([name for name, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of activations")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.suptitle("Gate saturation")
    return _save(fig, path)


def plot_training_curves(log, grad_norms, path, clipnorm=None):
    """Loss and perplexity per epoch (train and validation), gradient norm before clipping.

    Args:
        log: dict column -> (E,) array from `read_training_log` ("epoch", "loss", ...).
        grad_norms: dict from `read_grad_norms`, or None (panel says how to get one).
        clipnorm: the clip value, drawn on the gradient-norm panel.
    """
    fig = _figure(14, 4.0)
    ax_loss, ax_ppl, ax_grad = fig.subplots(1, 3)
    epochs = np.asarray(log["epoch"]) + 1
    for ax, key in ((ax_loss, "loss"), (ax_ppl, "perplexity")):
        for prefix, style, name in (("", "-o", "train"), ("val_", "-s", "validation")):
            if prefix + key in log and np.any(np.isfinite(log[prefix + key])):
                ax.plot(epochs, log[prefix + key], style, ms=4, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    _log_if_wide(ax_ppl, np.concatenate([log.get("perplexity", []), log.get("val_perplexity", [])]))
    ax_grad.set_title("global gradient norm before clipping")
    ax_grad.set_xlabel("epoch")
    ax_grad.xaxis.set_major_locator(MaxNLocator(integer=True))
    if grad_norms is None:
        ax_grad.text(
            0.5,
            0.5,
            "no grad_norm.csv in the run:\ntrain with GradientNormLogger",
            ha="center",
            va="center",
            transform=ax_grad.transAxes,
        )
    else:
        e = np.asarray(grad_norms["epoch"]) + 1
        ax_grad.plot(e, grad_norms["grad_norm"], "-o", ms=4, color="C2", label="mean")
        if "grad_norm_max" in grad_norms:
            ax_grad.plot(e, grad_norms["grad_norm_max"], ":", color="C2", label="max")
        if clipnorm is not None:
            ax_grad.axhline(clipnorm, color="k", ls="--", label=f"clipnorm {clipnorm:g}")
        _log_if_wide(ax_grad, np.concatenate([grad_norms["grad_norm"], [clipnorm or np.nan]]))
        ax_grad.grid(True, alpha=0.3)
        ax_grad.legend(fontsize=8)
    fig.suptitle("Training curves")
    return _save(fig, path)
