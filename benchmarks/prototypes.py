"""Candidate faster formulations of our recurrent layers, measured against the library's.

Nothing here is used by the library; `benchmarks.run --prototypes` times them side by side
with `ours` so the lead can decide what to adopt. Each prototype keeps the library layer's
weights and equations (they subclass `keras_gated.LSTM`/`GRU` and only replace
`inner_loop`), and `check_gradients` proves a prototype equal to the library layer,
forward and backward, before it is timed.

Adopted: `bptt` is the library's training path (keras_gated/layers/fused.py) and `bptt-xla`
is how `keras_gated.train` runs it (the whole step compiled by XLA, `TrainConfig.xla`), so
`ours` is the library version of `bptt-xla` and `ours-noxla` that of `bptt`. `xla`, `loop-pi1`, `ops-scan` and `keras-rnn` replace `inner_loop` wholesale, so they time variants of the
library's reference path (`scan_steps` over `cell.step`, automatic differentiation).

Prototypes (`PROTOTYPES`):
    bptt       a hand-written backward pass (`tf.custom_gradient` around the whole time loop):
               the backward loop carries only dh (and dc) and stores dA_t, the gradient of
               the gate pre-activations; the recurrent weight gradient is then ONE matmul
               dU = H_prev^T dA over all B*T rows, instead of a (U, G*U) product with K = B
               plus an accumulation of a (U, G*U) tensor at every step, which is what
               automatic differentiation of the loop does. The forward loop is the
               library's (same ops), storing the gate activations for the backward pass.
    bptt-jit   `bptt` with its forward loop and its backward loop each compiled by XLA
               (`tf.function(jit_compile=True)` inside the layer): the training step itself
               stays uncompiled, so this is a layer-internal change, unlike `bptt-xla`.
    bptt-pi1   `bptt` with `parallel_iterations=1` in both loops.
    bptt-xla   `bptt` with `maximum_iterations=T`, the whole training step compiled by XLA.
    xla        the library layer, with the whole training step compiled by XLA
               (`tf.function(jit_compile=True)`); the loop needs `maximum_iterations=T`,
               without which XLA refuses the gradient's accumulators (the library's
               `scan_steps` does not set it, so XLA fails on it as it is).
    loop-pi1   the library layer with `tf.while_loop(parallel_iterations=1)`.
    ops-scan   the library layer's reference path with `keras.ops.scan` as the time loop.
    keras-rnn  the same with Keras's backend loop (`keras.src.backend.rnn`, what
               `keras.layers.RNN` runs), the input projection still hoisted.

Gradients of `bptt` (LSTM, gate order i, f, g, o; m the recurrent mask, 1 when absent):
    dh_t = dy_t + dh'_t                       dh'_t carried from step t + 1 (dh_T given)
    dc_t = dc'_t + dh_t * o_t * (1 - tanh(c_t)^2)
    dA_t = [dc_t g_t i(1-i), dc_t c_{t-1} f(1-f), dc_t i_t (1-g^2), dh_t tanh(c_t) o(1-o)]
    dh'_{t-1} = (dA_t U^T) * m,   dc'_{t-1} = dc_t * f_t
    d xw_t = dA_t;   dU = sum_t (h_{t-1} * m)^T dA_t
GRU (reset_after=True; hu = (h_{t-1} m) U + b^h, n_t = h~_t):
    dz = dh (h_{t-1} - n) z(1-z);   dn = dh (1 - z)(1 - n^2);   dr = dn hu_h r(1-r)
    d xw_t = [dz, dr, dn];   dHU_t = [dz, dr, dn * r]
    dh'_{t-1} = dh z + (dHU_t U^T) * m;   dU = sum_t (h_{t-1} m)^T dHU_t;   db^h = sum_t dHU_t
"""

from typing import ClassVar

import keras
import tensorflow as tf

import keras_gated



# -- hand-written BPTT ------------------------------------------------------------------
def _rows(x):
    """(T, B, F) -> (T*B, F)."""
    return tf.reshape(x, (-1, x.shape[-1]))


def _stack(ta, like):
    out = ta.stack()
    out.set_shape([None, *like.shape])
    return out


