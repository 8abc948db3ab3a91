"""GRU first-epoch validation anomaly: one-factor ablation (docs/results/gru_anomaly.md).

    .venv/bin/python examples/gru_anomaly.py [--steps 600] [--rows baseline,no-carry] [--seeds 0,1]
    .venv/bin/python examples/gru_anomaly.py --probe runs/gru_anomaly/baseline-s0
    .venv/bin/python examples/gru_anomaly.py --table      # the CSV's rows as markdown

Each row is the 2-layer GRU language model of docs/results/table.md (word-level Shakespeare, E = U = 128,
TrainConfig defaults otherwise) trained for one epoch of `--steps` windows by `keras_gated.train`,
with one factor changed from the baseline. After training the script measures, on the final
weights of the stateful training model:

    valid ppl        `train`'s own: the best (only) checkpoint, each stream from a zero state
    valid ppl, carried  the same weights, each validation stream started from the state the
                     training streams ended in
    sat train        fraction of the B x U units of both layers with |h| > 0.99 in that state
    sat valid        the same at the end of the validation pass from a zero state
    z > 0.99         fraction of units whose update gate z (the weight of h_{t-1}, GRU eq. (4))
                     exceeds 0.99 on average over the first 20 validation windows from zero

Rows append to a CSV (default docs/results/gru_anomaly.csv); the markdown table is printed.
A carried-state row also saves that state (carried_states.npz in its run directory), which
`--probe RUN` reads to locate the dependence: validation perplexity from that state, from its
mean over the streams, with the streams permuted, from one layer's part only; sign agreement
between the zero-start and the carried-start runs; mean update gate z on each path.
Rows with a `b_z` set the update-gate bias of both layers before training: b_z^x = b_z and
b_z^h = 0 (the cell's `reset_after` bias layout, `cells/gru.py`); the model is built by
`training.build.build_model` as usual and only its bias is changed (a hook around it below).
"""

import argparse
import contextlib
import csv
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_gated as kg  # noqa: E402
from keras_gated.cells.gates import gate_slice  # noqa: E402
from keras_gated.models.language_model import inference_fn  # noqa: E402
from keras_gated.training import trainer  # noqa: E402
from keras_gated.training.build import stateless_copy  # noqa: E402
from keras_gated.training.data import load_split_ids  # noqa: E402
from keras_gated.training.metrics import token_nll  # noqa: E402

BASE = dict(
    cell="gru",
    corpus="shakespeare",
    level="word",
    max_vocab=10_000,
    layers=2,
    embed_dim=128,
    units=128,
    batch_size=32,
    seq_len=35,
    epochs=1,
)
SATURATED = 0.99  # |h| above this counts as saturated (tanh's range is (-1, 1))
LATCHED = 0.99  # mean z above this: the unit keeps ~99% of h_{t-1} each step

# name -> (label, TrainConfig changes, update-gate bias or None)
ROWS = {
    "baseline": ("TrainConfig defaults (dropout 0.3/0.2/0.1, carry, lr 3e-3)", {}, None),
    "no-carry": ("carry_state false", {"carry_state": False}, None),
    "no-dropout": ("dropout 0 (between layers)", {"dropout": 0.0}, None),
    "no-recurrent-dropout": ("recurrent_dropout 0", {"recurrent_dropout": 0.0}, None),
    "no-embed-dropout": ("embed_dropout 0", {"embed_dropout": 0.0}, None),
    "lr-1e-3": ("learning_rate 1e-3", {"learning_rate": 1e-3}, None),
    "bz-minus1": ("update-gate bias b_z = -1 (z starts at 0.27)", {}, -1.0),
    "bz-plus1": ("update-gate bias b_z = +1 (z starts at 0.73)", {}, 1.0),
}
FIELDS = (
    "row",
    "seed",
    "steps",
    "valid_ppl",
    "valid_ppl_carried",
    "test_ppl",
    "sat_train",
    "sat_valid",
    "z_latched",
    "train_ppl",
    "minutes",
)


@contextlib.contextmanager
def captured_model(b_z):
    """Yields a dict that receives the model `train` builds ("model") and the carried states
    just before each reset ("states_before_reset", the last one: the end of training)."""
    seen, build = {}, trainer.build_model

    def hooked(config, vocab_size, stateful=True, batch_size=None):
        model = build(config, vocab_size, stateful=stateful, batch_size=batch_size)  # built
        if b_z is not None:
            for layer in model.rnn_layers:
                set_update_gate_bias(layer.cell, b_z)
        reset = model.reset_states

        def snapshot_then_reset():
            if tf.executing_eagerly():  # not while `fit` traces the model's build
                seen["states_before_reset"] = [
                    keras.ops.convert_to_numpy(s)
                    for layer in model.rnn_layers
                    for s in (layer.states or [])
                ]
            reset()

        model.reset_states = snapshot_then_reset
        seen["model"] = model
        return model

    trainer.build_model = hooked
    try:
        yield seen
    finally:
        trainer.build_model = build


