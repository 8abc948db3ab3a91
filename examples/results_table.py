"""Writes docs/results/table.md (summarised in RESULTS.md): test perplexity on Shakespeare
(word level), same budget and seed per row.

    .venv/bin/python examples/results_table.py [--steps 300] [--epochs 3]

Each row trains into runs/results/ROW (resuming if interrupted) and reports the exact test
perplexity of its best checkpoint.
"""

import argparse
import dataclasses
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_gated as kg  # noqa: E402

ROWS = [
    (
        "2-layer LSTM, no dropout, untied",
        dict(cell="lstm", dropout=0.0, recurrent_dropout=0.0, embed_dropout=0.0, tie_weights=False),
    ),
    ("+ variational dropout", dict(cell="lstm", tie_weights=False)),
    ("+ weight tying", dict(cell="lstm", tie_weights=True)),
    ("GRU, dropout + tying", dict(cell="gru", tie_weights=True)),
    ("vanilla RNN, dropout + tying", dict(cell="rnn", tie_weights=True)),
    ("Keras built-in LSTM, dropout + tying", dict(cell="keras-lstm", tie_weights=True)),
    ("IndRNN, dropout + tying", dict(cell="indrnn", tie_weights=True)),
    ("layer-normalised GRU, dropout + tying", dict(cell="gru", layer_norm=True, tie_weights=True)),
    ("LSTM + zoneout 0.1, dropout + tying", dict(cell="lstm", zoneout=0.1, tie_weights=True)),
]


def update_rows(path, trained):
    """Rewrites the table at `path` with the `trained` {label: line} rows: each replaces its
    label's line, or joins the table in `ROWS` order; every other line stays as it was."""
    with open(path, encoding="utf-8") as f:
        text = f.read().split("\n")
    rows = [k for k, line in enumerate(text) if line.startswith("| ") and " | " in line][1:]
    table = {text[k].split(" | ")[0][2:]: text[k] for k in rows}  # past the header
    table.update(trained)
    order = [label for label, _ in ROWS if label in table]
    order += [label for label in table if label not in order]
    text[rows[0] : rows[-1] + 1] = [table[label] for label in order]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(text))


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=300, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--units", type=int, default=200, help="embedding = hidden width")
    parser.add_argument("--out", default="docs/results/table.md")
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="train only the rows whose label contains TEXT; the other rows "
        "keep their lines from --out (same command and budget)",
    )
    args = parser.parse_args()
    base = dict(
        corpus="shakespeare",
        level="word",
        max_vocab=10_000,
        layers=2,
        embed_dim=args.units,
        units=args.units,
        batch_size=32,
        seq_len=35,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        seed=0,
    )
    lines = {}
    for label, change in ROWS:
        if args.only and args.only not in label:
            continue
        config = kg.TrainConfig(**{**base, **change})
        run = os.path.join(
            "runs", "results", label.split(",")[0].replace(" ", "_").replace("+", "plus")
        )
        start = time.time()
        results = kg.train(config, run, verbose=2)
        minutes = (time.time() - start) / 60
        print(f"{label}: test perplexity {results['test_perplexity']:.1f} ({minutes:.1f} min)")
        lines[label] = (
            f"| {label} | {results['valid_perplexity']:.1f} | "
            f"{results['test_perplexity']:.1f} | {minutes:.1f} |"
        )
    if args.only:
        update_rows(args.out, lines)
        return
    shared = {
        k: v
        for k, v in dataclasses.asdict(kg.TrainConfig(**base)).items()
        if k not in ("cell", "dropout", "recurrent_dropout", "embed_dropout", "tie_weights")
    }
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# Results: word-level Shakespeare\n\n")
        f.write(
            f"Command: `.venv/bin/python examples/results_table.py --steps {args.steps} "
            f"--epochs {args.epochs} --units {args.units}`\n\n"
        )
        f.write(
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
            f"Shared settings: `{shared}`. Dropout rows use the TrainConfig defaults "
            f"(dropout {kg.TrainConfig.dropout}, recurrent {kg.TrainConfig.recurrent_dropout}, "
            f"embedding {kg.TrainConfig.embed_dropout}). Perplexity is exact over the whole "
            "split (exp of total NLL / predicted tokens); splits are whole plays.\n\n"
        )
        f.write("| model | valid ppl | test ppl | minutes |\n|---|---|---|---|\n")
        f.write("\n".join(lines[label] for label, _ in ROWS) + "\n")


if __name__ == "__main__":
    main()
