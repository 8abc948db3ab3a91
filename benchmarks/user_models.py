"""Training a user's own model: the same `keras.Sequential` built from our layers and from
Keras's built-in ones, compiled with Keras's defaults, timed by `train_on_batch` on CPU.

    .venv/bin/python -m benchmarks.user_models                 # prints a BENCHMARKS.md section
    .venv/bin/python -m benchmarks.user_models --quick         # fewer rounds, ~2 min
    .venv/bin/python -m benchmarks.user_models --rows lm-lstm,imdb-masked --out section.md

Rows (`rows()`); each model is built twice from one definition, `rnn` = `keras_gated.LSTM/GRU`
(ours) or `keras.layers.LSTM/GRU` (built-in, `use_cudnn` left at its default), with the
built-in model's initial weights copied into ours:
    lm-lstm       Embedding(5000, 128) -> 2 x LSTM(128, return_sequences) -> Dense(5000);
                  B=64, T=35, sparse cross-entropy from logits, Adam
    lm-gru        the same with GRU(128)
    imdb-masked   Keras's IMDB example: Embedding(20000, 128, mask_zero=True) ->
                  Bidirectional(LSTM(64, return_sequences)) -> Bidirectional(LSTM(64)) ->
                  Dense(1, sigmoid); B=32, T=200 reviews of lengths uniform in [50, 200],
                  left-padded with zeros as `keras.utils.pad_sequences` pads
                  (`export_scoring.reviews`), random 0/1 labels, binary cross-entropy, Adam
    imdb          the same without the mask (mask_zero=False)
    timeseries    LSTM(32) on (B=256, T=120, 7) floats -> Dense(1); mse, Adam
    lm-650        Embedding(10000, 650) -> 2 x LSTM(650, return_sequences, dropout=0.5,
                  recurrent_dropout=0.5) -> Dense(10000); B=20, T=35, sparse cross-entropy,
                  SGD; also against PyTorch's nn.LSTM(650, 650, num_layers=2) without dropout
                  (embedding, linear, cross-entropy, SGD; torch threads = cores)
Every Keras model gets `model.compile(optimizer=..., loss=...)` with no `jit_compile`
argument: Keras's "auto", which on a CPU-only TensorFlow is XLA off (checked per model and
reported); our layers' loops are XLA-compiled even so (`fused_tensorflow.compiles`). One more
system is timed beside each row:
    floor      (word LMs) the same model without its recurrent layers, default compile: what
               the layers around the recurrence cost, so floor / built-in bounds from below
               the ours / built-in that any recurrence could give
    ours-xla   (the other rows) ours with the whole step compiled (`jit_compile=True`), for
               reference beside the per-loop compilation
Each round every system runs `steps` training steps on one fixed random batch,
after `warmup` untimed steps (`timing.interleave`); a ratio is the median of the per-round
ratios ours / other.
"""

import argparse
import dataclasses
import gc
import os
import shlex
import sys

import numpy as np

from benchmarks import machine, report
from benchmarks.export_scoring import ScoringSetup, reviews
from benchmarks.timing import interleave, ratio_per_round, summary
from benchmarks.training import TrainSetup, batch_data, torch_lm_step

FULL = {"rounds": 9, "warmup": 2, "steps": 3}  # ~5 min on 2 cores
QUICK = {"rounds": 3, "warmup": 2, "steps": 2}  # ~2 min
TARGET_RATIO = 0.7  # ours / built-in, every row
TARGETS = {"imdb-masked": 0.6}  # rows with a stricter ours / built-in target
TORCH_TARGET_RATIO = 1.0  # lm-650: ours with dropout / PyTorch without
SEED = 0


@dataclasses.dataclass(frozen=True)
class Row:
    """One user model: `layers(rnn_module)` -> its layers for `keras.Sequential`."""

    key: str
    title: str
    layers: object  # callable(module with LSTM, GRU) -> list of layers, Input first
    data: object  # callable() -> (x, y) numpy arrays, one fixed batch
    optimizer: str
    loss: object
    torch: tuple = ()  # (V, U, layers) of a PyTorch word LM to time too; () for none
    bound: str = "ours-xla"  # the system timed beside: "floor" or "ours-xla"