def set_update_gate_bias(cell, b_z):
    """b_z^x = b_z, b_z^h = 0 (reset_after layout (2, 3U)), or b_z ((3U,) layout)."""
    bias = keras.ops.convert_to_numpy(cell.bias).copy()
    z = gate_slice("z", cell.gates, cell.units)
    if bias.ndim == 2:
        bias[0, z], bias[1, z] = b_z, 0.0
    else:
        bias[z] = b_z
    cell.bias.assign(bias)


def window_nll(model, ids, batch_size, seq_len, states=None):
    """(per-window mean NLL in nats (K,), final states) over `ids` as `batch_size` carried
    rows from `states` (None: zeros); every window holds the same number of targets but
    possibly the last."""
    ids = np.asarray(ids, dtype=np.int32)
    rows = len(ids) // batch_size
    stream = ids[: rows * batch_size].reshape(batch_size, rows)
    step = inference_fn(model)
    states = model.initial_states(batch_size) if states is None else states
    nlls, counts = [], []
    for start in range(0, rows - 1, seq_len):
        x = stream[:, start : min(start + seq_len, rows - 1)]
        y = stream[:, start + 1 : start + 1 + x.shape[1]]
        logits, states = step(x, states)
        nlls.append(token_nll(logits, y).mean())
        counts.append(y.size)
    return np.array(nlls), np.array(counts), [keras.ops.convert_to_numpy(s) for s in states]


def ppl(nlls, counts):
    return math.exp(np.sum(nlls * counts) / np.sum(counts))


def mean_update_gate(model, ids, batch_size, seq_len, windows=20, states=None):
    """Per-unit mean z over the first `windows` windows of `ids` from `states` (None: zeros),
    every layer concatenated: (sum U_l,)."""
    ids = np.asarray(ids, dtype=np.int32)
    rows = len(ids) // batch_size
    tokens = ids[: rows * batch_size].reshape(batch_size, rows)[:, : windows * seq_len]
    x = np.asarray(model.embedding(tokens))
    means = []
    for k, layer in enumerate(model.rnn_layers):
        q = layer.gate_activations(x, None if states is None else [states[k]])
        means.append(q["z"].mean(axis=(0, 1)))
        x = q["h"]
    return np.concatenate(means)


def saturation(states):
    return float(np.mean(np.abs(np.concatenate([s.ravel() for s in states])) > SATURATED))


def run_row(name, seed, steps, out_root, xla):
    label, changes, b_z = ROWS[name]
    config = kg.TrainConfig(
        **{**BASE, "steps_per_epoch": steps, "seed": seed, "xla": xla, **changes}
    )
    run = os.path.join(out_root, f"{name}-s{seed}")
    start = time.time()
    with captured_model(b_z) as seen:
        results = kg.train(config, run, overwrite=True, verbose=0)
    minutes = (time.time() - start) / 60
    trained = seen["model"]
    twin = stateless_copy(trained)
    _, ids, _ = load_split_ids(config)
    B, T = config.batch_size, config.seq_len
    *_, end_valid = window_nll(twin, ids["valid"], B, T)
    row = {
        "row": name,
        "seed": seed,
        "steps": steps,
        "valid_ppl": results["valid_perplexity"],
        "test_ppl": results["test_perplexity"],
        "valid_ppl_carried": float("nan"),
        "sat_train": float("nan"),
        "sat_valid": saturation(end_valid),
        "minutes": minutes,
        "z_latched": float(np.mean(mean_update_gate(twin, ids["valid"], B, T) > LATCHED)),
    }
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        row["train_ppl"] = float(list(csv.DictReader(f))[-1]["perplexity"])
    carried = seen.get("states_before_reset")
    if config.carry_state and carried:
        np.savez(os.path.join(run, "carried_states.npz"), *carried)  # for further analysis
        row["valid_ppl_carried"] = ppl(*window_nll(twin, ids["valid"], B, T, carried)[:2])
        row["sat_train"] = saturation(carried)
    print(
        f"{name} seed {seed} ({label}): "
        + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)),
        flush=True,
    )
    return row


