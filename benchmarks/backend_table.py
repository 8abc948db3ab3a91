"""A user's tagger on every Keras backend: training step and predict, our layers against
Keras's built-in ones (and on torch against PyTorch's own nn.LSTM/nn.GRU), one table.

    .venv/bin/python -m benchmarks.backend_table                  # ~12 min on 2 cores
    .venv/bin/python -m benchmarks.backend_table --quick          # U=32 only, 2 rounds
    .venv/bin/python -m benchmarks.backend_table --backends torch --out section.md

The model (`tagger_layers`), built twice from one definition, `rnn` = `keras_gated` (ours) or
`keras.layers` (built-in, `use_cudnn` left at its default), the built-in model's initial
weights copied into ours (`user_models.build_pair`, which also checks both compute the same
function):
    Input((T, D)) floats -> rnn.LSTM/GRU(U, return_sequences=True) x 2 -> Dense(TAGS)
    B=32, T=50, D=64, TAGS=16, U in 32, 128, 650; `model.compile(optimizer="adam",
    loss="mse")` with no `jit_compile` argument (Keras's "auto": XLA off on TensorFlow's
    CPU, on for JAX; torch runs eagerly); timed by `train_on_batch` and `predict_on_batch`
    on one fixed random batch.
On torch one more system: `torch.nn.LSTM/GRU(D, U, num_layers=2, batch_first=True)` ->
`nn.Linear(U, TAGS)`, `torch.optim.Adam` (lr 1e-3, Keras's default), mse; training =
zero_grad + forward + backward + step, predict = a `torch.no_grad()` forward to numpy.
On every backend a floor model (`floors.py`): the same tagger written in the backend's own
library (JAX `lax.scan` under `jax.jit`; TensorFlow `tf.scan` under XLA), or on torch
`nn.LSTM/GRU` inside a Keras model, to bound what a Keras layer can reach there; on JAX also
that `lax.scan` as a Keras layer under Keras's trainer.

Each backend runs in a subprocess of its own (`--child`; the backend is fixed when Keras is
imported) that writes JSON; this process renders the table. Within a child, every (cell, U)
is timed by `timing.interleave`: each round runs each system's training step and predict in
turn (`SCHEDULE` sets rounds, warm-up calls and calls per sample for each U), and a ratio is
the median (min-max) of the per-round ratios ours / other.
"""

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import floors, machine, report
from benchmarks.timing import interleave, ratio_per_round, summary

BACKENDS = ("tensorflow", "jax", "torch")
CELLS = ("lstm", "gru")
BATCH, STEPS, FEATURES, TAGS = 32, 50, 64, 16  # B, T, D, Dense outputs
SCHEDULE = {  # U -> (timed rounds, warm-up calls per system, calls per timed sample)
    32: (9, 3, 5),
    128: (7, 2, 2),
    650: (3, 1, 1),  # ~1 s per training step on 2 cores: few rounds
}
QUICK_SCHEDULE = {32: (2, 1, 1)}
TRAIN_TARGET = 0.8  # ours / built-in, training step, every backend
PREDICT_TARGET = 0.9  # ours / built-in, predict_on_batch
TORCH_TRAIN_TARGET = 1.2  # ours / torch.nn, training step
SEED = 0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the children run here
OURS_PATH = {  # what our layers run on each backend (see keras_gated/layers/)
    "tensorflow": "fused loops XLA-compiled inside the un-jitted step (fused_tensorflow.py)",
    "jax": "fused `lax.scan` with a custom VJP, whole step under XLA (fused_jax.py)",
    "torch": "ATen's `torch.lstm`/`torch.gru` for these plain layers (aten.py), eager",
}


def tagger_layers(cell, units):
    """`layers(rnn_module)` -> Input((T, D)), 2 x cell(units, return_sequences), Dense(TAGS)."""
    import keras

    def layers(rnn):
        make = getattr(rnn, cell.upper())
        return [
            keras.Input((STEPS, FEATURES)),
            make(units, return_sequences=True),
            make(units, return_sequences=True),
            keras.layers.Dense(TAGS),
        ]

    return layers


