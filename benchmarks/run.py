"""The benchmark command: training steps, inference and memory, written to BENCHMARKS.md.

    .venv/bin/python -m benchmarks.run                    # full: U=650 and U=200, ~15 min
    .venv/bin/python -m benchmarks.run --quick            # U=200, fewer rounds, a few minutes
    .venv/bin/python -m benchmarks.run --quick --vocab 50 --units 8 --rounds 1   # smoke test

Run it on a quiet machine: every number is a wall-clock time, and the report lists the
other processes that were busy before and after.
"""

import argparse
import dataclasses
import gc
import json
import os
import shlex
import sys
import tempfile
import time

FULL = {"units": "650,200", "rounds": 7, "warmup": 2, "train_steps": 60, "bandwidth_mib": 256}
QUICK = {"units": "200", "rounds": 3, "warmup": 1, "train_steps": 10, "bandwidth_mib": 128}
BACKENDS = ("jax",)  # the training step is also timed on these Keras backends
MEMORY_TRAIN_SYSTEMS = ("ours", "keras", "keras-drop", "torch")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the U=200 configuration only, fewer rounds (a few minutes)",
    )
    parser.add_argument("--out", default="BENCHMARKS.md", help="report path (BENCHMARKS.md)")
    parser.add_argument(
        "--units",
        help="comma-separated E = U sizes of the training runs; "
        "the first is also used for inference and memory "
        f"(full {FULL['units']}, quick {QUICK['units']})",
    )
    parser.add_argument("--vocab", type=int, default=10_000, help="V (10000)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=20, help="B of a training step (20)")
    parser.add_argument("--steps", type=int, default=35, help="T of a training step (35)")
    parser.add_argument(
        "--rounds", type=int, help=f"timed rounds (full {FULL['rounds']}, quick {QUICK['rounds']})"
    )
    parser.add_argument("--warmup", type=int, help="untimed calls per system first")
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument(
        "--systems", default=",".join(_training().SYSTEMS), help="training systems to compare (all)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="Keras backends on which the training step is also timed, each in "
        f"a subprocess at the first --units size ({','.join(BACKENDS)}; "
        "'' for none)",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        help="Adam steps on Shakespeare before the inference perplexity check (full 60, quick 10)",
    )
    parser.add_argument("--gen-tokens", type=int, default=100)
    parser.add_argument(
        "--memory-systems",
        default=",".join(MEMORY_TRAIN_SYSTEMS),
        help=f"training systems whose peak memory is measured ({','.join(MEMORY_TRAIN_SYSTEMS)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for TensorFlow and torch (default: each library's own)",
    )
    parser.add_argument("--bandwidth-mib", type=int, help="array size of the bandwidth copy")
    options = parser.parse_args(argv)
    defaults = QUICK if options.quick else FULL
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    options.units = [int(u) for u in str(options.units).split(",")]
    options.cells = [c for c in options.cells.split(",") if c]
    options.systems = [s for s in options.systems.split(",") if s]
    options.memory_systems = [s for s in options.memory_systems.split(",") if s]
    options.backends = [b for b in options.backends.split(",") if b]
    return options


def _training():
    from benchmarks import training

    return training


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_training(options):
    import keras

    from benchmarks import training
    from benchmarks.timing import interleave

    entries = []
    for units in options.units:
        setup = training.TrainSetup(
            vocab=options.vocab,
            units=units,
            layers=options.layers,
            batch=options.batch,
            steps=options.steps,
        )
        for cell in options.cells:
            log(f"training: {cell} {setup.label()}")
            systems, descriptions, missing = {}, {}, {}
            for name in options.systems:
                descriptions[name] = training.describe(name, cell, setup)
                step = training.build_system(name, setup, cell)
                if step is None:
                    missing[name] = "not installed"
                else:
                    systems[name] = step
            times = interleave(systems, options.rounds, options.warmup, progress=log)
            entries.append(
                {
                    "setup": setup,
                    "cell": cell,
                    "times": times,
                    "descriptions": descriptions,
                    "missing": missing,
                }
            )
            del systems
            keras.backend.clear_session()
            gc.collect()
    return entries


def run_backend_training(options, backend):
    """`benchmarks.backend_training` on `backend` in a subprocess, at the first --units size."""
    import subprocess

    setup = _training().TrainSetup(
        vocab=options.vocab,
        units=options.units[0],
        layers=options.layers,
        batch=options.batch,
        steps=options.steps,
    )
    log(f"training on {backend}: {setup.label()}")
    with tempfile.TemporaryDirectory(prefix="keras_gated_bench_") as workdir:
        out = os.path.join(workdir, "times.json")
        command = [
            sys.executable,
            "-m",
            "benchmarks.backend_training",
            "--json",
            out,
            "--units",
            str(setup.units),
            "--vocab",
            str(setup.vocab),
            "--layers",
            str(setup.layers),
            "--batch",
            str(setup.batch),
            "--steps",
            str(setup.steps),
            "--cells",
            ",".join(options.cells),
            "--rounds",
            str(options.rounds),
            "--warmup",
            str(options.warmup),
        ]
        env = {**os.environ, "KERAS_BACKEND": backend}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {"backend": backend, "setup": setup, "failed": done.stderr[-2000:]}
        with open(out) as f:
            return {**json.load(f), "setup": setup}


def run_inference(options, workdir):
    from benchmarks import inference

    setup = inference.InferSetup(
        vocab=options.vocab,
        units=options.units[0],
        layers=options.layers,
        gen_tokens=options.gen_tokens,
        train_steps=options.train_steps,
    )
    data = inference.corpus_ids(setup.vocab, setup.eval_tokens)
    entries = []
    for cell in options.cells:
        log(f"inference: {cell}, training {setup.train_steps} steps and exporting")
        prepared = inference.prepare(setup, cell, workdir, data)
        results = inference.run_inference(
            setup,
            cell,
            prepared,
            data,
            options.bandwidth,
            options.rounds,
            options.warmup,
            progress=log,
        )
        entries.append(
            {"setup": setup, "cell": cell, "results": results, "paths": prepared["paths"]}
        )
    return entries


def run_memory(options, inference_entries):
    from benchmarks import training
    from benchmarks.memory import peak_rss_mib

    setup = training.TrainSetup(
        vocab=options.vocab,
        units=options.units[0],
        layers=options.layers,
        batch=options.batch,
        steps=options.steps,
    )
    jobs = [
        ("import tensorflow, keras", ["baseline", "--imports", "tensorflow,keras"], "imports only"),
        (
            "import onnxruntime, numpy",
            ["baseline", "--imports", "onnxruntime,numpy"],
            "imports only",
        ),
    ]
    for cell in options.cells:
        for system in options.memory_systems:
            if system not in options.systems or (
                system == "torch" and not training.torch_available()
            ):
                continue
            jobs.append(
                (
                    f"train {cell.upper()} `{system}`",
                    [
                        "train",
                        "--system",
                        system,
                        "--cell",
                        cell,
                        "--setup",
                        json.dumps(dataclasses.asdict(setup)),
                    ],
                    f"build + 3 training steps, {setup.label()}",
                )
            )
    for entry in inference_entries:
        cell = entry["cell"].upper()
        for name, path in entry["paths"].items():
            runtime = "raw" if name == "keras-export" else "ours"
            jobs.append(
                (
                    f"onnxruntime {cell} `{name}`",
                    [
                        "infer",
                        "--runtime",
                        runtime,
                        "--file",
                        path,
                        "--generate",
                        options.gen_tokens,
                    ],
                    f"load, score 20x35, generate {options.gen_tokens} (batch 1)",
                )
            )
    rows = []
    for label, args, detail in jobs:
        mib, note = peak_rss_mib(args, threads=options.threads)
        log(f"memory: {label}: " + (f"{mib:,.0f} MiB" if mib is not None else note))
        rows.append((label, mib, note, detail))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    options = parse_args(argv)
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from benchmarks import machine, report

    machine.configure_threads(options.threads)
    load = {"before": machine.load_average(), "busy_before": machine.busy_processes()}
    log("machine: measuring memory bandwidth")
    info = machine.describe(options.bandwidth_mib)
    options.bandwidth = info["bandwidth"]
    log(
        f"{info['cpu']}, {info['cores']} cores, {info['bandwidth'] / 1e9:.1f} GB/s; "
        f"load {load['before']}"
    )

    training_entries = run_training(options)
    backend_entries = [run_backend_training(options, backend) for backend in options.backends]
    with tempfile.TemporaryDirectory(prefix="keras_gated_bench_") as workdir:
        inference_entries = run_inference(options, workdir)
        memory_rows = run_memory(options, inference_entries)
    load.update(after=machine.load_average(), busy_after=machine.busy_processes())

    results = {
        "command": shlex.join([os.path.relpath(sys.executable), "-m", "benchmarks.run", *argv]),
        "mode": "quick" if options.quick else "full",
        "rounds": options.rounds,
        "warmup": options.warmup,
        "machine": info,
        "load": load,
        "training": training_entries,
        "backend_training": backend_entries,
        "inference": inference_entries,
        "memory": memory_rows,
        "wall_seconds": time.perf_counter() - started,
    }
    text = report.markdown(results)
    with open(options.out, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
