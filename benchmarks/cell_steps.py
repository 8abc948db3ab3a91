"""The training step of each row of RESULTS.md's one-budget table, timed side by side: the
minutes column's rows were trained at different times, some on a shared machine, so this
gives each row's step time relative to the LSTM row's, from one interleaved run.

    .venv/bin/python -m benchmarks.cell_steps            # ~3 min on 2 cores

Each row's model is `training.build_model(TrainConfig(**shared, **row))` exactly as
`examples/results_table.py` trains it (word-level, V = 10,000, E = U = 128, 2 layers, B = 32,
T = 35, XLA-compiled step where `keras-gated train` compiles one), timed by
`train_on_batch` on one random batch of token ids in interleaved rounds (`timing.interleave`).
"""

import argparse
import importlib.util
import os
import sys

import numpy as np

from benchmarks import machine, report
from benchmarks.timing import interleave, ratio_per_round, summary

ROUNDS, WARMUP, REPEAT = 5, 2, 3
VOCAB = 10_000
TABLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "results_table.py"
)


def table_rows():
    """(ROWS, shared settings) of examples/results_table.py at its documented command."""
    spec = importlib.util.spec_from_file_location("results_table", TABLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shared = dict(
        corpus="shakespeare",
        level="word",
        max_vocab=VOCAB,
        layers=2,
        embed_dim=128,
        units=128,
        batch_size=32,
        seq_len=35,
        epochs=3,
        steps_per_epoch=600,
        seed=0,
    )
    return module.ROWS, shared


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cell_steps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", help="also write the section to this file")
    options = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras_gated as kg
    from keras_gated.training.build import build_model

    rows, shared = table_rows()
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (shared["batch_size"], shared["seq_len"])).astype("int32")
    y = rng.integers(0, VOCAB, x.shape).astype("int32")
    systems = {}
    for label, change in rows:
        model = build_model(kg.TrainConfig(**{**shared, **change}), VOCAB)
        systems[label] = lambda m=model: m.train_on_batch(x, y)
    before = machine.load_average()
    times = interleave(systems, ROUNDS, WARMUP, repeat=REPEAT)
    reference = rows[2][0]  # "+ weight tying": the LSTM with dropout and tying
    lines = [
        (
            label,
            report._ms(summary(times[label]).median),
            report._ratio(ratio_per_round(times[label], times[reference])),
        )
        for label, _ in rows
    ]
    text = (
        "\n".join(
            [
                "### Step times of the one-budget table's rows (benchmarks/cell_steps.py)",
                "",
                f"`python -m benchmarks.cell_steps` on {machine.cpu_model()}, {os.cpu_count()} logical "
                f"cores; one training step (`train_on_batch`, B={shared['batch_size']}, "
                f"T={shared['seq_len']}, V={VOCAB}, E=U=128) of each row's model as "
                f"`keras-gated train` builds it; {ROUNDS} interleaved rounds x {REPEAT} steps after "
                f"{WARMUP} warm-up; load average before {report._load(before)}, after "
                f"{report._load(machine.load_average())}.",
                "",
                report._table(("row", "ms per step", f"row / {reference!r}"), lines),
            ]
        )
        + "\n"
    )
    report.emit(text, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