def _loop_options(loop_options, steps, jit):
    options = dict(loop_options)
    bounded = options.pop("bounded", False) or jit
    return {**options, "maximum_iterations": steps if bounded else None}


def _compiled(functions, jit):
    """`functions` as they are, or each compiled by XLA on its own (`jit=True`)."""
    return [tf.function(f, jit_compile=True) if jit else f for f in functions]


def _constants(*tensors):
    """The tensors with no gradient path: an enclosing eager tape must not differentiate
    the (possibly XLA-compiled) loops, whose gradient is the hand-written one."""
    return [tf.stop_gradient(t) for t in tensors]


def lstm_sequence(xw, kernel, h0, c0, mask=None, jit=False, **loop_options):
    """LSTM over time with a hand-written gradient.

    Args:
        xw: (T, B, 4U) time-major projected inputs (x W + b).
        kernel: recurrent kernel U (U, 4U).
        h0, c0: (B, U).
        mask: recurrent dropout mask (B, U) or None (no gradient flows to it).
        jit: compile the forward loop and the backward loop each with XLA (inside an
            otherwise uncompiled training step).
        **loop_options: `tf.while_loop` arguments for both loops (`parallel_iterations`;
            `maximum_iterations` is set to T when `bounded=True` or `jit=True`, for XLA).

    Returns:
        ys (T, B, U), h_T, c_T.
    """
    m = mask

    def forward(xw, kernel, h0, c0):
        steps = tf.shape(xw)[0]
        xw_ta = tf.TensorArray(xw.dtype, size=steps, element_shape=xw.shape[1:]).unstack(xw)
        empty = lambda: tf.TensorArray(xw.dtype, size=steps)

        def body(t, h, c, ys, acts, cs):
            h_in = h if m is None else h * m
            a = xw_ta.read(t) + tf.matmul(h_in, kernel)
            a_i, a_f, a_g, a_o = tf.split(a, 4, axis=-1)
            i, f, g, o = tf.sigmoid(a_i), tf.sigmoid(a_f), tf.tanh(a_g), tf.sigmoid(a_o)
            c = f * c + i * g
            h = o * tf.tanh(c)
            return (t + 1, h, c, ys.write(t, h), acts.write(t, tf.concat([i, f, g, o], -1)),
                    cs.write(t, c))

        _, h_T, c_T, ys, acts, cs = tf.while_loop(
            lambda t, *_: t < steps, body, (0, h0, c0, empty(), empty(), empty()),
            **_loop_options(loop_options, steps, jit))
        return h_T, c_T, _stack(ys, h0), _stack(acts, xw[0]), _stack(cs, c0)

    def backward(dys, dh_T, dc_T, kernel, h0, c0, ys, acts, cs):
        steps = tf.shape(ys)[0]
        c_prev = tf.concat([c0[None], cs[:-1]], 0)
        dys_ta = tf.TensorArray(ys.dtype, size=steps).unstack(dys)

        def back(t, dh_next, dc_next, das):
            dh = dys_ta.read(t) + dh_next
            i, f, g, o = tf.split(acts[t], 4, axis=-1)
            tc = tf.tanh(cs[t])
            dc = dc_next + dh * o * (1.0 - tc * tc)
            da = tf.concat([dc * g * i * (1.0 - i), dc * c_prev[t] * f * (1.0 - f),
                            dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], -1)
            dh_prev = tf.matmul(da, kernel, transpose_b=True)
            if m is not None:
                dh_prev = dh_prev * m
            return t - 1, dh_prev, dc * f, das.write(t, da)

        _, dh0, dc0, das = tf.while_loop(
            lambda t, *_: t >= 0, back,
            (steps - 1, dh_T, dc_T, tf.TensorArray(ys.dtype, size=steps)),
            **_loop_options(loop_options, steps, jit))
        das = _stack(das, acts[0])
        h_prev = tf.concat([h0[None], ys[:-1]], 0)
        if m is not None:
            h_prev = h_prev * m
        d_kernel = tf.matmul(_rows(h_prev), _rows(das), transpose_a=True)
        return das, d_kernel, dh0, dc0

    forward, backward = _compiled((forward, backward), jit)

    @tf.custom_gradient
    def run(xw, kernel, h0, c0):
        h_T, c_T, ys, acts, cs = forward(*_constants(xw, kernel, h0, c0))

        def grad(dys, dh_T, dc_T):
            return backward(*_constants(dys, dh_T, dc_T, kernel, h0, c0, ys, acts, cs))

        return (ys, h_T, c_T), grad

    return run(xw, kernel, h0, c0)