def batch():
    """One fixed random batch: x (B, T, D), y (B, T, TAGS), float32."""
    rng = np.random.default_rng(SEED)
    return (
        rng.standard_normal((BATCH, STEPS, FEATURES), np.float32),
        rng.standard_normal((BATCH, STEPS, TAGS), np.float32),
    )


def build_models(cell, units):
    """({"ours": model, "keras": model}, max |ours - built-in| of their outputs): compiled,
    same weights (`user_models.build_pair`; its unused "floor" model is dropped)."""
    import keras

    from benchmarks.user_models import Row, build_pair

    row = Row(
        f"tagger-{cell}-{units}",
        "",
        tagger_layers(cell, units),
        batch,
        "adam",
        "mse",
        bound="floor",
    )
    guard = contextlib.nullcontext()
    if keras.backend.backend() == "torch":  # build_pair's np.asarray needs outputs without grad
        import torch

        guard = torch.no_grad()
    with guard:
        models, diff = build_pair(row)
    return {name: models[name] for name in ("ours", "keras")}, diff


def torch_systems(cell, units, x, y):
    """{"nn-train": step, "nn-predict": forward} for PyTorch's own 2-layer tagger."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    rnn = getattr(nn, cell.upper())(FEATURES, units, num_layers=2, batch_first=True)
    linear = nn.Linear(units, TAGS)
    params = [*rnn.parameters(), *linear.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def train():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(linear(rnn(x)[0]), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def predict():
        with torch.no_grad():
            return linear(rnn(x)[0]).numpy()

    return {"nn-train": train, "nn-predict": predict}


def measure(cell, units, schedule, progress=None):
    """Times one (cell, U) on this process's backend; returns a JSON-ready dict."""
    import gc

    import keras

    rounds, warmup, repeat = schedule
    models, diff = build_models(cell, units)
    x, y = batch()
    systems = {}
    for name in ("ours", "keras"):
        systems[f"{name}-train"] = lambda m=models[name]: m.train_on_batch(x, y)
    for name in ("ours", "keras"):
        systems[f"{name}-predict"] = lambda m=models[name]: m.predict_on_batch(x)
    if keras.backend.backend() == "torch":
        systems.update(torch_systems(cell, units, x, y))
    systems.update(floors.SYSTEMS[keras.backend.backend()](cell, units, x, y))
    times = interleave(systems, rounds, warmup, repeat=repeat, progress=progress)
    result = {
        "cell": cell,
        "units": units,
        "rounds": rounds,
        "warmup": warmup,
        "repeat": repeat,
        "times": times,
        "diff": diff,
        "xla": {name: bool(model.jit_compile) for name, model in models.items()},
    }
    del models, systems
    keras.backend.clear_session()
    gc.collect()
    return result


def child(options):
    """Runs every (cell, U) on the backend KERAS_BACKEND chose; writes JSON to options.json."""
    import keras

    backend = keras.backend.backend()
    library = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    versions = {"keras": keras.__version__, library: __import__(library).__version__}
    schedule = QUICK_SCHEDULE if options.quick else SCHEDULE
    configs = []
    for cell in options.cells:
        for units in options.units or schedule:
            log(f"{backend} {cell.upper()} U={units}")
            configs.append(measure(cell, units, schedule.get(units, SCHEDULE[650]), progress=log))
    threads = {}
    if backend == "torch":
        import torch

        threads["torch"] = torch.get_num_threads()
    with open(options.json, "w") as f:
        json.dump(
            {"backend": backend, "versions": versions, "threads": threads, "configs": configs},
            f,
            indent=1,
        )
    return 0


