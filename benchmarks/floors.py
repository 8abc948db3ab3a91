"""Floor models for `backend_table`: the same tagger written directly in each backend's own
library, without Keras, to bound what a Keras layer can reach there.

    Input (B, T, D) -> 2 x LSTM/GRU(U) over time -> Dense(TAGS); loss mse; Adam (lr 1e-3)

- `jax_systems`: `lax.scan` over time, `jax.value_and_grad`, a hand-written Adam, the whole
  step under one `jax.jit` — the program Keras's JAX trainer builds, minus Keras.
- `jax_keras_systems`: the same `lax.scan` as a Keras layer (`ScanLayer`), trained and
  called by Keras's compiled JAX step as our layers are: what a Keras layer whose loop is
  JAX's own autodiff of `lax.scan` costs under Keras's trainer. `backend_table` times both.
- `tensorflow_systems`: `tf.scan` in a `tf.function(jit_compile=True)` (XLA) with a
  `GradientTape` and a hand-written Adam.
- `torch_keras_systems`: PyTorch's own `nn.LSTM/GRU` inside a Keras model
  (`keras.layers.TorchModuleWrapper` -> `Dense`), compiled and called as the Keras models
  are: the same ATen kernel as `nn`, under Keras's torch trainer.

Each returns {"floor-train": step, "floor-predict": forward} (the Keras-layer floor
"keraslayer-train" and "keraslayer-predict"); the weights are random (these
time the computation, they do not reproduce the other models' numbers). The recurrences are
the textbook ones with Keras's gate order (LSTM i, f, g, o; GRU z, r, h with reset after).
"""

import types

import numpy as np

LR, BETA1, BETA2, EPSILON = 1e-3, 0.9, 0.999, 1e-7  # Keras's Adam defaults
GATES = {"lstm": 4, "gru": 3}


