"""The gradient all-reduce between two local workers, beside their training step, for the
2-layer 650-unit word LM that `keras-gated train --strategy multiworker` trains.

    python -m benchmarks.allreduce [--quick] [--rounds N] [--out FILE]

The parent starts two worker processes on localhost, each with a TF_CONFIG naming two free
ports; each creates `tf.distribute.MultiWorkerMirroredStrategy` before any TensorFlow op,
builds the model with `training.build.build_model` under its scope (the recipe's: Adam,
global-norm clipping, default dropout, `carry_state` false, global batch B, so b = B/2 rows
per worker) and times, interleaved (`benchmarks.timing`; the two workers run in lock-step):

    step        `model.train_on_batch` on its b rows of random token ids, in the trainer's
                multi-worker scope (`devices.fit_scope`): forward, backward, the all-reduce
                Keras's optimizer runs (`replica_context.all_reduce(SUM, gradients)`), the
                Adam update, and the logs averaged over the workers
    all-reduce  that all-reduce alone: `replica_context.all_reduce(SUM, tensors)` in
                `strategy.run` in a `tf.function`, over dense float32 tensors shaped like every
                trainable variable. The step's gradients are dense too (`gradient_kinds`
                records their types from a traced step): with tied weights the embedding's
                gradient is the lookup's row slices plus the projection's dense matrix, and
                TensorFlow adds them into one dense tensor

Then one process per thread setting (TensorFlow's default, and 1: what each of two workers
on a 2-core machine gets) times the compute step alone, no strategy: the same model at b
rows without XLA (as the workers' step: `devices.uses_xla` turns XLA off under a strategy)
and with it, and at the global batch B with XLA (the single-process recipe's step).

Both workers share this machine's cores and exchange tensors by gRPC over the loopback
interface: the all-reduce figure measures a loopback all-reduce, not a network.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys

import numpy as np

from benchmarks import machine, report
from benchmarks.timing import interleave, summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_PREFIX = "allreduce_result="
FULL = dict(vocab=10_000, units=650, batch=20, seq_len=35, rounds=7, warmup=2, repeat=3)
QUICK = dict(vocab=50, units=8, batch=4, seq_len=5, rounds=2, warmup=1, repeat=1)
WORKERS = 2
LINKS_GBIT = (10, 100)  # network links the paper model is evaluated at
TIMEOUT_S = 600  # per child process


def ring_bytes_per_worker(nbytes, n):
    """Bytes each of `n` workers sends (and receives) in a ring all-reduce of `nbytes`:
    a reduce-scatter and an all-gather of n - 1 chunks of nbytes / n each."""
    return 2 * (n - 1) / n * nbytes


def worker_inputs(variables, index, seed=0):
    """Worker `index`'s stand-in gradients: float32 normal draws shaped like `variables`."""
    return [
        np.random.default_rng([seed, index, k]).standard_normal(v.shape, np.float32)
        for k, v in enumerate(variables)
    ]


# -- the children -----------------------------------------------------------------------------
def _config(options, strategy, xla=True):
    from keras_gated.training.config import TrainConfig

    return TrainConfig(
        embed_dim=options.units,
        units=options.units,
        layers=2,
        batch_size=options.batch,
        seq_len=options.seq_len,
        carry_state=False,
        strategy=strategy,
        xla=xla,
    )


def _batch(options, rows, index):
    ids = np.random.default_rng(index).integers(
        0, options.vocab, (rows, options.seq_len + 1), dtype=np.int32
    )
    return ids[:, :-1], ids[:, 1:]


def gradient_kinds(strategy, model, x, y):
    """{variable path: "dense" or "IndexedSlices"}, its gradient's kind in one replica's step,
    from a trace (no collective runs)."""
    import keras
    import tensorflow as tf

    kinds = {}

    def replica():
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    y, model(x, training=True), from_logits=True
                )
            )
        grads = tape.gradient(loss, model.trainable_variables)
        kinds.update(
            {
                v.path: "IndexedSlices" if isinstance(g, tf.IndexedSlices) else "dense"
                for v, g in zip(model.trainable_variables, grads)
            }
        )
        return loss

    tf.function(lambda: strategy.run(replica)).get_concrete_function()
    return kinds


