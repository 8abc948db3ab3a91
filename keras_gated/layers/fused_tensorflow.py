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
`keras_gated.train`) the two functions are part of that one compilation. Compiled loops of
middle widths carry the batch as independent shards (`shards`), whose steps XLA's CPU
runtime runs side by side.
"""

import tensorflow as tf

# Iterations TensorFlow's executor may run ahead: the recurrence itself is sequential, but a
# step's input slice and output writes need not wait for the step before.
PARALLEL_ITERATIONS = 32
COMPILE_LOOPS = True  # False: the loops always run in the executor unless the step is compiled


def recurrence(loops, xs, masks, weights, states):
    """Runs `loops.step` over time-major `xs` (T, B, .) with the gradient of `loops.back`.

    masks: {name: (T, B, .)} (`fused.Loops`), constants of the loops. Returns the carried
    h_t (T, B, U) and the final states. Each loop carries `shards(...)` independent slices of
    the batch, a step of each per iteration.
    """
    names = list(weights)
    n_w = len(names)
    k = shards(xs, states[0], loops)

    def forward(xs, weights, states):
        length = tf.shape(xs)[0]
        xs_k, inputs_k = _split(xs, k, 1), _split_dict(loops.step_inputs(masks), k, 1)

        def body(t, states_k, outs_k):
            steps = [
                loops.step(x[t], {n: v[t] for n, v in inputs.items()}, s, weights)
                for x, inputs, s in zip(xs_k, inputs_k, states_k)
            ]
            outs_k = [
                [ta.write(t, r) for ta, r in zip(outs, rows)]
                for outs, (_, rows) in zip(outs_k, steps)
            ]
            return t + 1, [s for s, _ in steps], outs_k

        states_k = _split_list(states, k, 0)
        _, final_k, outs_k = tf.while_loop(
            lambda t, *_: t < length,
            body,
            (0, states_k, [_arrays(xs.dtype, length, loops.n_rows) for _ in range(k)]),
            maximum_iterations=length,  # XLA (jit_compile=True) needs the bound
            parallel_iterations=PARALLEL_ITERATIONS,
        )
        rows_k = [
            [_stack(ta, xs.shape[0], s[0]) for ta in outs] for outs, s in zip(outs_k, states_k)
        ]
        return _join(final_k, 0), _join(rows_k, 1)

    def backward(dys, d_final, weights, states0, rows):
        length = tf.shape(dys)[0]
        prev, factors, weights = loops.backward_inputs(states0, rows, masks, weights)
        dys_k, factors_k = _split(dys, k, 1), _split_dict(factors, k, 1)

        def back(t, d_states_k, outs_k):
            steps = [
                loops.back(dy[t], {n: f[t] for n, f in fs.items()}, d, weights)
                for dy, fs, d in zip(dys_k, factors_k, d_states_k)
            ]
            outs_k = [
                [ta.write(t, v) for ta, v in zip(outs, dx)] for outs, (dx, _) in zip(outs_k, steps)
            ]
            return t - 1, [d for _, d in steps], outs_k

        _, d_states0_k, outs_k = tf.while_loop(
            lambda t, *_: t >= 0,
            back,
            (
                length - 1,
                _split_list(list(d_final), k, 0),
                [_arrays(dys.dtype, length, loops.n_dx) for _ in range(k)],
            ),
            maximum_iterations=length,
            parallel_iterations=PARALLEL_ITERATIONS,
        )
        dx_parts = _join([[ta.stack() for ta in outs] for outs in outs_k], 1)
        dxs, d_weights = loops.gradients(prev, rows, dx_parts, weights)
        dxs.set_shape([*xs.shape[:2], dxs.shape[-1]])
        return dxs, d_weights, _join(d_states0_k, 0)

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


# Batch shards the compiled loops carry side by side, where a step's matmul is small enough
# that XLA's CPU runtime runs it on one thread, yet large enough to outweigh the shards' extra
# ops: the shards' steps are independent, and the runtime runs their ops concurrently on its
# thread pool. The same arithmetic, row by row. Measured, a 2-layer tagger's training step
# (B = 32, T = 50, 2 CPU cores; ad hoc, interleaved in one process), 2 shards / 1 chain:
# LSTM U = 32 1.12, 64 1.11, 80 1.16, 96 0.93, 128 0.90, 192 0.98, 256 1.00, 650 1.02;
# GRU 64 1.02, 128 0.96, 192 0.97, 256 1.02.
BATCH_SHARDS = 2
SHARDED_UNITS = (96, 192)  # the widths (inclusive) whose loops are sharded


def shards(xs, state, loops):
    """How many batch shards the loops over `xs` (T, B, .) carry: `BATCH_SHARDS` where they
    are compiled (`compiles`), U is in `SHARDED_UNITS`, the static B divides evenly and no
    recurrent dropout mask (one (B, U) constant of the chain) is applied; else 1."""
    batch, units = state.shape[0], state.shape[-1]
    return (
        BATCH_SHARDS
        if compiles(xs)
        and loops.recurrent_mask is None
        and SHARDED_UNITS[0] <= units <= SHARDED_UNITS[1]
        and batch is not None
        and batch % BATCH_SHARDS == 0
        else 1
    )


def _split(x, k, axis):
    """[x] or its k equal slices along `axis`."""
    return [x] if k == 1 else tf.split(x, k, axis=axis)


def _split_list(tensors, k, axis):
    """[shard j: [slice j of each tensor]]."""
    return [list(parts) for parts in zip(*(_split(t, k, axis) for t in tensors))]


def _split_dict(tensors, k, axis):
    """[shard j: {name: slice j}] (k empty dicts for none)."""
    if not tensors:
        return [{} for _ in range(k)]
    return [
        dict(zip(tensors, parts)) for parts in zip(*(_split(t, k, axis) for t in tensors.values()))
    ]


def _join(parts_k, axis):
    """[shard j: [tensor i]] -> [tensor i, the shards concatenated along `axis`]."""
    if len(parts_k) == 1:
        return list(parts_k[0])
    return [tf.concat(parts, axis) for parts in zip(*parts_k)]


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