def _weights(cell, units, features, tags, seed=0):
    """[(W (D, GU), U (U, GU), b (GU,)) x 2] + [(V (U, TAGS), c (TAGS,))], float32."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]

    def draw(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

    layers = [
        (draw(d, G * units), draw(units, G * units), np.zeros(G * units, np.float32))
        for d in (features, units)
    ]
    return [*layers, (draw(units, tags), np.zeros(tags, np.float32))]


def _step(cell, ops):
    """`step(h_or_hc, xw_t, U)` for the cell, written with `ops` (a module with sigmoid,
    tanh, matmul, split(a, n, axis=): `tf`, `keras.ops`): returns (new carry, h_t)."""

    def lstm(carry, xw_t, U):
        h, c = carry
        i, f, g, o = ops.split(xw_t + ops.matmul(h, U), 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return (h, c), h

    def gru(carry, xw_t, U):
        (h,) = carry
        x_z, x_r, x_h = ops.split(xw_t, 3, axis=-1)
        h_z, h_r, h_h = ops.split(ops.matmul(h, U), 3, axis=-1)
        z, r = ops.sigmoid(x_z + h_z), ops.sigmoid(x_r + h_r)
        h = z * h + (1 - z) * ops.tanh(x_h + r * h_h)
        return (h,), h

    return {"lstm": lstm, "gru": gru}[cell]


def jax_systems(cell, units, x, y):
    import jax
    import jax.numpy as jnp

    step = _step(
        cell,
        types.SimpleNamespace(
            sigmoid=jax.nn.sigmoid, tanh=jnp.tanh, matmul=jnp.matmul, split=jnp.split
        ),
    )
    B, T, D = x.shape
    params = [tuple(map(jnp.asarray, p)) for p in _weights(cell, units, D, y.shape[-1])]
    x, y = jnp.asarray(x), jnp.asarray(y)

    def forward(params):
        seq = jnp.swapaxes(x, 0, 1)  # (T, B, D)
        for W, U, b in params[:-1]:
            carry = tuple(jnp.zeros((B, units)) for _ in range(2 if cell == "lstm" else 1))
            _, seq = jax.lax.scan(lambda c, xw_t, U=U: step(c, xw_t, U), carry, seq @ W + b)
        V, c = params[-1]
        return jnp.swapaxes(seq, 0, 1) @ V + c

    def loss(params):
        return jnp.mean((forward(params) - y) ** 2)

    @jax.jit
    def train(params, m, v, t):
        value, grads = jax.value_and_grad(loss)(params)
        t = t + 1
        m = jax.tree.map(lambda m, g: BETA1 * m + (1 - BETA1) * g, m, grads)
        v = jax.tree.map(lambda v, g: BETA2 * v + (1 - BETA2) * g * g, v, grads)
        rate = LR * jnp.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        params = jax.tree.map(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + EPSILON), params, m, v)
        return params, m, v, t, value

    state = [
        params,
        jax.tree.map(jnp.zeros_like, params),
        jax.tree.map(jnp.zeros_like, params),
        jnp.float32(0),
    ]
    predict = jax.jit(forward)

    def train_call():
        params, m, v, t, value = train(*state)
        state[:] = [params, m, v, t]
        return float(value)

    return {"floor-train": train_call, "floor-predict": lambda: np.asarray(predict(state[0]))}


def jax_keras_systems(cell, units, x, y):
    """The JAX floor's `lax.scan` inside Keras: Input -> 2 x `ScanLayer` -> Dense, compiled
    as the tagger is (`compile(optimizer="adam", loss="mse")`), with `_weights`."""
    import jax
    import keras
    from keras import ops

    step = _step(cell, ops)
    weights = _weights(cell, units, x.shape[-1], y.shape[-1])

    class ScanLayer(keras.layers.Layer):
        """(B, T, D) -> (B, T, U): `_step` over time by `jax.lax.scan`, autodiff by JAX."""

        def __init__(self, W, U, b):
            super().__init__()
            self.W, self.U, self.b = (
                self.add_weight(w.shape, initializer="zeros") for w in (W, U, b)
            )
            for variable, value in zip((self.W, self.U, self.b), (W, U, b)):
                variable.assign(value)

        def call(self, seq):
            xw = ops.matmul(ops.transpose(seq, (1, 0, 2)), self.W) + self.b  # (T, B, GU)
            B = ops.shape(seq)[0]
            carry = tuple(ops.zeros((B, units)) for _ in range(2 if cell == "lstm" else 1))
            _, hs = jax.lax.scan(lambda c, xw_t: step(c, xw_t, self.U.value), carry, xw)
            return ops.transpose(hs, (1, 0, 2))

    V, c = weights[-1]
    dense = keras.layers.Dense(y.shape[-1])
    model = keras.Sequential(
        [keras.Input(x.shape[1:]), *(ScanLayer(*w) for w in weights[:-1]), dense]
    )
    dense.set_weights([V, c])
    model.compile(optimizer="adam", loss="mse")
    return {
        "keraslayer-train": lambda: model.train_on_batch(x, y),
        "keraslayer-predict": lambda: model.predict_on_batch(x),
    }


def tensorflow_systems(cell, units, x, y):
    import tensorflow as tf

    step = _step(cell, tf)
    B, T, D = x.shape
    params = [tf.Variable(w) for p in _weights(cell, units, D, y.shape[-1]) for w in p]
    slots = [(tf.Variable(tf.zeros_like(p)), tf.Variable(tf.zeros_like(p))) for p in params]
    t = tf.Variable(0.0)
    x, y = tf.constant(x), tf.constant(y)

    def forward():
        seq = tf.transpose(x, (1, 0, 2))
        for k in range(2):
            W, U, b = params[3 * k : 3 * k + 3]
            carry = tuple(tf.zeros((B, units)) for _ in range(2 if cell == "lstm" else 1))
            xw = tf.einsum("tbd,dg->tbg", seq, W) + b
            seq = tf.scan(
                lambda acc, xw_t, U=U: step(acc[0], xw_t, U),
                xw,
                initializer=(carry, tf.zeros((B, units))),
            )[1]
        V, c = params[-2:]
        return tf.einsum("tbu,uk->btk", seq, V) + c

    @tf.function(jit_compile=True)
    def train():
        with tf.GradientTape() as tape:
            value = tf.reduce_mean((forward() - y) ** 2)
        grads = tape.gradient(value, params)
        t.assign_add(1.0)
        rate = LR * tf.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        for p, g, (m, v) in zip(params, grads, slots):
            m.assign(BETA1 * m + (1 - BETA1) * g)
            v.assign(BETA2 * v + (1 - BETA2) * g * g)
            p.assign_sub(rate * m / (tf.sqrt(v) + EPSILON))
        return value

    predict = tf.function(forward, jit_compile=True)
    return {"floor-train": lambda: float(train()), "floor-predict": lambda: predict().numpy()}


def torch_keras_systems(cell, units, x, y):
    import keras
    import torch
    from torch import nn

    class Sequence(nn.Module):  # nn.LSTM returns (output, states); Keras wants the output
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cell.upper())(x.shape[-1], units, num_layers=2, batch_first=True)

        def forward(self, inputs):
            return self.rnn(inputs)[0]

    torch.manual_seed(0)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.TorchModuleWrapper(Sequence()),
            keras.layers.Dense(y.shape[-1]),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return {
        "floor-train": lambda: model.train_on_batch(x, y),
        "floor-predict": lambda: model.predict_on_batch(x),
    }


def jax_both_systems(cell, units, x, y):
    return {**jax_systems(cell, units, x, y), **jax_keras_systems(cell, units, x, y)}


SYSTEMS = {"jax": jax_both_systems, "tensorflow": tensorflow_systems, "torch": torch_keras_systems}
KERAS_LAYER_WHAT = "floor: the same `lax.scan` as a Keras layer, Keras's trainer"
WHAT = {
    "jax": "floor: hand-written `lax.scan`, one `jax.jit` step",
    "tensorflow": "floor: hand-written `tf.scan`, XLA (`jit_compile=True`)",
    "torch": "floor: torch.nn in Keras (TorchModuleWrapper)",
}