def _word_lm(cell, vocab, units, **rnn_args):
    """Embedding(V, U) -> 2 x cell(U, return_sequences) -> Dense(V) logits; (B, T) -> (B, T, V)."""
    import keras

    def layers(rnn):
        make = getattr(rnn, cell)
        return [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(vocab, units),
            make(units, return_sequences=True, **rnn_args),
            make(units, return_sequences=True, **rnn_args),
            keras.layers.Dense(vocab),
        ]

    return layers


def _classifier(mask_zero):
    """Keras's IMDB Bi-LSTM; (B, T) tokens -> (B, 1) probabilities."""
    import keras

    def layers(rnn):
        return [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(20_000, 128, mask_zero=mask_zero),
            keras.layers.Bidirectional(rnn.LSTM(64, return_sequences=True)),
            keras.layers.Bidirectional(rnn.LSTM(64)),
            keras.layers.Dense(1, activation="sigmoid"),
        ]

    return layers


def _time_series(rnn):
    """LSTM(32) over (B, T, 7) floats -> Dense(1); (B, 1) out."""
    import keras

    return [keras.Input((120, 7)), rnn.LSTM(32), keras.layers.Dense(1)]


def _lm_data(vocab, batch, steps):
    return lambda: batch_data(TrainSetup(vocab=vocab, batch=batch, steps=steps, seed=SEED))


def _review_data():
    tokens = reviews(ScoringSetup(vocab=20_000, batch=32, steps=200, seed=SEED))
    labels = np.random.default_rng(SEED).integers(0, 2, (len(tokens), 1)).astype(np.float32)
    return tokens, labels


def _series_data():
    rng = np.random.default_rng(SEED)
    return (
        rng.standard_normal((256, 120, 7), np.float32),
        rng.standard_normal((256, 1), np.float32),
    )


def rows():
    """{key: Row}, in the report's order."""
    import keras

    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    table = [
        Row(
            "lm-lstm",
            "word LM, 2 x LSTM(128), V=5000, B=64, T=35",
            _word_lm("LSTM", 5000, 128),
            _lm_data(5000, 64, 35),
            "adam",
            sparse,
            bound="floor",
        ),
        Row(
            "lm-gru",
            "word LM, 2 x GRU(128), V=5000, B=64, T=35",
            _word_lm("GRU", 5000, 128),
            _lm_data(5000, 64, 35),
            "adam",
            sparse,
            bound="floor",
        ),
        Row(
            "imdb-masked",
            "IMDB Bi-LSTM(64) x 2, mask_zero=True, left-padded, B=32, T=200",
            _classifier(True),
            _review_data,
            "adam",
            "binary_crossentropy",
        ),
        Row(
            "imdb",
            "IMDB Bi-LSTM(64) x 2, no mask, B=32, T=200",
            _classifier(False),
            _review_data,
            "adam",
            "binary_crossentropy",
        ),
        Row(
            "timeseries",
            "time series, LSTM(32), 7 features, B=256, T=120",
            _time_series,
            _series_data,
            "adam",
            "mse",
        ),
        Row(
            "lm-650",
            "word LM, 2 x LSTM(650), dropout 0.5/0.5, V=10000, B=20, T=35",
            _word_lm("LSTM", 10_000, 650, dropout=0.5, recurrent_dropout=0.5),
            _lm_data(10_000, 20, 35),
            "sgd",
            sparse,
            torch=(10_000, 650, 2),
            bound="floor",
        ),
    ]
    return {row.key: row for row in table}


