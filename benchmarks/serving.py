"""Serving under load: throughput of `OnnxLanguageModel` and a plain onnxruntime session over
one exported file, with 1, 2, 4, 8 threads sharing one session and 4 sessions in one process.

    .venv/bin/python -m benchmarks.serving                        # ~1-2 min on 2 cores
    .venv/bin/python -m benchmarks.serving --calls 40 --units 8 --rounds 1 --out s.md  # smoke

The load (`call_mix`): a fixed, seeded list of the calls a server sees, each drawn at random:
    score           `lm.score(text)`, 2-64 tokens
    generate        `lm.generate(prompt, tokens=1..24, temperature, top_k, seed)`
    generate_batch  `lm.generate_batch(1..16 prompts, tokens=1..8, seed=...)`
    stream          `lm.step` 1-4 times on (B, T) = (1..16, 1..8) ids, each step fed the
                    states the previous one returned (the first: `lm.initial_states(B)` or
                    random states); each step counts as one call
    run             `session.run` of a plain `onnxruntime.InferenceSession` on the same file,
                    (B, T) = (1..16, 1..8) ids and random states
`serve` hands call i to model i mod (number of models) on a pool of threads. Figures: calls/s
and graph tokens/s (every id the graph consumes, per row and step: a scored text's N - 1,
a prompt's length, each sampled token fed back) over the whole list, wall clock. Every
session runs with `SESSION_SETTINGS` (one intra-op thread: the threads calling the session
are the parallelism, as in a server).

Not a test: nothing here asserts a timing. tests/export/test_serving_load.py checks that
every result under this load equals the same call made alone.
"""

import argparse
import concurrent.futures
import dataclasses
import gc
import os
import platform
import shlex
import string
import sys
import tempfile
import time

import numpy as np

from benchmarks import machine, report
from benchmarks.timing import interleave, ratio_per_round, summary

MAX_BATCH = 16
KINDS = ("score", "generate", "generate_batch", "stream", "run")
SHARES = (0.3, 0.25, 0.15, 0.12, 0.18)  # of the requests, in KINDS order (a stream: 2.5 calls)
SESSION_SETTINGS = {
    "intra_op_num_threads": 1,
    "inter_op_num_threads": 1,
    "session.intra_op.allow_spinning": "0",
}
# (threads, sessions) measured; with 4 sessions each has one thread of its own.
CONFIGS = ((1, 1), (2, 1), (4, 1), (8, 1), (4, 4))


@dataclasses.dataclass(frozen=True)
class Call:
    """One request: `kind` from KINDS, its arguments, how many API calls it makes, and how
    many ids the graph consumes."""

    kind: str
    args: dict
    calls: int
    tokens: int


@dataclasses.dataclass(frozen=True)
class ServingSetup:
    units: int = 256  # E = U, tied, 2 LSTM layers; V = the tokenizer's characters
    calls: int = 1000  # in the list each row serves per round
    rounds: int = 5  # timed, interleaved, after one untimed pass per row
    seed: int = 0


def char_tokenizer():
    """A CharTokenizer over `<unk>`, lower-case letters, digits and a little punctuation."""
    from keras_gated.data.tokenizers import CharTokenizer

    return CharTokenizer(
        vocabulary=["<unk>"] + list(string.ascii_lowercase + string.digits + " .,;:!?'-\n")
    )


def export_model(setup, path):
    """A 2-layer tied LSTM language model (Keras's initial weights) exported to `path`."""
    import keras

    import keras_gated
    from keras_gated.export import to_onnx

    keras.utils.set_random_seed(setup.seed)
    tokenizer = char_tokenizer()
    model = keras_gated.language_model(
        tokenizer.vocab_size, embed_dim=setup.units, units=setup.units, num_layers=2
    )
    model(np.zeros((1, 2), np.int32))
    to_onnx(model, path, tokenizer=tokenizer)