# -- the parent: one subprocess per backend, then the table ---------------------------------
def run_backend(backend, argv):
    """The child's JSON for `backend`, or {"backend", "failed": last lines of its stderr}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "times.json")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.backend_table", "--child", "--json", path, *argv],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for line in done.stderr.splitlines():
            if line.startswith(f"{backend} ") or line.startswith("round "):
                log(line)
        if done.returncode:
            return {"backend": backend, "failed": "\n".join(done.stderr.splitlines()[-15:])}
        with open(path) as f:
            return json.load(f)


def _ratio_cell(ours, other):
    return report._ratio(ratio_per_round(ours, other))


def _ms(samples):
    return report._ms(summary(samples).median)


def table_rows(entry):
    """Markdown rows for one backend: per (cell, U) ours vs built-in, and on torch vs nn."""
    rows = []
    for config in entry["configs"]:
        t = config["times"]
        label = (
            entry["backend"],
            config["cell"].upper(),
            config["units"],
            f"{config['rounds']} x {config['repeat']}",
        )
        others = [("keras", f"keras.layers.{config['cell'].upper()}")]
        if "nn-train" in t:
            others.append(("nn", f"torch.nn.{config['cell'].upper()}"))
        if "floor-train" in t:
            others.append(("floor", floors.WHAT[entry["backend"]]))
        if "keraslayer-train" in t:
            others.append(("keraslayer", floors.KERAS_LAYER_WHAT))
        for other, what in others:
            rows.append(
                (
                    *label,
                    what,
                    _ms(t["ours-train"]),
                    _ms(t[f"{other}-train"]),
                    _ratio_cell(t["ours-train"], t[f"{other}-train"]),
                    _ms(t["ours-predict"]),
                    _ms(t[f"{other}-predict"]),
                    _ratio_cell(t["ours-predict"], t[f"{other}-predict"]),
                )
            )
    return rows


def target_rows(entries):
    """[(backend, target, met by, missed by)]: which (cell, U) meet each of the targets."""
    out = []
    for entry in entries:
        if "failed" in entry:
            out.append((entry["backend"], "all", "—", "the run failed"))
            continue
        checks = [
            ("train", "keras", TRAIN_TARGET, "training ours / built-in"),
            ("predict", "keras", PREDICT_TARGET, "predict ours / built-in"),
        ]
        if entry["backend"] == "torch":
            checks.append(("train", "nn", TORCH_TRAIN_TARGET, "training ours / torch.nn"))
        for task, other, limit, what in checks:
            met, missed = [], []
            for config in entry["configs"]:
                t = config["times"]
                r = ratio_per_round(t[f"ours-{task}"], t[f"{other}-{task}"]).median
                name = f"{config['cell'].upper()} {config['units']} ({r:.2f})"
                (met if r <= limit else missed).append(name)
            out.append(
                (
                    entry["backend"],
                    f"{what} <= {limit}",
                    ", ".join(met) or "none",
                    ", ".join(missed) or "none",
                )
            )
    return out


def markdown(entries, command, load, wall):
    ok = [e for e in entries if "failed" not in e]
    rows = [row for entry in ok for row in table_rows(entry)]
    settings = []
    for entry in ok:
        xla = sorted({v for c in entry["configs"] for v in c["xla"].values()})
        versions = ", ".join(f"{k} {v}" for k, v in entry["versions"].items())
        threads = "".join(f"; {k} threads {v}" for k, v in entry["threads"].items())
        settings.append(
            f"- {entry['backend']}: {versions}; `model.jit_compile` {xla}{threads}; "
            f"ours: {OURS_PATH[entry['backend']]}. Forward check on the same "
            "weights, max |ours − built-in|: "
            + ", ".join(
                f"{c['cell'].upper()} {c['units']} {c['diff']:.1e}" for c in entry["configs"]
            )
            + "."
        )
    lines = [
        "## Backends: a user's tagger, training and predict (benchmarks/backend_table.py)",
        "",
        f"Generated by `{command}` in {wall / 60:.1f} min on {machine.cpu_model()}, "
        f"{os.cpu_count()} logical cores "
        f"({', '.join(machine.cpu_flags()) or 'no vector extensions reported'}). "
        f"Model: Input(({STEPS}, {FEATURES})) floats → LSTM/GRU(U, return_sequences=True) × 2 "
        f'→ Dense({TAGS}); B={BATCH}, T={STEPS}; `model.compile(optimizer="adam", '
        "loss=\"mse\")` with Keras's default `jit_compile` (XLA off on TensorFlow's CPU, on "
        "for JAX, torch eager); `train_on_batch` and `predict_on_batch` on one fixed batch, "
        "the built-in model's weights copied into ours. One subprocess per backend; within "
        "it each (cell, U) is timed in interleaved rounds (every round runs ours and the "
        "other systems' training step and predict in turn); `rounds x calls` gives the "
        "rounds and the calls averaged per sample, after "
        + ", ".join(f"{w} warm-up call(s) at U={u}" for u, (_, w, _) in SCHEDULE.items())
        + ". ms: median of the rounds; ratio: median (min–max) of the per-round ratios "
        "ours / other (below 1: ours is faster).",
        "",
        *settings,
        *(
            f"- {e['backend']}: **failed**:\n\n```\n{e['failed']}\n```"
            for e in entries
            if "failed" in e
        ),
        f"- Load average (1, 5, 15 min) before {report._load(load['before'])}, after "
        f"{report._load(load['after'])}; other busy processes before: "
        f"{report._busy(load['busy_before'])}; after: {report._busy(load['busy_after'])}.",
        "",
        report._table(
            (
                "backend",
                "cell",
                "U",
                "rounds x calls",
                "other",
                "train ms ours",
                "train ms other",
                "train ours / other",
                "predict ms ours",
                "predict ms other",
                "predict ours / other",
            ),
            rows,
        ),
        "",
        f"Targets: training ≤ {TRAIN_TARGET}× the built-in on every backend, predict ≤ "
        f"{PREDICT_TARGET}×, and on torch training within {TORCH_TRAIN_TARGET}× of "
        "torch.nn (median ratios; cells listed as cell U (ratio)).",
        "",
        report._table(("backend", "target", "met", "missed"), target_rows(entries)),
    ]
    lines += report.shared_machine_warning(load)
    return "\n".join(lines) + "\n"


def busy():
    """`machine.busy_processes()` with each command on one line (`python -c` code spans
    several), so the report's list stays one markdown item."""
    return [(share, " ".join(command.split())) for share, command in machine.busy_processes()]