# -- building ---------------------------------------------------------------------------------
def recurrent_layers(model):
    """The recurrent layers of `model`, both directions of each `Bidirectional`."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.RNN):
            found.append(layer)
    return found


def build_pair(row):
    """({"ours": model, "keras": model}, max |ours - keras| of their outputs on two examples).

    Both compiled, with the same initial weights; raises unless ours holds only our layers and
    the other only Keras's built-in ones, of the same classes, with the same output shape."""
    import keras

    import keras_gated

    def build(name, module):
        keras.utils.set_random_seed(SEED)
        return keras.Sequential(row.layers(module), name=f"{row.key}_{name}")

    builtin = build("keras", keras.layers)
    models = {"ours": build("ours", keras_gated), "keras": builtin}
    models["ours"].set_weights(builtin.get_weights())
    ours, theirs = (recurrent_layers(models[n]) for n in ("ours", "keras"))
    if not ours or [type(a).__name__ for a in ours] != [type(b).__name__ for b in theirs]:
        raise AssertionError(f"{row.key}: recurrent layers differ: {ours} vs {theirs}")
    if not (
        all(isinstance(a, (keras_gated.LSTM, keras_gated.GRU)) for a in ours)
        and all(isinstance(b, (keras.layers.LSTM, keras.layers.GRU)) for b in theirs)
    ):
        raise AssertionError(f"{row.key}: ours {ours} or built-in {theirs} has the wrong layers")
    x, _ = row.data()
    outputs = {name: np.asarray(model(x[:2])) for name, model in models.items()}
    if outputs["ours"].shape != outputs["keras"].shape:
        raise AssertionError(
            f"{row.key}: output shapes differ: { {n: o.shape for n, o in outputs.items()} }"
        )
    for model in models.values():
        model.compile(optimizer=row.optimizer, loss=row.loss)
    models[row.bound] = bounding_model(row, build, builtin)
    return models, float(np.max(np.abs(outputs["ours"] - outputs["keras"])))


def bounding_model(row, build, builtin):
    """`row.bound`'s model, compiled: "floor" is the built-in model without its recurrent layers
    (which map (B, T, U) to (B, T, U) in a word LM), "ours-xla" ours under `jit_compile=True`."""
    import keras

    import keras_gated

    if row.bound == "ours-xla":
        model = build(row.bound, keras_gated)
        model.set_weights(builtin.get_weights())
        model.compile(optimizer=row.optimizer, loss=row.loss, jit_compile=True)
        return model
    kept = [layer for layer in row.layers(keras.layers) if not isinstance(layer, keras.layers.RNN)]
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(kept, name=f"{row.key}_floor")
    model.compile(optimizer=row.optimizer, loss=row.loss)
    return model


# -- measuring --------------------------------------------------------------------------------
def measure(row, rounds, warmup, steps, progress=None):
    """Times ours, the built-in and (lm-650) PyTorch on `row`; returns a result dict."""
    import keras

    models, diff = build_pair(row)
    x, y = row.data()
    systems = {name: (lambda m=model: m.train_on_batch(x, y)) for name, model in models.items()}
    if row.torch:
        import torch

        torch.set_num_threads(os.cpu_count())
        vocab, units, layers = row.torch  # untied, with a bias as Keras's Dense; SGD at 0.01
        systems["torch"] = torch_lm_step(x, y, vocab, units, layers, lr=0.01, seed=SEED)
    times = interleave(systems, rounds, warmup, repeat=steps, progress=progress)
    result = {
        "row": row,
        "times": times,
        "diff": diff,
        "gemms": recurrent_gemm_floor(models["keras"], x) if row.bound == "floor" else None,
        "xla": {name: bool(model.jit_compile) for name, model in models.items()},
        "layers": {
            name: sorted(
                {
                    type(layer).__module__.split(".")[0] + "." + type(layer).__name__
                    for layer in recurrent_layers(model)
                }
            )
            for name, model in models.items()
        },
    }
    del models, systems
    keras.backend.clear_session()
    gc.collect()
    return result