def session_options():
    """onnxruntime options with `SESSION_SETTINGS`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = SESSION_SETTINGS["intra_op_num_threads"]
    options.inter_op_num_threads = SESSION_SETTINGS["inter_op_num_threads"]
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", SESSION_SETTINGS["session.intra_op.allow_spinning"]
    )
    return options


def open_models(path, count):
    """`count` (OnnxLanguageModel, plain InferenceSession) pairs on `path`, CPU, with
    `session_options()`: the models `serve` hands calls to."""
    import onnxruntime as ort

    from keras_gated.export import OnnxLanguageModel

    cpu = ["CPUExecutionProvider"]
    return [
        (
            OnnxLanguageModel(path, providers=cpu, sess_options=session_options()),
            ort.InferenceSession(os.fspath(path), session_options(), providers=cpu),
        )
        for _ in range(count)
    ]


def call_mix(lm, count, seed=0):
    """`count` API calls' worth of `Call`s for `lm` (its tokenizer, V and state sizes), drawn
    with `seed`; every batch size 1..MAX_BATCH occurs once `count` is in the hundreds."""
    rng = np.random.default_rng(seed)
    vocab, sizes = lm.vocab_size, lm.state_sizes

    def ids(*shape):
        return rng.integers(1, vocab, size=shape)  # no <unk>: text decodes and encodes back

    def text(low, high):
        return lm.tokenizer.decode(ids(int(rng.integers(low, high + 1))))

    def length(text):
        return len(lm.tokenizer.encode(text))

    def states(batch):
        return [(0.5 * rng.standard_normal((batch, size))).astype(np.float32) for size in sizes]

    mix, total = [], 0
    while total < count:
        kind = KINDS[rng.choice(len(KINDS), p=SHARES)]
        if kind == "score":
            args = {"text": text(2, 64)}
            call = Call(kind, args, 1, length(args["text"]) - 1)
        elif kind == "generate":
            args = {
                "prompt": text(1, 16),
                "tokens": int(rng.integers(1, 25)),
                "temperature": float(rng.choice([0.7, 1.0, 1.3])),
                "top_k": [None, 5][rng.integers(2)],
                "seed": int(rng.integers(2**31)),
            }
            call = Call(kind, args, 1, length(args["prompt"]) + args["tokens"] - 1)
        elif kind == "generate_batch":
            prompts = [text(1, 12) for _ in range(rng.integers(1, MAX_BATCH + 1))]
            args = {
                "prompts": prompts,
                "tokens": int(rng.integers(1, 9)),
                "seed": int(rng.integers(2**31)),
            }
            fed = sum(map(length, prompts)) + len(prompts) * (args["tokens"] - 1)
            call = Call(kind, args, 1, fed)
        else:
            batch = int(rng.integers(1, MAX_BATCH + 1))
            steps = int(rng.integers(1, 5)) if kind == "stream" else 1
            feeds = [ids(batch, int(rng.integers(1, 9))) for _ in range(steps)]
            first = None if kind == "stream" and rng.integers(2) else states(batch)
            args = {"tokens": feeds, "states": first}
            call = Call(kind, args, steps, sum(f.size for f in feeds))
        mix.append(call)
        total += call.calls
    return mix


def perform(call, lm, session):
    """Makes `call` on `lm` (or, for "run", on the plain `session`); returns its result:
    a float, a string, a list of strings, or a list of arrays."""
    args = call.args
    if call.kind == "score":
        return lm.score(args["text"])
    if call.kind == "generate":
        return lm.generate(**args)
    if call.kind == "generate_batch":
        return lm.generate_batch(**args)
    if call.kind == "stream":
        states = args["states"]
        if states is None:
            states = lm.initial_states(len(args["tokens"][0]))
        out = []
        for tokens in args["tokens"]:
            logits, states = lm.step(tokens, states)
            out += [logits, *states]
        return out
    inputs = {i.name: i.type for i in session.get_inputs()}
    token_input = lm.metadata["input"]
    dtype = np.int32 if inputs[token_input] == "tensor(int32)" else np.int64
    feeds = {
        token_input: args["tokens"][0].astype(dtype),
        **dict(zip(lm.state_names, args["states"])),
    }
    return session.run(None, feeds)


def serve(calls, models, threads, check=None):
    """Makes every call on a pool of `threads` threads, call i on models[i % len(models)];
    `check(i, result)` sees each result as it comes (nothing is kept).

    Returns:
        (wall seconds, [(i, exception)] of the calls that raised).
    """

    def one(i):
        try:
            result = perform(calls[i], *models[i % len(models)])
        except Exception as error:  # a failed call is counted, not fatal
            return i, error
        if check is not None:
            check(i, result)
        return None

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        failed = [f for f in pool.map(one, range(len(calls))) if f is not None]
    return time.perf_counter() - start, failed


def resident_mib():
    """This process's resident memory (VmRSS from /proc/self/status) in MiB; None without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(setup, path, configs=CONFIGS, progress=None):
    """Serves one call mix with every (threads, sessions) of `configs`: one untimed pass each,
    then `setup.rounds` interleaved timed rounds (`timing.interleave`).

    Returns:
        {config: [seconds per round]}, {config: failed calls, warm-up included}, and totals:
        calls, graph tokens, calls per kind, RSS MiB after the warm-up and at the end.
    """
    models = open_models(path, max(sessions for _, sessions in configs))
    calls = call_mix(models[0][0], setup.calls, setup.seed)
    failed = dict.fromkeys(configs, 0)

    def system(config):
        threads, sessions = config

        def run():
            failed[config] += len(serve(calls, models[:sessions], threads)[1])

        return run

    systems = {config: system(config) for config in configs}
    for run in systems.values():
        run()
    gc.collect()
    before = resident_mib()
    times = interleave(systems, setup.rounds, warmup=0, progress=progress)
    gc.collect()
    totals = {
        "calls": sum(c.calls for c in calls),
        "tokens": sum(c.tokens for c in calls),
        "kinds": {k: sum(c.calls for c in calls if c.kind == k) for k in KINDS},
        "rss": (before, resident_mib()),
    }
    return times, failed, totals