def log(line):
    print(line, file=sys.stderr, flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backend_table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help=f"U=32 only, {QUICK_SCHEDULE}")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated")
    parser.add_argument(
        "--units", default="", help=f"comma-separated U (the mode's: {tuple(SCHEDULE)})"
    )
    parser.add_argument("--out", help="also write the section to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    options.backends = [b for b in options.backends.split(",") if b]
    options.cells = [c for c in options.cells.split(",") if c]
    options.units = [int(u) for u in options.units.split(",") if u]
    if set(options.backends) - set(BACKENDS) or set(options.cells) - set(CELLS):
        parser.error(f"backends from {BACKENDS}, cells from {CELLS}")
    return options


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    options = parse_args(argv)
    if options.child:
        return child(options)
    start = time.perf_counter()
    load = {"before": machine.load_average(), "busy_before": busy()}
    child_argv = [a for a in argv if a not in ("--out", options.out)]
    entries = [run_backend(backend, child_argv) for backend in options.backends]
    load.update(after=machine.load_average(), busy_after=busy())
    command = shlex.join([os.path.relpath(sys.executable), "-m", "benchmarks.backend_table", *argv])
    text = markdown(entries, command, load, time.perf_counter() - start)
    report.emit(text, options.out)
    return 0 if all("failed" not in e for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