def recurrent_gemm_floor(model, x):
    """{"gflop": the matmul work of `model`'s recurrent layers in one training step (forward and
    backward, `benchmarks.recurrent_gemms.layer_gemms`), "rate": TensorFlow's best float32 GEMM
    rate over those of the shapes that span all B*T rows (FLOP/s; the per-step ones run
    slower), "seconds": gflop at that rate}: a lower bound on the time of an implementation
    built on TensorFlow's GEMMs here."""
    import tensorflow as tf

    from benchmarks.recurrent_gemms import flops, layer_gemms
    from benchmarks.timing import time_call

    batch, steps = x.shape[:2]
    gemms = [
        gemm
        for layer in recurrent_layers(model)
        for gemm in layer_gemms(
            type(layer.cell).__name__.removesuffix("Cell").lower(),
            batch,
            steps,
            layer.input.shape[-1],
            layer.units,
        )
    ]
    total = sum(flops(lhs, form, rhs) * calls for _, lhs, form, rhs, calls in gemms)
    product = tf.function(
        lambda a, b, form: tf.matmul(
            a, b, transpose_a=form == "a.T @ b", transpose_b=form == "a @ b.T"
        )
    )
    rate = 0.0
    for _, lhs, form, rhs, calls in set(gemms):
        if calls != 1:  # a per-step GEMM
            continue
        a, b = (tf.random.normal(shape) for shape in (lhs, rhs))
        product(a, b, form)
        call = lambda a=a, b=b, form=form: product(a, b, form)  # synchronous
        seconds = min(time_call(call) for _ in range(7))
        rate = max(rate, flops(lhs, form, rhs) / seconds)
    return {"gflop": total / 1e9, "rate": rate, "seconds": total / rate}


def targets(result):
    """[(target, measured, met, bound or reference)] for one row: `row.bound`'s time / the
    other's, and for `floor` rows the verdict and the matmul budget."""
    row, times = result["row"], result["times"]
    limits = [("keras", TARGETS.get(row.key, TARGET_RATIO), "built-in")]
    if "torch" in times:
        limits.append(("torch", TORCH_TARGET_RATIO, "PyTorch without dropout"))
    out = []
    for other, limit, what in limits:
        ratio = ratio_per_round(times["ours"], times[other])
        bound = ratio_per_round(times[row.bound], times[other])
        floor = row.bound == "floor"
        verdict = " (above the target)" if floor and bound.median > limit else ""
        if result["gemms"] and other == "keras":
            budget = summary([limit * o - f for o, f in zip(times[other], times["floor"])])
            gemms = result["gemms"]
            verdict += (
                f"; {limit:.2f} x built-in − `floor` leaves the recurrent layers "
                f"{report._ms(budget.median)} ms, their matmuls alone "
                f"({gemms['gflop']:.2f} GFLOP) take ≥ {report._ms(gemms['seconds'])} ms "
                f"at {gemms['rate'] / 1e9:.0f} GFLOP/s"
                + (": unreachable" if gemms["seconds"] > budget.median else "")
            )
        out.append(
            (
                f"{row.key}: ours / {what} <= {limit:.2f}",
                report._ratio(ratio),
                "yes" if ratio.median <= limit else "**no**",
                f"`{row.bound}` / {what} {report._ratio(bound)}{verdict}",
            )
        )
    return out