def _worker(options):
    from keras_gated.training.devices import distribution_strategy, fit_scope

    strategy = distribution_strategy("multiworker")  # before any TensorFlow op
    import keras
    import tensorflow as tf

    from keras_gated.training.build import build_model
    from keras_gated.training.workers import per_replica_batch, workers

    index, count = workers(strategy)
    config = _config(options, "multiworker")
    b = per_replica_batch(strategy, config.batch_size)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config, options.vocab, stateful=False, batch_size=b)
    x, y = _batch(options, b, index)
    variables = model.trainable_variables
    kinds = gradient_kinds(strategy, model, x, y)

    def replica(tensors):
        # identity: a tensor made in the replica's device scope, which names the all-reduce's
        # destination (an input from outside the function has none); no copy on one device
        tensors = [tf.identity(t) for t in tensors]
        return tf.distribute.get_replica_context().all_reduce("SUM", tensors)

    all_reduce = tf.function(lambda tensors: strategy.run(replica, args=(tensors,)))
    mine = [tf.constant(t) for t in worker_inputs(variables, index)]
    reduced = all_reduce(mine)  # also the first warm-up call
    expected = [a + b for a, b in zip(*(worker_inputs(variables, k) for k in range(count)))]
    reduced = [r.numpy() for r in strategy.experimental_local_results(reduced)[0]]
    error = max(float(np.max(np.abs(r - e))) for r, e in zip(reduced, expected))

    with fit_scope(strategy, model, (x, y)):
        times = interleave(
            {"step": lambda: model.train_on_batch(x, y), "all-reduce": lambda: all_reduce(mine)},
            rounds=options.rounds,
            warmup=options.warmup,
            repeat=options.repeat,
        )
    return {
        "index": index,
        "workers": count,
        "replicas": strategy.num_replicas_in_sync,
        "rows": b,
        "times": times,
        "kinds": kinds,
        "max_error": error,
        "params": int(sum(np.prod(v.shape) for v in variables)),
        "bytes": int(sum(r.nbytes for r in reduced)),
        "xla": bool(model.jit_compile),
    }


def _single(options):
    machine.configure_threads(options.threads)  # before any TensorFlow op
    import keras

    from keras_gated.training.build import build_model

    b = options.batch // WORKERS
    systems = {}
    for xla, rows in ((False, b), (True, b), (True, options.batch)):
        keras.utils.set_random_seed(0)
        model = build_model(
            _config(options, "none", xla), options.vocab, stateful=False, batch_size=rows
        )
        x, y = _batch(options, rows, 0)
        systems[f"{rows} {xla}"] = lambda model=model, x=x, y=y: model.train_on_batch(x, y)
    times = interleave(systems, rounds=options.rounds, warmup=options.warmup)
    return {"threads": options.threads, "times": times, "settings": machine.thread_settings()}


# -- the parent -------------------------------------------------------------------------------
def _child_argv(options, role, extra=()):
    keep = [
        f"--{k}={getattr(options, k)}"
        for k in ("vocab", "units", "batch", "seq_len", "rounds", "warmup", "repeat")
    ]
    return [sys.executable, "-m", "benchmarks.allreduce", "--role", role, *keep, *extra]


def _environment(tf_config=None):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
    }
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _results(children):
    """Each child's parsed result line, in order; RuntimeError naming the first that failed
    (the others are stopped)."""
    outputs = []
    try:
        for child in children:
            outputs.append((child, *child.communicate(timeout=TIMEOUT_S)))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    results = []
    for child, out, err in outputs:
        lines = [l for l in out.splitlines() if l.startswith(RESULT_PREFIX)]
        if child.returncode != 0 or not lines:
            raise RuntimeError(
                f"{shlex.join(child.args[1:])} failed (exit {child.returncode}):\n{err[-3000:]}"
            )
        results.append(json.loads(lines[-1][len(RESULT_PREFIX) :]))
    return results


