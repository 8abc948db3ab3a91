"""The fused recurrence's time loops and custom gradient on TensorFlow (see `fused.py`).

`tf.while_loop`s bounded by `maximum_iterations` (so a step compiled with XLA can hold them),
`tf.custom_gradient` around both: the forward loop's gradient is the backward loop.

Each loop (with the work before and after it) is compiled by XLA on its own
(`tf.function(jit_compile=True)`) when `compiles(xs)`: float32, in a graph on CPU whose time
axis is static, as in the step Keras traces for `fit`/`train_on_batch` under a plain
`compile()`, which leaves XLA off. XLA then fuses a step's small ops, whose per-op overhead
dominates in TensorFlow's executor at small widths. XLA compiles once per concrete shape: a
time axis left dynamic (Keras retraces so when batch lengths vary) would compile again for
every new length (~1 s per layer), so it stays in the executor, as do eager calls, GPUs and
bfloat16 (slower compiled on CPU: 84 against 41 ms for an LSTM(256) step). A dynamic batch
axis compiles once per batch size (a short last batch: once more). A user's own
`tf.function` without relaxed shapes traces, and so compiles, once per length.
`COMPILE_LOOPS = False` turns it off. Inside a step compiled whole (`jit_compile=True`,
`keras_gated.train`) the two functions are part of that one compilation.
"""

import tensorflow as tf

# Iterations TensorFlow's executor may run ahead: the recurrence itself is sequential, but a
# step's input slice and output writes need not wait for the step before.
PARALLEL_ITERATIONS = 32
COMPILE_LOOPS = True  # False: the loops always run in the executor unless the step is compiled


def recurrence(loops, xs, masks, weights, states):
    """Runs `loops.step` over time-major `xs` (T, B, .) with the gradient of `loops.back`.

    masks: {name: (T, B, .)} (`fused.Loops`), constants of the loops. Returns the carried
    h_t (T, B, U) and the final states.
    """
    names = list(weights)
    n_w = len(names)

    def forward(xs, weights, states):
        length = tf.shape(xs)[0]
        inputs = loops.step_inputs(masks)

        def body(t, states, outs):
            inputs_t = {k: v[t] for k, v in inputs.items()}
            states, rows = loops.step(xs[t], inputs_t, states, weights)
            return t + 1, states, [ta.write(t, r) for ta, r in zip(outs, rows)]

        _, final, outs = tf.while_loop(
            lambda t, *_: t < length,
            body,
            (0, states, _arrays(xs.dtype, length, loops.n_rows)),
            maximum_iterations=length,  # XLA (jit_compile=True) needs the bound
            parallel_iterations=PARALLEL_ITERATIONS,
        )
        return final, [_stack(ta, xs.shape[0], states[0]) for ta in outs]

    def backward(dys, d_final, weights, states0, rows):
        length = tf.shape(dys)[0]
        prev, factors, weights = loops.backward_inputs(states0, rows, masks, weights)

        def back(t, d_states, outs):
            factors_t = {k: f[t] for k, f in factors.items()}
            dx, d_states = loops.back(dys[t], factors_t, d_states, weights)
            return t - 1, d_states, [ta.write(t, d) for ta, d in zip(outs, dx)]

        _, d_states0, outs = tf.while_loop(
            lambda t, *_: t >= 0,
            back,
            (length - 1, list(d_final), _arrays(dys.dtype, length, loops.n_dx)),
            maximum_iterations=length,
            parallel_iterations=PARALLEL_ITERATIONS,
        )
        dxs, d_weights = loops.gradients(prev, rows, [ta.stack() for ta in outs], weights)
        dxs.set_shape([*xs.shape[:2], dxs.shape[-1]])
        return dxs, d_weights, d_states0

    if compiles(xs):
        forward, backward = (
            tf.function(f, jit_compile=True, autograph=False) for f in (forward, backward)
        )

    @tf.custom_gradient
    def run(xs, *args):
        # The loops are run on constants: their gradient is the hand-written one.
        weights = dict(zip(names, _constants(args[:n_w])))
        states = _constants(args[n_w:])
        xs = tf.stop_gradient(xs)
        final, rows = forward(xs, weights, states)

        def grad(dys, *d_final):
            dys, d_final = tf.stop_gradient(dys), _constants(d_final)
            dxs, d_weights, d_states0 = backward(dys, d_final, weights, states, rows)
            dxs, d_inputs = loops.input_gradients(xs, dxs, weights)
            return (dxs, *d_weights, *d_inputs, *d_states0)

        return (rows[0], *final), grad

    hs, *final = run(xs, *weights.values(), *states)
    return hs, list(final)


def compiles(xs):
    """Whether the loops over time-major `xs` (T, B, .) run XLA-compiled (module docstring):
    `COMPILE_LOOPS`, float32, in a graph, T static, no GPU."""
    return (
        COMPILE_LOOPS
        and xs.dtype == tf.float32
        and not tf.executing_eagerly()
        and xs.shape[0] is not None
        and not tf.config.list_logical_devices("GPU")
    )


def compiled(loop, xs):
    """`loop` (the inference path's time loop over time-major `xs` (T, B, .)), XLA-compiled on
    its own where the training loops are (`compiles`), else as it is. Measured with a 2-layer
    tagger's predict (B = 32, T = 50, 2 CPU cores; ad hoc, interleaved), ours / Keras's
    built-in, compiled / in the executor: LSTM U = 128 0.84 / 0.88, 650 0.95 / 0.98; GRU 128
    0.76 / 0.90, 650 1.08 / 1.15 (U <= 96 was compiled already). Before the cells took their
    gates' sigmoids in one call (`cells.gates.activate_gates`) the executor was faster from
    U = 128: XLA's CPU loop then ran three sigmoid fusions a step at 1.7x the cost of one."""
    return tf.function(loop, jit_compile=True, autograph=False) if compiles(xs) else loop


def _constants(tensors):
    return [tf.stop_gradient(t) for t in tensors]


def _arrays(dtype, length, count):
    return [tf.TensorArray(dtype, size=length) for _ in range(count)]


def _stack(ta, steps, like):
    """The (T, *like.shape) stack of `ta`, with T static where `steps` is."""
    out = ta.stack()
    out.set_shape([steps, *like.shape])
    return out