def gru_sequence(xw, kernel, recurrent_bias, h0, mask=None, jit=False, **loop_options):
    """GRU (reset_after=True) over time with a hand-written gradient.

    Args:
        xw: (T, B, 3U) time-major x W + b^x. kernel: U (U, 3U). recurrent_bias: b^h (3U,).
        h0: (B, U). mask: recurrent dropout mask (B, U) or None.
        jit, **loop_options: as for `lstm_sequence`.

    Returns:
        ys (T, B, U), h_T.
    """
    m = mask

    def forward(xw, kernel, recurrent_bias, h0):
        steps = tf.shape(xw)[0]
        xw_ta = tf.TensorArray(xw.dtype, size=steps, element_shape=xw.shape[1:]).unstack(xw)
        empty = lambda: tf.TensorArray(xw.dtype, size=steps)

        def body(t, h, ys, saved):
            h_in = h if m is None else h * m
            hu = tf.matmul(h_in, kernel) + recurrent_bias
            x_z, x_r, x_h = tf.split(xw_ta.read(t), 3, axis=-1)
            u_z, u_r, u_h = tf.split(hu, 3, axis=-1)
            z = tf.sigmoid(x_z + u_z)
            r = tf.sigmoid(x_r + u_r)
            n = tf.tanh(x_h + r * u_h)
            h = z * h + (1.0 - z) * n
            return t + 1, h, ys.write(t, h), saved.write(t, tf.concat([z, r, n, u_h], -1))

        _, h_T, ys, saved = tf.while_loop(
            lambda t, *_: t < steps, body, (0, h0, empty(), empty()),
            **_loop_options(loop_options, steps, jit))
        return h_T, _stack(ys, h0), _stack(saved, tf.concat([h0, h0, h0, h0], -1))

    def backward(dys, dh_T, kernel, h0, ys, saved):
        steps = tf.shape(ys)[0]
        h_prev = tf.concat([h0[None], ys[:-1]], 0)
        dys_ta = tf.TensorArray(ys.dtype, size=steps).unstack(dys)
        empty = lambda: tf.TensorArray(ys.dtype, size=steps)

        def back(t, dh_next, dxs, dhus):
            dh = dys_ta.read(t) + dh_next
            z, r, n, u_h = tf.split(saved[t], 4, axis=-1)
            dz = dh * (h_prev[t] - n) * z * (1.0 - z)
            dn = dh * (1.0 - z) * (1.0 - n * n)
            dr = dn * u_h * r * (1.0 - r)
            dhu = tf.concat([dz, dr, dn * r], -1)
            dh_rec = tf.matmul(dhu, kernel, transpose_b=True)
            if m is not None:
                dh_rec = dh_rec * m
            return (t - 1, dh * z + dh_rec, dxs.write(t, tf.concat([dz, dr, dn], -1)),
                    dhus.write(t, dhu))

        _, dh0, dxs, dhus = tf.while_loop(
            lambda t, *_: t >= 0, back, (steps - 1, dh_T, empty(), empty()),
            **_loop_options(loop_options, steps, jit))
        like = saved[0, :, : 3 * h0.shape[-1]]
        dxs, dhus = _stack(dxs, like), _stack(dhus, like)
        h_in = h_prev if m is None else h_prev * m
        d_kernel = tf.matmul(_rows(h_in), _rows(dhus), transpose_a=True)
        return dxs, d_kernel, tf.reduce_sum(dhus, [0, 1]), dh0

    forward, backward = _compiled((forward, backward), jit)

    @tf.custom_gradient
    def run(xw, kernel, recurrent_bias, h0):
        h_T, ys, saved = forward(*_constants(xw, kernel, recurrent_bias, h0))

        def grad(dys, dh_T):
            return backward(*_constants(dys, dh_T, kernel, h0, ys, saved))

        return (ys, h_T), grad

    return run(xw, kernel, recurrent_bias, h0)


