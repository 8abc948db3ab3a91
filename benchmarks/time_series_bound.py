"""The time-series row's bound on TensorFlow: how fast a loop over time written directly in
TensorFlow trains the `user_models` time-series model, beside Keras's built-in LSTM and ours.

    .venv/bin/python -m benchmarks.time_series_bound            # ~2 min on 2 cores

Model: Input((T=120, D=7)) -> LSTM(32) (last output) -> Dense(1), mse, Adam, B=256; one
fixed batch; every system starts from the built-in model's initial weights. Systems:
    keras          keras.layers.LSTM, `model.compile()` defaults (XLA off on CPU)
    ours           keras_gated.LSTM, the same compile (its loops XLA-compiled on their own)
    ours-executor  ours with `fused_tensorflow.COMPILE_LOOPS = False` when traced
    ours-projected ours with x W for all steps before the loops, as a layer wider than
                   `recurrent.TRAINING_PER_STEP_MAX_UNITS` runs (ours projects x_t W per step)
    floor-xla      the model written with `tf.scan` and a `GradientTape`, the whole step in
                   one `tf.function(jit_compile=True)`, Keras's Adam
    floor-executor the same `tf.function` without XLA
    matmuls-*      the step's matrix products alone, in the order a loop must run them: the
                   input projection, T sequential h_{t-1} U (B, U) x (U, 4U) forward and T
                   sequential (B, 4U) x (4U, U) backward, and the weight gradients over all
                   B*T rows; no gate, loss or optimizer (executor and XLA): what any loop
                   over this shape costs at least on this machine
The floors use `floors.py`'s textbook step. Timed in interleaved rounds (`timing.interleave`);
ratios are the median of the per-round ratios system / keras.
"""

import argparse
import os
import sys

import numpy as np

from benchmarks import floors, machine, report
from benchmarks.timing import interleave, ratio_per_round, summary

B, T, D, U = 256, 120, 7, 32
ROUNDS, WARMUP, REPEAT = 7, 2, 3


def systems():
    import keras
    import tensorflow as tf

    import keras_gated
    from keras_gated.layers import fused_tensorflow, recurrent

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D), np.float32)
    y = rng.standard_normal((B, 1), np.float32)

    def model(rnn):
        m = keras.Sequential([keras.Input((T, D)), rnn.LSTM(U), keras.layers.Dense(1)])
        m.compile(optimizer="adam", loss="mse")
        return m

    keras_model = model(keras.layers)
    ours, executor, projected = (model(keras_gated) for _ in range(3))
    for m in (ours, executor, projected):
        m.set_weights(keras_model.get_weights())
    fused_tensorflow.COMPILE_LOOPS = False
    executor.train_on_batch(x, y)  # traced now, so its loops stay in the executor
    fused_tensorflow.COMPILE_LOOPS = True
    widest, recurrent.TRAINING_PER_STEP_MAX_UNITS = recurrent.TRAINING_PER_STEP_MAX_UNITS, 0
    projected.train_on_batch(x, y)  # traced now: x W before the loops
    recurrent.TRAINING_PER_STEP_MAX_UNITS = widest

    step = floors._step("lstm", tf)
    params = [tf.Variable(w) for w in keras_model.get_weights()]  # W, U, b, V, c
    xt, yt = tf.constant(x), tf.constant(y)

    def floor(xla):
        optimizer = keras.optimizers.Adam()
        optimizer.build(params)
        W, Ur, b, V, c = params

        def forward():
            xw = tf.einsum("tbd,dg->tbg", tf.transpose(xt, (1, 0, 2)), W) + b
            zeros = tf.zeros((B, U))
            _, hs = tf.scan(
                lambda acc, xw_t: step(acc[0], xw_t, Ur), xw, initializer=((zeros, zeros), zeros)
            )
            return hs[-1] @ V + c

        @tf.function(jit_compile=xla)
        def train():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((forward() - yt) ** 2)
            optimizer.apply(tape.gradient(loss, params), params)
            return loss

        return lambda: float(train())

    def matmuls(xla):
        rng = np.random.default_rng(1)
        x2 = tf.constant(rng.standard_normal((T * B, D), np.float32))
        W = tf.constant(rng.standard_normal((D, 4 * U), np.float32))
        Ur = tf.constant((rng.standard_normal((U, 4 * U)) / np.sqrt(U)).astype(np.float32))

        def loop(body, init):
            _, out = tf.while_loop(
                lambda t, _: t < T, lambda t, s: (t + 1, body(s)), (0, init), maximum_iterations=T
            )
            return out

        @tf.function(jit_compile=xla)
        def run():
            xw = x2 @ W
            h = loop(lambda h: tf.tanh((h @ Ur)[:, :U]), tf.zeros((B, U)))
            d = loop(lambda d: tf.tile(tf.matmul(d, Ur, transpose_b=True), [1, 4]), xw[:B])
            dU = tf.matmul(xw[:, :U], xw, transpose_a=True)
            dW = tf.matmul(x2, xw, transpose_a=True)
            return h, d, dU, dW

        return lambda: [t.numpy() for t in run()]

    return {
        "keras": lambda: keras_model.train_on_batch(x, y),
        "ours": lambda: ours.train_on_batch(x, y),
        "ours-executor": lambda: executor.train_on_batch(x, y),
        "ours-projected": lambda: projected.train_on_batch(x, y),
        "floor-xla": floor(True),
        "floor-executor": floor(False),
        "matmuls-executor": matmuls(False),
        "matmuls-xla": matmuls(True),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.time_series_bound",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", help="also write the section to this file")
    options = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    before = machine.load_average()
    timed = systems()
    times = interleave(timed, ROUNDS, WARMUP, repeat=REPEAT)
    rows = [
        (
            name,
            report._ms(summary(times[name]).median),
            report._ratio(ratio_per_round(times[name], times["keras"])),
        )
        for name in timed
    ]
    text = (
        "\n".join(
            [
                "### The time-series row's bound (benchmarks/time_series_bound.py)",
                "",
                f"`python -m benchmarks.time_series_bound` on {machine.cpu_model()}, "
                f"{os.cpu_count()} logical cores; LSTM({U}) on (B={B}, T={T}, D={D}) -> Dense(1), "
                f"one training step; {ROUNDS} rounds x {REPEAT} steps after {WARMUP} warm-up; load "
                f"average before {report._load(before)}, after {report._load(machine.load_average())}.",
                "",
                report._table(("system", "ms per step", "system / keras"), rows),
            ]
        )
        + "\n"
    )
    report.emit(text, options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
