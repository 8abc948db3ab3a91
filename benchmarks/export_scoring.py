"""Scoring masked, left-padded reviews with bidirectional classifiers: our export against
Keras's own `model.export(format="onnx")`, both run by onnxruntime on CPU, same weights.

    .venv/bin/python -m benchmarks.export_scoring              # prints a BENCHMARKS.md section
    .venv/bin/python -m benchmarks.export_scoring --rounds 1 --vocab 50 --units 4   # smoke

Models (the Keras IMDB example's architecture): Embedding(V, E, mask_zero=True) ->
Bidirectional(RNN(U, return_sequences=True)) -> Bidirectional(RNN(U)) -> Dense(1, sigmoid),
RNN = LSTM (the masked Bi-LSTM) or GRU (reset_after=True). The batch: B reviews of T tokens,
left-padded with zeros as `keras.utils.pad_sequences` pads, review lengths uniform in
[T/4, T]. Systems, all on the same weights:
    keras-export   onnxruntime on `model.export(format="onnx")` of the model built from
                   Keras's built-in layers (tf2onnx: each masked layer becomes a `Loop`)
    ours           onnxruntime on `keras_gated.export.to_onnx` of the model built from our
                   layers (one native node per Bidirectional, masks compacted in-graph)
    ours-builtin   `to_onnx` of the same built-in model Keras exported
Each system runs in two onnxruntime sessions: with onnxruntime's default thread pool (one
thread per core) and with one intra-op thread (as a server running one session per core
would). Each round times every system and setting once (interleaved); a ratio is the median
of the per-round ratios system / keras-export at the same thread setting.

After the timed rounds, `ours` and `ours-builtin` run again in sessions of their own with
onnxruntime's profiler on (it perturbs timing, so it never runs in the timed sessions). The
recurrent nodes' fraction of a profiled call times the timed ratio is the lowest ratio any
graph can reach while each recurrent layer is one native node (`kernel_bound`).
"""

import argparse
import dataclasses
import os
import tempfile

import numpy as np

from benchmarks.inference import matmul_rate, session_options
from benchmarks.ort_profile import RECURRENT_OPS, node_split
from benchmarks.timing import interleave, ratio_per_round, summary

SYSTEMS = ("keras-export", "ours", "ours-builtin")
PROFILED = ("ours", "ours-builtin")  # systems whose node times are profiled
MODEL_NAMES = {"lstm": "Bi-LSTM", "gru": "Bi-GRU"}
THREADS = (None, 1)  # intra-op threads: onnxruntime's default (one per core), one
TARGET_RATIO = 0.35  # ours at most 0.35x the time of Keras's export


@dataclasses.dataclass(frozen=True)
class ScoringSetup:
    vocab: int = 20_000  # the IMDB example's max_features
    embed_dim: int = 128
    units: int = 64
    batch: int = 32
    steps: int = 200  # the example's maxlen
    rounds: int = 15
    warmup: int = 3
    seed: int = 0


