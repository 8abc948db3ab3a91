"""The word-LM training step on another Keras backend (JAX), each model under `compile()`.

    KERAS_BACKEND=jax .venv/bin/python -m benchmarks.backend_training --units 650 --json t.json

`benchmarks.run` runs this in a subprocess (the backend is fixed when Keras is imported) and
reports it beside the TensorFlow table. The model and step are `benchmarks.training`'s (tied
embedding, `layers` recurrent layers, mean token cross-entropy, SGD), but every system is a
`keras.Model` compiled with Keras's defaults (`jit_compile="auto"`: XLA on JAX, so our
layers' loop is `jax.lax.scan`) and timed by `train_on_batch`.

Systems (`SYSTEMS`), per cell:
    ours         keras_gated.language_model, dropout `setup.dropout` on the embedding and between
                 layers, recurrent_dropout `setup.recurrent_dropout`
    keras        Keras's built-in LSTM/GRU, no dropout
    keras-drop   Keras's built-in with dropout and recurrent_dropout as `ours`
    floor        embedding + tied projection only (`training.floor_model`): the cost shared
                 by every system, which no recurrent layer can go below
On JAX the JSON also holds, per cell, XLA's time for the matmuls our recurrent layers run
(`benchmarks.recurrent_gemms`), measured in the same process.
"""

import argparse
import json
import sys

SYSTEMS = ("ours", "keras", "keras-drop", "floor")
DESCRIPTIONS = {
    "ours": "keras-gated, dropout {d}/{r} (embedding, between layers, recurrent)",
    "keras": "Keras built-in {cell}, no dropout",
    "keras-drop": "Keras built-in {cell}, dropout={d}, recurrent_dropout={r}",
    "floor": "embedding + tied projection only, no recurrent layer",
}


def build_system(name, setup, cell):
    """`train_on_batch` on the benchmark batch for one system of `SYSTEMS`."""
    import keras

    from benchmarks import training

    if name == "ours":
        model = training.ours_language_model(setup, cell)
    elif name == "keras":
        model = training.builtin_language_model(setup, cell)
    elif name == "keras-drop":
        model = training.builtin_language_model(setup, cell, setup.dropout, setup.recurrent_dropout)
    elif name == "floor":
        model = training.floor_model(setup)
    else:
        raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")
    model.compile(
        optimizer=keras.optimizers.SGD(setup.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = training.batch_data(setup)
    return lambda: model.train_on_batch(x, y)


def descriptions(setup, cells):
    """{system: {cell: what it is}} for the report."""
    return {
        name: {
            cell: DESCRIPTIONS[name].format(
                cell=cell.upper(), d=setup.dropout, r=setup.recurrent_dropout
            )
            for cell in cells
        }
        for name in SYSTEMS
    }


def measure(setup, cells, rounds, warmup, progress=None):
    """{cell: {system: [seconds per round]}} for every cell and system, interleaved."""
    from benchmarks.timing import interleave

    return {
        cell: interleave(
            {name: build_system(name, setup, cell) for name in SYSTEMS},
            rounds,
            warmup,
            progress=progress,
        )
        for cell in cells
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backend_training", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--json", required=True, help="where to write the times")
    parser.add_argument("--units", type=int, default=650, help="E = U (650)")
    parser.add_argument("--vocab", type=int, default=10_000, help="V (10000)")
    parser.add_argument("--layers", type=int, default=2, help="recurrent layers (2)")
    parser.add_argument("--batch", type=int, default=20, help="B (20)")
    parser.add_argument("--steps", type=int, default=35, help="T (35)")
    parser.add_argument("--cells", default="lstm,gru", help="comma-separated (lstm,gru)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (2)")
    options = parser.parse_args(argv)

    import keras

    from benchmarks.training import TrainSetup

    setup = TrainSetup(
        vocab=options.vocab,
        units=options.units,
        layers=options.layers,
        batch=options.batch,
        steps=options.steps,
    )
    cells = options.cells.split(",")
    times = measure(
        setup,
        cells,
        options.rounds,
        options.warmup,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    backend = keras.backend.backend()
    versions = {"keras": keras.__version__}
    result = {
        "backend": backend,
        "versions": versions,
        "setup": setup.label(),
        "times": times,
        "descriptions": descriptions(setup, cells),
    }
    if backend == "jax":
        import jax

        from benchmarks import recurrent_gemms

        versions["jax"] = jax.__version__
        result["recurrent_gemms"] = {cell: recurrent_gemms.measure(setup, cell) for cell in cells}
    with open(options.json, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