class _BpttMixin:
    """Replaces the library's loop by `lstm_sequence`/`gru_sequence` where they apply."""

    loop_options: ClassVar[dict] = {}

    def _fused_applies(self, mask):
        cell = self.cell
        plain = not (getattr(cell, "peephole", False) or getattr(cell, "layer_norm", False))
        return (mask is None and not self.go_backwards and plain
                and getattr(cell, "reset_after", True))

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fused_applies(mask):
            return super().inner_loop(sequences, initial_state, mask, training)
        m_x, m_h = self.dropout_masks(sequences, training)
        x = sequences if m_x is None else sequences * tf.expand_dims(m_x, 1)
        xw = tf.transpose(self.cell.project_inputs(x), (1, 0, 2))
        kernel = tf.convert_to_tensor(self.cell.recurrent_kernel)
        if isinstance(self.cell, keras_gated.LSTMCell):
            ys, h, c = lstm_sequence(xw, kernel, *initial_state, mask=m_h, **self.loop_options)
            states = [h, c]
        else:
            bias = tf.convert_to_tensor(self.cell.bias)[1]
            ys, h = gru_sequence(xw, kernel, bias, initial_state[0], mask=m_h,
                                 **self.loop_options)
            states = [h]
        return ys[-1], tf.transpose(ys, (1, 0, 2)), states


# -- loop variants ------------------------------------------------------------------------
def _scan_steps_variant(step, xw, initial_state, parallel_iterations=10, bounded=False):
    """`keras_gated.layers.recurrent.scan_steps` without masking, with `parallel_iterations` and, if `bounded`,
    `maximum_iterations=T` (XLA needs it to size the gradient's accumulators)."""
    xs = tf.transpose(xw, (1, 0, 2))
    steps = tf.shape(xs)[0]
    xs_ta = tf.TensorArray(xs.dtype, size=steps, element_shape=xs.shape[1:]).unstack(xs)

    def body(t, states, ys):
        out, new_states = step(xs_ta.read(t), list(states))
        return t + 1, new_states, ys.write(t, out)

    _, states, ys = tf.while_loop(lambda t, *_: t < steps, body,
                                  (0, list(initial_state), tf.TensorArray(xs.dtype, size=steps)),
                                  parallel_iterations=parallel_iterations,
                                  maximum_iterations=steps if bounded else None)
    ys = ys.stack()
    return ys[-1], tf.transpose(ys, (1, 0, 2)), list(states)


def _ops_scan(step, xw, initial_state):
    """The same loop with `keras.ops.scan` (time-major xs; carry = the states). On TensorFlow
    its per-step output must mirror the carry, so it stacks every state; h_t is the first."""

    def f(states, xw_t):
        _, new_states = step(xw_t, list(states))
        return tuple(new_states), tuple(new_states)

    states, seqs = keras.ops.scan(f, tuple(initial_state), tf.transpose(xw, (1, 0, 2)))
    return seqs[0][-1], tf.transpose(seqs[0], (1, 0, 2)), list(states)


def _keras_backend_rnn(step, xw, initial_state):
    """The same loop with Keras's backend loop, the one `keras.layers.RNN` runs (private API,
    fine in a benchmark): `keras.src.backend.rnn(step, inputs, states)`."""
    from keras.src import backend

    last, ys, states = backend.rnn(lambda xw_t, s: step(xw_t, list(s)), xw, list(initial_state))
    return last, ys, list(states)


LOOPS = {"while": _scan_steps_variant, "ops-scan": _ops_scan, "keras-rnn": _keras_backend_rnn}