def classifier(setup, cell, layers_module):
    """The IMDB example's model on `layers_module` (keras.layers or keras_gated)."""
    import keras

    rnn = getattr(layers_module, {"lstm": "LSTM", "gru": "GRU"}[cell])
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(setup.vocab, setup.embed_dim, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(rnn(setup.units, return_sequences=True))(x)
    x = keras.layers.Bidirectional(rnn(setup.units))(x)
    return keras.Model(tokens, keras.layers.Dense(1, activation="sigmoid")(x))


def reviews(setup):
    """(B, T) int32 token ids, left-padded with zeros to T, lengths uniform in [T/4, T]."""
    rng = np.random.default_rng(setup.seed)
    tokens = np.zeros((setup.batch, setup.steps), np.int32)
    for row, length in enumerate(rng.integers(setup.steps // 4, setup.steps + 1, setup.batch)):
        tokens[row, setup.steps - length :] = rng.integers(1, setup.vocab, length)
    return tokens


def export_both(setup, cell, workdir):
    """Builds the built-in and our-layer models with the same weights, exports them; returns
    ({system: path}, the built-in Keras model)."""
    import keras

    import keras_gated
    from keras_gated.export import to_onnx

    keras.utils.set_random_seed(setup.seed)
    builtin = classifier(setup, cell, keras.layers)
    ours = classifier(setup, cell, keras_gated)
    ours.set_weights(builtin.get_weights())  # one layout: Keras's
    builtin(reviews(setup)[:2])  # Keras's export needs a model that was called
    paths = {name: os.path.join(workdir, f"{cell}_{name}.onnx") for name in SYSTEMS}
    builtin.export(paths["keras-export"], format="onnx", verbose=False)
    to_onnx(ours, paths["ours"])
    to_onnx(builtin, paths["ours-builtin"])
    return paths, builtin


def ort_session(path, threads, profile_dir=None):
    """An onnxruntime CPU session on `path` (no spinning, see `inference.session_options`;
    `threads` intra-op threads, None for the default; onnxruntime's profiler on, writing into
    `profile_dir`, when given)."""
    import onnxruntime as ort

    options = session_options(False)
    if threads:
        options.intra_op_num_threads = threads
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "profile")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def scorer(session):
    """tokens (B, T) -> (B, 1) through `session` (fed as its input's integer type)."""
    name = session.get_inputs()[0].name
    dtype = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}[session.get_inputs()[0].type]
    return lambda tokens: session.run(None, {name: tokens.astype(dtype)})[0]


def _label(line):
    """A progress line with ('name', threads) keys as `name` and `name t1`."""
    return line.replace("('", "").replace("', None)", "").replace("', 1)", " t1")


def score_flops(setup):
    """{cell: FLOPs} (2 per multiply-add) of scoring one batch: per layer and direction the
    input matmul (B*T, D) x (D, G*U) and T recurrent matmuls (B, U) x (U, G*U), G = 4 (LSTM)
    or 3 (GRU); gate arithmetic and the embedding lookup left out."""
    rows, units, embed = setup.batch * setup.steps, setup.units, setup.embed_dim
    flops = {}
    for cell, gates in (("lstm", 4), ("gru", 3)):
        first = 2 * rows * gates * units * (embed + units)  # one direction of layer 1
        second = 2 * rows * gates * units * (2 * units + units)  # layer 2 reads both, 2U
        flops[cell] = 2 * (first + second)  # two directions
    return flops


def compute_floor(setup, rounds=5):
    """{cell: seconds} FLOPs / onnxruntime's MatMul rate at the input matmul's shape."""
    rate = matmul_rate(setup.batch * setup.steps, setup.embed_dim, 4 * setup.units, rounds)
    return {cell: flops / rate for cell, flops in score_flops(setup).items()}


def op_counts(path):
    import collections

    import onnx

    return collections.Counter(node.op_type for node in onnx.load(path).graph.node)


def measure(setup, cell, workdir, progress=None):
    """Times every system on one batch, then profiles the PROFILED ones; returns a results
    dict for `markdown`."""
    paths, builtin = export_both(setup, cell, workdir)
    tokens = reviews(setup)
    runs = {
        (name, threads): scorer(ort_session(path, threads))
        for threads in THREADS
        for name, path in paths.items()
    }
    want = np.asarray(builtin(tokens))
    diffs = {name: float(np.max(np.abs(runs[name, None](tokens) - want))) for name in SYSTEMS}
    times = interleave(
        {key: (lambda run=run: run(tokens)) for key, run in runs.items()},
        setup.rounds,
        setup.warmup,
        progress=progress and (lambda line: progress(_label(line))),
    )
    ops = {name: op_counts(path) for name, path in paths.items()}
    profiles = {}
    for threads in THREADS:  # after the timed rounds, in sessions of their own
        for name in PROFILED:
            profiled = ort_session(paths[name], threads, profile_dir=workdir)
            score = scorer(profiled)
            profiles[name, threads] = node_split(
                profiled, lambda score=score: score(tokens), setup.rounds, setup.warmup
            )
    return {
        "cell": cell,
        "times": {key: summary(t) for key, t in times.items()},
        "profiles": profiles,
        "ratios": {
            (name, threads): ratio_per_round(times[name, threads], times["keras-export", threads])
            for name in SYSTEMS[1:]
            for threads in THREADS
        },
        "diffs": diffs,
        "nodes": {
            name: {op: ops[name][op] for op in ("LSTM", "GRU", "Loop", "Scan") if ops[name][op]}
            for name in SYSTEMS
        },
    }


def markdown(setup, results, machine):
    """The BENCHMARKS.md section for `results` (one per cell)."""
    lines = [
        "## Export: scoring masked reviews (benchmarks/export_scoring.py)",
        "",
        f"Generated by `.venv/bin/python -m benchmarks.export_scoring` on {machine}. "
        f"The Keras IMDB example's classifier (Embedding(V={setup.vocab}, E={setup.embed_dim}, "
        f"mask_zero=True) -> Bidirectional(U={setup.units}, return_sequences) -> "
        f"Bidirectional(U={setup.units}) -> Dense(1)), scoring B={setup.batch} reviews of "
        f"T={setup.steps} tokens, left-padded, lengths uniform in [T/4, T]; onnxruntime on "
        f"CPU, same weights, {setup.rounds} interleaved rounds after {setup.warmup} warm-up "
        f"calls. Ratio: the median of per-round ratios system / `keras-export`; target "
        f"<= {TARGET_RATIO}x.",
        "",
        "| model | threads | system | median ms | min–max ms | ratio vs keras-export | max abs "
        "diff vs Keras | recurrent nodes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        name = MODEL_NAMES[result["cell"]]
        for threads in THREADS:
            for system in SYSTEMS:
                t = result["times"][system, threads]
                ratio = result["ratios"].get((system, threads))
                ratio_text = (
                    "1"
                    if ratio is None
                    else (f"**{ratio.median:.3f}x** ({ratio.min:.3f}–{ratio.max:.3f})")
                )
                nodes = ", ".join(f"{n} {op}" for op, n in result["nodes"][system].items())
                lines.append(
                    f"| {name} | {threads or 'default'} | `{system}` | "
                    f"{t.median * 1e3:.1f} | {t.min * 1e3:.1f}–{t.max * 1e3:.1f} | "
                    f"{ratio_text} | {result['diffs'][system]:.1e} | {nodes} |"
                )
    return "\n".join(lines + [""] + kernel_bound(setup, results)) + "\n"


def kernel_bound(setup, results):
    """Lines on the recurrent nodes' own time: the lowest ratio a graph can reach when each
    recurrent layer is one native node."""
    lines = [
        f"Where our graphs' time goes: onnxruntime's profiler (`SessionOptions."
        f"enable_profiling`), in sessions of its own run after the timed rounds (profiling "
        f"perturbs timing), on the same batch: {setup.warmup} warm-up calls skipped, then "
        f"{setup.rounds} profiled calls; values are medians over them. Recurrent nodes: "
        f"{'/'.join(RECURRENT_OPS)}; share: of the summed node time; profiled call: "
        f"onnxruntime's `model_run` (nodes, feeds, fetches, profiler). Bound: the recurrent nodes' "
        f"median fraction of a profiled call times the median timed ratio, both from this run. "
        f"With one native node per recurrent layer, the bound is the lowest ratio any graph "
        f"around the nodes can reach; where it exceeds the {TARGET_RATIO}x target, the target "
        f"is bounded by onnxruntime's kernel.",
        "",
        "| model | threads | system | recurrent nodes alone, ms per call | other nodes ms | "
        "recurrent share of node time | profiled call ms | "
        f"bound: recurrent / call x timed ratio | timed ratio | target <= {TARGET_RATIO}x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        name = MODEL_NAMES[result["cell"]]
        for (system, threads), split in result["profiles"].items():
            ratio = result["ratios"][system, threads].median
            bound = split.call_share.median * ratio
            verdict = (
                "met"
                if ratio <= TARGET_RATIO
                else "unmet; bounded by the kernel"
                if bound > TARGET_RATIO
                else "unmet; the graph around the nodes has room"
            )
            lines.append(
                f"| {name} | {threads or 'default'} | `{system}` | "
                f"{split.recurrent.median * 1e3:.1f} | {split.other.median * 1e3:.1f} | "
                f"{split.node_share.median:.1%} | {split.run.median * 1e3:.1f} | "
                f"**{bound:.3f}x** | "
                f"{ratio:.3f}x | {verdict} |"
            )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.export_scoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = ScoringSetup()
    for field in dataclasses.fields(ScoringSetup):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=int, default=getattr(defaults, field.name)
        )
    parser.add_argument("--cells", default="lstm,gru")
    options = parser.parse_args(argv)
    setup = ScoringSetup(
        **{f.name: getattr(options, f.name) for f in dataclasses.fields(ScoringSetup)}
    )
    from benchmarks.machine import cpu_flags, cpu_model

    machine = f"{cpu_model()}, {os.cpu_count()} logical cores ({', '.join(cpu_flags())})"
    with tempfile.TemporaryDirectory() as workdir:
        results = [
            measure(setup, cell, workdir, progress=print)
            for cell in options.cells.split(",")
            if cell
        ]
    floor = compute_floor(setup)
    print(markdown(setup, results, machine))
    print(
        "Compute floor (FLOPs / onnxruntime's MatMul rate at (B*T, E) x (E, 4U), one "
        "call, the best of 5): "
        + ", ".join(f"{cell} {seconds * 1e3:.1f} ms" for cell, seconds in floor.items())
    )


if __name__ == "__main__":
    main()