def probe(run, batch_size=32, windows=20):
    """Prints where a carried-state run's dependence on its training state lives."""
    model, tokenizer, config = kg.load_run(run)
    _, ids, _ = load_split_ids(config, tokenizer)
    with np.load(os.path.join(run, "carried_states.npz")) as f:
        carried = [f[f"arr_{k}"] for k in range(len(f.files))]
    B, T = batch_size, config.seq_len
    for k, h in enumerate(carried):
        same_sign = np.all(h > SATURATED, 0) | np.all(h < -SATURATED, 0)
        print(
            f"layer {k + 1} carried state: |h| > {SATURATED} {np.mean(np.abs(h) > SATURATED):.0%}"
            f"; units saturated with one sign in all {B} streams {same_sign.mean():.0%}; "
            f"std over streams {h.std(0).mean():.3f}"
        )
    n0, c0, end0 = window_nll(model, ids["valid"], B, T)
    nc, cc, endc = window_nll(model, ids["valid"], B, T, carried)
    starts = {
        "zero": None,
        "training's carried state": carried,
        "its mean over the streams": [np.repeat(h.mean(0, keepdims=True), B, 0) for h in carried],
        "its streams permuted (rolled by one)": [np.roll(h, 1, axis=0) for h in carried],
        "its sign pattern: sign(mean over streams)": [
            np.repeat(np.sign(h.mean(0, keepdims=True)), B, 0) for h in carried
        ],
    }
    for k in range(len(carried)):
        starts[f"layer {k + 1}'s part only, zeros elsewhere"] = [
            h if j == k else np.zeros_like(h) for j, h in enumerate(carried)
        ]
    print("| validation from | valid ppl |\n|---|---|")
    for label, states in starts.items():
        nlls, counts = (
            (n0, c0) if states is None else window_nll(model, ids["valid"], B, T, states)[:2]
        )
        print(f"| {label} | {ppl(nlls, counts):,.1f} |")
    K = len(n0)
    print("| windows | NLL from zero | NLL from carried |\n|---|---|---|")
    for lo, hi in ((0, 1), (1, 5), (5, 20), (20, 50), (50, K)):
        print(f"| {lo + 1}-{hi} | {n0[lo:hi].mean():.2f} | {nc[lo:hi].mean():.2f} |")
    for k in range(len(carried)):
        agree = np.mean(np.sign(end0[k]) == np.sign(endc[k]))
        print(
            f"layer {k + 1} at the end of validation: sign agreement zero-start vs "
            f"carried-start {agree:.0%}; |h| > {SATURATED}: zero-start "
            f"{np.mean(np.abs(end0[k]) > SATURATED):.0%}, carried-start "
            f"{np.mean(np.abs(endc[k]) > SATURATED):.0%}"
        )
    z0 = mean_update_gate(model, ids["valid"], B, T, windows)
    zc = mean_update_gate(model, ids["valid"], B, T, windows, carried)
    for k, U in enumerate(model.rnn_layers):
        part = slice(k * U.units, (k + 1) * U.units)
        print(
            f"layer {k + 1} mean z over {windows} windows: zero-start {z0[part].mean():.2f}, "
            f"carried-start {zc[part].mean():.2f}"
        )


def markdown(rows):
    lines = [
        "| row | seed | valid ppl | valid ppl, carried state | test ppl | train ppl "
        "(epoch mean) | sat. train state | sat. valid end | z > 0.99 | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v != v else f"{v:,.1f}"  # noqa: E731
    pct = lambda v: "-" if v != v else f"{100 * v:.0f}%"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {ROWS[r['row']][0]} | {int(r['seed'])} | {fmt(r['valid_ppl'])} | "
            f"{fmt(r['valid_ppl_carried'])} | {fmt(r['test_ppl'])} | "
            f"{fmt(r['train_ppl'])} | {pct(r['sat_train'])} | {pct(r['sat_valid'])} | "
            f"{pct(r['z_latched'])} | {r['minutes']:.1f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="training windows (one epoch)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {list(ROWS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--xla", default="true", choices=("true", "false"))
    parser.add_argument("--csv", default="docs/results/gru_anomaly.csv", help="rows append here")
    parser.add_argument("--runs", default="runs/gru_anomaly")
    parser.add_argument(
        "--probe",
        metavar="RUN",
        help="probe a carried-state row's run directory instead of training",
    )
    parser.add_argument("--table", action="store_true", help="print the CSV as markdown")
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe)
    if args.table:
        with open(args.csv, encoding="utf-8") as f:
            rows = [
                {k: v if k == "row" else float(v) for k, v in r.items()} for r in csv.DictReader(f)
            ]
        return print(markdown(rows))
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.rows.split(","):
            rows.append(run_row(name, seed, args.steps, args.runs, args.xla == "true"))
            new = not os.path.exists(args.csv)
            with open(args.csv, "a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow({k: rows[-1][k] for k in FIELDS})
    print(markdown(rows))


if __name__ == "__main__":
    main()