class _LoopVariantMixin:
    loop: ClassVar[str] = "while"
    loop_options: ClassVar[dict] = {}

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if mask is not None or self.go_backwards:
            return super().inner_loop(sequences, initial_state, mask, training)
        m_x, m_h = self.dropout_masks(sequences, training)
        x = sequences if m_x is None else sequences * tf.expand_dims(m_x, 1)
        xw = self.cell.project_inputs(x)
        return LOOPS[self.loop](lambda xw_t, s: self.cell.step(xw_t, s, m_h), xw,
                                initial_state, **self.loop_options)


# prototype name -> (mixin, class attributes); `LAYERS` holds one layer class per cell
VARIANTS = {
    "bptt": (_BpttMixin, {}),
    "bptt-jit": (_BpttMixin, {"loop_options": {"jit": True}}),
    "bptt-xla": (_BpttMixin, {"loop_options": {"bounded": True}}),
    "xla": (_LoopVariantMixin, {"loop_options": {"bounded": True}}),
    "bptt-pi1": (_BpttMixin, {"loop_options": {"parallel_iterations": 1}}),
    "loop-pi1": (_LoopVariantMixin, {"loop_options": {"parallel_iterations": 1}}),
    "ops-scan": (_LoopVariantMixin, {"loop": "ops-scan"}),
    "keras-rnn": (_LoopVariantMixin, {"loop": "keras-rnn"}),
}
PROTOTYPES = tuple(VARIANTS)
LAYERS = {
    (name, cell): type(f"{name.title().replace('-', '')}{cell.upper()}", (mixin, base), attrs)
    for name, (mixin, attrs) in VARIANTS.items()
    for cell, base in (("lstm", keras_gated.LSTM), ("gru", keras_gated.GRU))
}


# -- models and steps ---------------------------------------------------------------------
def with_layers(model, layer_class):
    """Rebuilds `model` (an unbuilt `LanguageModel`) with `layer_class` recurrent layers."""
    model.rnn_layers = [
        layer_class(layer.units, recurrent_dropout=layer.recurrent_dropout, seed=layer.seed,
                    return_sequences=True, return_state=True, stateful=layer.stateful,
                    name=layer.name)
        for layer in model.rnn_layers
    ]
    return model


def prototype_model(name, setup, cell, dropout=True):
    """Our LM in the benchmark sizes with the prototype's layers, built."""
    d, r = (setup.dropout, setup.recurrent_dropout) if dropout else (0.0, 0.0)
    keras.utils.set_random_seed(setup.seed)
    model = keras_gated.LanguageModel(
        setup.vocab, cell=cell, embed_dim=setup.units, units=setup.units,
        num_layers=setup.layers, dropout=d, recurrent_dropout=r, embed_dropout=d,
        tie_weights=True, seed=setup.seed)
    if (name, cell) in LAYERS:
        with_layers(model, LAYERS[name, cell])
    model.build((None, None))
    return model


def build_prototype(name, setup, cell):
    """The training-step callable of prototype `name` (with dropout, as `ours`)."""
    from benchmarks.training import keras_step

    if name not in PROTOTYPES:
        raise ValueError(f"unknown prototype {name!r}; choose from {PROTOTYPES}")
    model = prototype_model(name, setup, cell)
    return keras_step(model, setup, jit_compile=name.endswith("xla"))


def check_gradients(name, cell, units=5, vocab=11, batch=3, steps=4, seed=1):
    """Max |prototype - library| over logits and all gradients, with dropout masks on.

    Both models get the same weights and the same dropout seeds, and each draws its first
    masks here, so the masks agree.
    """
    import numpy as np

    from benchmarks.training import TrainSetup

    setup = TrainSetup(vocab=vocab, units=units, batch=batch, steps=steps, seed=seed)
    ours = prototype_model("library", setup, cell)
    proto = prototype_model(name, setup, cell)
    proto.set_weights(ours.get_weights())
    x = np.random.default_rng(seed).integers(0, vocab, (batch, steps)).astype("int32")
    worst = 0.0
    for model, results in ((ours, []), (proto, [])):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_sum(logits * tf.cos(logits))
        results.append(logits)
        results.extend(tape.gradient(loss, model.trainable_variables))
        model._bench_results = results
    for a, b in zip(ours._bench_results, proto._bench_results):
        worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
    return worst