# -- the report -------------------------------------------------------------------------------
def markdown(results, options, command, load):
    """The BENCHMARKS.md section for `results`."""
    versions = machine.versions()
    threads = machine.thread_settings()
    xla = {result["xla"][name] for result in results for name in ("ours", "keras")}
    what = {
        "torch": lambda _: "torch.nn.LSTM, no dropout",
        "floor": lambda _: "none (the model without them)",
        "ours-xla": lambda layers: ", ".join(layers) + ", `jit_compile=True`",
    }
    rows = []
    for result in results:
        row, times = result["row"], result["times"]
        for i, (name, samples) in enumerate(times.items()):
            ratio = (
                "—" if name == "ours" else report._ratio(ratio_per_round(times["ours"], samples))
            )
            to_builtin = (
                "—" if name == "keras" else report._ratio(ratio_per_round(samples, times["keras"]))
            )
            layers = what.get(name, ", ".join)(result["layers"].get(name, []))
            rows.append(
                (
                    f"`{row.key}`" if i == 0 else "",
                    row.title if i == 0 else "",
                    f"`{name}`",
                    layers,
                    report._stat_ms(summary(samples)),
                    ratio,
                    to_builtin,
                )
            )
    target_rows = [t for result in results for t in targets(result)]
    lines = [
        "## Training a user's own model (benchmarks/user_models.py)",
        "",
        f"Generated by `{command}` ({'quick' if options.quick else 'full'} mode) on "
        f"{machine.cpu_model()}, {os.cpu_count()} logical cores "
        f"({', '.join(machine.cpu_flags()) or 'no vector extensions reported'}); "
        + ", ".join(f"{k} {versions[k]}" for k in ("tensorflow", "keras", "torch", "numpy"))
        + ". Each model is a `keras.Sequential` built twice from one definition (our "
        "`keras_gated.LSTM/GRU` or Keras's built-in layers, `use_cudnn` default; same initial "
        "weights), compiled with `model.compile(optimizer=..., loss=...)` and no "
        "`jit_compile` argument — Keras's default, which here left XLA "
        f"{'off' if xla == {False} else 'ON for some models'} (`model.jit_compile` "
        f"{sorted(xla)}) — and trained by `train_on_batch` on one fixed random batch. "
        "Threads: " + ", ".join(f"{k} {v}" for k, v in threads.items() if k != "onnxruntime") + ". "
        f"{options.rounds} interleaved rounds after {options.warmup} warm-up steps per "
        f"system; each round times {options.steps} step(s) of each system in turn. ms per "
        "step: median (min–max) of the round means; ratio: median (min–max) of the per-round "
        "ratios ours / this system (below 1: ours is faster). Load average before "
        f"{report._load(load['before'])}, after {report._load(load['after'])}; other busy "
        f"processes before: {report._busy(load['busy_before'])}; after: "
        f"{report._busy(load['busy_after'])}.",
        "",
        report._table(
            (
                "row",
                "model",
                "system",
                "recurrent layers",
                "ms per step",
                "ours / this",
                "this / built-in",
            ),
            rows,
        ),
        "",
        "Forward check on the same weights (two examples, inference): max |ours - built-in| "
        + ", ".join(f"`{r['row'].key}` {r['diff']:.1e}" for r in results)
        + ".",
        "",
        "Targets. The last column: for a word LM, `floor` (the same model without its "
        "recurrent layers) over the other system, the lowest ratio even a recurrence that cost "
        "nothing would give, and the matmul work of the recurrent layers against what the "
        "target leaves them; for the other rows, for reference, `ours-xla` (ours with the "
        "whole step compiled) over the other system.",
        "",
        report._table(("target", "measured", "met", "bound or reference"), target_rows),
    ]
    lines += report.shared_machine_warning(load)
    return "\n".join(lines) + "\n"


def parse_args(argv):
    keys = tuple(rows())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.user_models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"fewer rounds and steps ({QUICK}; full {FULL}); same model sizes",
    )
    parser.add_argument(
        "--rows", default=",".join(keys), help=f"comma-separated rows ({','.join(keys)})"
    )
    parser.add_argument("--rounds", type=int, help="timed rounds (overrides the mode's)")
    parser.add_argument("--warmup", type=int, help="untimed steps per system first")
    parser.add_argument("--steps", type=int, help="training steps per system per round")
    parser.add_argument("--out", help="also write the section to this file")
    options = parser.parse_args(argv)
    for key, value in (QUICK if options.quick else FULL).items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    options.rows = [r for r in options.rows.split(",") if r]
    unknown = set(options.rows) - set(keys)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {','.join(keys)}")
    return options


def log(line):
    print(line, file=sys.stderr, flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    options = parse_args(argv)
    load = {"before": machine.load_average(), "busy_before": machine.busy_processes()}
    table = rows()
    results = []
    for key in options.rows:
        log(f"{key}: {table[key].title}")
        results.append(
            measure(table[key], options.rounds, options.warmup, options.steps, progress=log)
        )
    load.update(after=machine.load_average(), busy_after=machine.busy_processes())
    command = shlex.join([os.path.relpath(sys.executable), "-m", "benchmarks.user_models", *argv])
    text = markdown(results, options, command, load)
    report.emit(text, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