def markdown(setup, times, failed, totals, command, load, wall):
    """The BENCHMARKS.md section."""
    base = times.get((1, 1))
    rows = []
    for (threads, sessions), seconds in times.items():
        calls_s = summary([totals["calls"] / s for s in seconds])
        tokens_s = summary([totals["tokens"] / s for s in seconds])
        speedup = _range(ratio_per_round(base, seconds), "{:.2f}x") if base else "n/a"
        rows.append(
            (
                threads,
                sessions,
                _range(calls_s, "{:,.0f}"),
                _range(tokens_s, "{:,.0f}"),
                speedup,
                failed[threads, sessions],
            )
        )
    before, after = totals["rss"]
    rss = (
        "n/a"
        if before is None
        else f"{before:,.0f} MiB after the warm-up, {after:,.0f} MiB at the end "
        f"({after / before - 1:+.1%})"
    )
    mix = ", ".join(f"{kind} {n}" for kind, n in totals["kinds"].items())
    settings = ", ".join(f"`{k}` {v}" for k, v in SESSION_SETTINGS.items())
    import onnxruntime as ort

    lines = [
        "## Serving under load (benchmarks/serving.py)",
        "",
        f"Generated by `{command}` in {wall / 60:.1f} min on {machine.cpu_model()}, "
        f"{os.cpu_count()} logical cores; onnxruntime {ort.__version__}, numpy "
        f"{np.__version__}, Python {platform.python_version()}. Model: a 2-layer tied LSTM "
        f"language model, E = U = {setup.units}, V = {char_tokenizer().vocab_size} characters, "
        "Keras's initial weights, exported by `to_onnx` with its tokenizer; CPU provider; "
        f"session options: {settings}. The load: one fixed list of {totals['calls']:,} calls "
        f"({mix}; generate_batch with 1-16 prompts, step and run at batch 1-16; see the "
        f"module docstring), {totals['tokens']:,} graph tokens, served by a thread pool, call "
        "i on session i mod sessions. Each row served the list once untimed, then "
        f"{setup.rounds} interleaved timed rounds (every round serves the list once per row). "
        "calls/s and graph tokens/s: the list over its wall time, median (min–max) of the "
        "rounds; speed-up: median (min–max) of the per-round ratios against 1 thread, 1 "
        "session.",
        "",
        f"- Load average (1, 5, 15 min) before {report._load(load['before'])}, after "
        f"{report._load(load['after'])}; other busy processes before: "
        f"{report._busy(load['busy_before'])}.",
        f"- Resident memory of the process (TensorFlow and Keras, loaded for the export, "
        f"included): {rss}, over {setup.rounds * len(times) * totals['calls']:,} timed calls.",
        "",
        report._table(
            (
                "threads",
                "sessions",
                "calls/s",
                "graph tokens/s",
                "speed-up vs 1 thread",
                "failed calls",
            ),
            rows,
        ),
    ]
    if load["busy_before"]:
        lines += [
            "",
            "**The machine was shared while measuring: these figures are rough; "
            "re-run on a quiet machine before quoting them.**",
        ]
    return "\n".join(lines) + "\n"


def _range(stat, form):
    return f"{form.format(stat.median)} ({form.format(stat.min)}–{form.format(stat.max)})"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = ServingSetup()
    for field in dataclasses.fields(ServingSetup):
        parser.add_argument(f"--{field.name}", type=int, default=getattr(defaults, field.name))
    parser.add_argument("--out", help="also write the section to this file")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    options = parse_args(argv)
    setup = ServingSetup(
        **{f.name: getattr(options, f.name) for f in dataclasses.fields(ServingSetup)}
    )
    start = time.perf_counter()
    # Busy commands on one line each (`python -c` code spans several).
    load = {
        "before": machine.load_average(),
        "busy_before": [
            (share, " ".join(command.split())) for share, command in machine.busy_processes()
        ],
    }
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "lm.onnx")
        export_model(setup, path)
        times, failed, totals = measure(
            setup, path, progress=lambda line: print(line, file=sys.stderr, flush=True)
        )
    load["after"] = machine.load_average()
    command = shlex.join([os.path.relpath(sys.executable), "-m", "benchmarks.serving", *argv])
    report.emit(
        markdown(setup, times, failed, totals, command, load, time.perf_counter() - start),
        options.out,
    )
    return 0 if not any(failed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