def run_workers(options):
    """Both workers' results, worker 0's first."""
    cluster = [f"localhost:{p}" for p in machine.free_ports(WORKERS)]
    children = [
        subprocess.Popen(
            _child_argv(options, "worker"),
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(
                {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": k}}
            ),
        )
        for k in range(WORKERS)
    ]
    return sorted(_results(children), key=lambda r: r["index"])


def run_single(options, threads):
    child = subprocess.Popen(
        _child_argv(options, "single", [f"--threads={threads}"] if threads else []),
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(),
    )
    return _results([child])[0]


def _mb(nbytes):
    return f"{nbytes / 1e6:.2f} MB"


def markdown(options, command, workers, singles, load):
    chief = workers[0]
    step, reduce_ = summary(chief["times"]["step"]), summary(chief["times"]["all-reduce"])
    nbytes, b = chief["bytes"], chief["rows"]
    rows = [
        (
            "step, 2 workers",
            f"`train_on_batch`, b = {b} rows each (global B = {options.batch}), "
            "all-reduce included, no XLA",
            report._stat_ms(step),
            "100%",
        ),
        (
            "all-reduce alone, 2 workers",
            f"SUM of {len(chief['kinds'])} dense float32 tensors "
            f"shaped like the trainable variables, mean of {options.repeat} call(s) per sample",
            report._stat_ms(reduce_),
            f"{reduce_.median / step.median:.0%}",
        ),
        (
            "step less the all-reduce",
            "the two medians' difference",
            report._ms(step.median - reduce_.median),
            f"{1 - reduce_.median / step.median:.0%}",
        ),
    ]
    for single in singles:
        threads = single["threads"] or "default"
        for name, times in single["times"].items():
            stat, (n, xla) = summary(times), name.split()
            xla = "XLA" if xla == "True" else "no XLA"
            rows.append(
                (
                    f"compute, 1 process, {xla}, threads {threads}",
                    f"`train_on_batch`, {n} rows, no strategy",
                    report._stat_ms(stat),
                    f"{stat.median / step.median:.0%}",
                )
            )
    seconds = reduce_.median
    per_worker = ring_bytes_per_worker(nbytes, WORKERS)
    kinds = sorted(set(chief["kinds"].values()))
    paper = []
    for gbit in LINKS_GBIT:
        wire = [ring_bytes_per_worker(nbytes, n) * 8 / (gbit * 1e9) for n in (2, 8)]
        limit = 2 * nbytes * 8 / (gbit * 1e9)
        paper.append(
            f"{gbit} Gbit/s: {wire[0] * 1e3:.1f} ms for N = 2, {wire[1] * 1e3:.1f} ms "
            f"for N = 8, {limit * 1e3:.1f} ms as N grows"
        )
    info = machine.versions()
    lines = [
        "## Gradient all-reduce between two local workers (benchmarks/allreduce.py)",
        "",
        f"Generated by `{command}` on {machine.cpu_model()}, {os.cpu_count()} logical cores; "
        f"tensorflow {info['tensorflow']}, keras {info['keras']}, numpy {info['numpy']}. "
        f"Model: the recipe's word LM, LSTM, V = {options.vocab}, E = U = {options.units}, 2 "
        f"layers, tied, default dropout, Adam with global-norm clipping "
        f"(`training.build.build_model`), T = {options.seq_len}, random token ids. Two worker "
        "processes on this host, `tf.distribute.MultiWorkerMirroredStrategy` with TF_CONFIG on "
        f"two localhost ports ({chief['replicas']} replicas in sync; the workers' step without "
        f"XLA: `jit_compile` {chief['xla']}). {options.rounds} interleaved rounds after "
        f"{options.warmup} warm-up call(s) per measurement; ms: median (min–max), worker 0's "
        "clock (the workers run in lock-step). Load average before "
        f"{report._load(load['before'])}, after {report._load(load['after'])}; other busy processes before: "
        f"{_busy(load['busy_before'])}; after: {_busy(load['busy_after'])}.",
        "",
        report._table(("measurement", "what", "ms", "of the 2-worker step"), rows),
        "",
        f"- Bytes reduced per step: {nbytes:,} ({_mb(nbytes)}) = {chief['params']:,} trainable "
        f"parameters x 4 bytes. Kinds of the step's gradients (from a traced replica step): "
        f"{', '.join(kinds)}; the all-reduce above reduces dense tensors"
        f"{', as the step does' if kinds == ['dense'] else ''}.",
        f"- All-reduce correctness: the largest |reduced − (worker 0's + worker 1's inputs)| "
        f"over every element: {max(w['max_error'] for w in workers):.1e}.",
        f"- Effective bandwidth: {_mb(nbytes)} / {seconds * 1e3:.1f} ms = "
        f"{nbytes / seconds / 1e9:.2f} GB/s ({nbytes * 8 / seconds / 1e9:.1f} Gbit/s) of "
        f"gradient reduced; a ring all-reduce over N = 2 sends {2 * (WORKERS - 1) / WORKERS:g} x "
        f"that per worker ({_mb(per_worker)}), so each worker's link carried "
        f"{per_worker * 8 / seconds / 1e9:.1f} Gbit/s each way. Loopback gRPC between two "
        "processes sharing the cores: a measurement of serialisation, copies and the "
        "reduction on this CPU, not of a network.",
        f"- Paper model, ring all-reduce, 2(N−1)/N x {_mb(nbytes)} per worker on the wire "
        f"alone: {'; '.join(paper)}.",
    ]
    lines += report.shared_machine_warning(load)
    return "\n".join(lines) + "\n"


def _busy(processes):
    return ", ".join(f"{c} ({s:.0%})" for s, c in processes) or "none"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.allreduce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a tiny model, few rounds ({QUICK}; full {FULL})"
    )
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, help=f"overrides the mode's {key}")
    parser.add_argument(
        "--single-threads",
        default="0,1",
        help="thread settings of the compute-only processes, comma-separated "
        "(0: TensorFlow's default; empty: none)",
    )
    parser.add_argument("--out", help="also write the section to this file")
    parser.add_argument("--role", choices=("worker", "single"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    for key, value in (QUICK if options.quick else FULL).items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.batch % WORKERS:
        parser.error(f"--batch must be a multiple of the {WORKERS} workers")
    return options


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    options = parse_args(argv)
    if options.role:
        result = (_worker if options.role == "worker" else _single)(options)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    load = {"before": machine.load_average(), "busy_before": machine.busy_processes()}
    workers = run_workers(options)
    singles = [run_single(options, int(t)) for t in options.single_threads.split(",") if t]
    load.update(after=machine.load_average(), busy_after=machine.busy_processes())
    command = shlex.join(
        [os.path.relpath(sys.executable, REPO), "-m", "benchmarks.allreduce", *argv]
    )
    text = markdown(options, command, workers, singles, load)
    report.emit(text, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
