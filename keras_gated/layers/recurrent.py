"""Sequence layers over the cells, with variational dropout and a hoisted input projection.

For a sequence x (B, T, D) a layer computes
    m_x ~ Bernoulli(1 - dropout) / (1 - dropout)              (B, D), once per call
    m_h ~ Bernoulli(1 - recurrent_dropout) / (1 - recurrent_dropout)   (B, U), once per call
    M_U ~ Bernoulli(1 - weight_dropout) / (1 - weight_dropout)  (U, G*U), once per call
    U~ = U * M_U                                              the recurrent kernel this call uses
    XW = cell.project_inputs(x * m_x)                         (B, T, G*U), one matmul for all t
    h_t, states_t = cell.step(XW[:, t], states_{t-1}, m_h)    for t = 1..T, with U~ for U
(on TensorFlow and JAX up to `PER_STEP_MAX_UNITS` at inference and
`TRAINING_PER_STEP_MAX_UNITS` on the fused training path, x_t W is computed inside each step
instead: the same equations, faster loops there)
so each sequence sees one input mask and one recurrent mask, the same at every time step
(Gal & Ghahramani 2016, the "tied" variant: one m_h for all gates, which keeps the recurrent
matmul fused), and the whole batch one DropConnect mask on U (Wan et al. 2013; AWD-LSTM's
`WeightDrop`, Merity et al. 2017). With zoneout (`cells/zoneout.py`) every step's masks
d_t (T, B, U) are drawn before the loop as well (one (B, U) per call with
`zoneout_variational`), so the loop itself draws nothing. Masks apply only when
`training=True`.
"""

import contextlib
import inspect

import keras
from keras import ops, tree

from keras_gated import checks
from keras_gated.keras_private import create_state_variables
from keras_gated.layers import fused


def cell_property(name):
    """A read-only attribute of the layer that is its cell's, as Keras's layers expose them."""
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


def _cell_arg_names(cell_class):
    names = set()
    for klass in cell_class.__mro__:
        if klass is keras.layers.Layer:
            break
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind == p.POSITIONAL_OR_KEYWORD}
    return names


def cudnn_path():
    """The `cudnn` module (GPU delegation) on the TensorFlow backend, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    from keras_gated.layers import cudnn

    return cudnn


def scan_steps(step, xs, initial_state, mask=None, go_backwards=False, zero_output_for_mask=False):
    """Runs `step(xw_t, states) -> (out_t, states)` over time, on any Keras backend.

    Args:
        xs: (T, B, G*U) projected inputs, time-major (projecting x (T, B, D) transposes the
            narrower tensor), or a structure of time-major tensors that `step` receives
            sliced at t (inputs and per-step zoneout masks).
        initial_state: list of (B, U).
        mask: optional (B, T) bool; a masked step keeps the previous states and repeats the
            previous output (zeros if `zero_output_for_mask`), as Keras's RNN does.
        go_backwards: process time in reverse; outputs stay in processing order (as Keras).

    Returns:
        last_output (B, U), outputs (B, T, U), final states.
    """
    ms = None if mask is None else ops.expand_dims(ops.transpose(ops.cast(mask, "bool")), -1)
    if go_backwards:
        xs = tree.map_structure(lambda x: ops.flip(x, 0), xs)
        ms = None if ms is None else ops.flip(ms, 0)

    def body(carry, inputs):
        states, prev_out = carry
        xw_t, m_t = inputs if ms is not None else (inputs, None)
        out, new_states = step(xw_t, list(states))
        if m_t is None:
            return (new_states, prev_out), out
        new_states = [ops.where(m_t, n, s) for n, s in zip(new_states, states)]
        out = ops.where(m_t, out, prev_out)
        emitted = ops.where(m_t, out, ops.zeros_like(out)) if zero_output_for_mask else out
        return (new_states, out), emitted

    init = (list(initial_state), ops.zeros_like(initial_state[0]))
    (states, _), ys = scan(body, init, xs if ms is None else (xs, ms))
    return ys[-1], ops.transpose(ys, (1, 0, 2)), list(states)


def scan(f, init, xs):
    """`keras.ops.scan(f, init, xs)`; on TensorFlow a bounded `tf.while_loop` instead.

    Keras's TensorFlow `scan` leaves its loop unbounded, which XLA cannot differentiate
    (`jit_compile=True` needs `maximum_iterations`). Here each output y_t has the dtype of
    init's first leaf.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.scan(f, init, xs)
    import tensorflow as tf

    flat = tf.nest.flatten(xs)
    static_steps = flat[0].shape[0]
    steps = tf.shape(flat[0])[0] if static_steps is None else static_steps
    arrays = [
        tf.TensorArray(x.dtype, size=steps, element_shape=x.shape[1:]).unstack(x) for x in flat
    ]
    ys = tf.TensorArray(tf.nest.flatten(init)[0].dtype, size=steps)

    def body(t, carry, ys):
        carry, y = f(carry, tf.nest.pack_sequence_as(xs, [a.read(t) for a in arrays]))
        return t + 1, carry, ys.write(t, y)

    _, carry, ys = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (0, init, ys),
        maximum_iterations=steps,  # XLA (jit_compile=True) needs the bound
    )
    ys = ys.stack()
    ys.set_shape([static_steps, *ys.shape[1:]])  # keep a static T (Keras's built-ins do)
    return carry, ys


# The widest layer whose inference projects its inputs step by step (TensorFlow and JAX).
# Both CPU loops run slower over the projected inputs (T, B, G*U) than over x (T, B, D)
# with x_t W inside the step, up to moderate widths. Measured on 2 CPU cores, B = 32,
# T = 50, D = U, ms per call, x_t W in the step / projected before the loop: plain JAX, an
# LSTM: U = 32 0.53 / 1.05, 128 5.75 / 7.09, 650 103 / 78; a 2-layer tagger's predict on
# TensorFlow (separate runs; loops compiled at U = 32, not at 128): LSTM 32 2.5 / 4.7,
# 128 13.3 / 18.9; GRU 32 2.4 / 5.0, 128 11.3 / 16.4.
PER_STEP_MAX_UNITS = 128
# The same for the fused training path, which saves each step's activations for its backward
# loop, so the projected inputs are a smaller share of what it writes. Training steps on 2 CPU
# cores, ours / Keras's built-in, x_t W in the step / projected before the loop, a 2-layer
# LSTM tagger (B = 32, T = 50, D = 64): JAX U = 32 0.93 / 1.14, 64 0.91 / 0.97,
# 128 0.77 / 0.68; TensorFlow 32 0.48 / 0.49, 64 0.57 / 0.62, 128 0.87 / 0.84; the
# time-series model (LSTM(32), B = 256, T = 120, D = 7): JAX 1.01 / 1.27, TensorFlow
# 1.12 / 1.12.
TRAINING_PER_STEP_MAX_UNITS = 64


def projects_per_step(units, training):
    """Whether the loops compute x_t W inside each step rather than for all steps at once:
    at inference up to `PER_STEP_MAX_UNITS`, on the fused training path
    (`fused.fused_recurrence(project=True)`) up to `TRAINING_PER_STEP_MAX_UNITS`; not on
    torch, where ATen or a Python loop runs. The same equations either way."""
    widest = TRAINING_PER_STEP_MAX_UNITS if training else PER_STEP_MAX_UNITS
    return keras.backend.backend() in ("jax", "tensorflow") and units <= widest


class Recurrent(keras.layers.RNN):
    """Base of `SimpleRNN`, `LSTM`, `GRU`: a cell run over (B, T, D) sequences.

    Subclasses set `cell_class`; the constructor takes the cell's arguments (see the cell:
    `units`, activations, `use_bias`, initializers, regularizers, constraints, `dropout`,
    `recurrent_dropout`, `seed`, ...) and:

    Args:
        weight_dropout: DropConnect rate p_U in [0, 1) on the recurrent kernel U, one mask
            (U, G*U) per call, shared by the whole batch and every step. Default 0.
        return_sequences: return all outputs (B, T, U) instead of the last (B, U). Default False.
        return_state: also return the final states (each (B, U)). Default False.
        go_backwards: process the sequence in reverse. Default False.
        stateful: carry the final states of a batch into the next call. Default False.
        unroll: accepted for Keras compatibility; the loop is a compiled scan either way and
            the results are the same (Keras's rule holds: it needs a fixed time axis).
            Default False.
        use_cudnn: `LSTM` and `GRU` only, as Keras's: "auto" delegates to cuDNN when it
            computes the call exactly, False never, True always (a ValueError where it
            cannot, as Keras's). Default "auto".
        zero_output_for_mask: a masked step outputs zeros instead of repeating the previous
            output (Keras's `RNN` argument; `Bidirectional` sets it to `return_sequences`).
            Default False.
        activity_regularizer: as any Keras layer's, on the output. Default None.

    Call arguments: `inputs` (B, T, D); `initial_state` list of (B, U) (LSTM: [h, c]);
    `mask` (B, T) bool; `training` enables dropout.

    Two paths compute the same function. The reference path runs `cell.step` over time
    (`scan_steps`: `keras.ops.scan`, so `jax.lax.scan` on JAX and a Python loop on torch; a
    bounded `tf.while_loop` on TensorFlow) and is differentiated automatically. On every
    backend, when training (with or without a `mask`, in either direction), with a plain
    library cell (`SimpleRNNCell`, `IndRNNCell`, `GRUCell`, `LSTMCell` with a bias,
    Keras's default activations (tanh, sigmoid, relu or linear for `SimpleRNNCell` and
    `IndRNNCell`) and no `peephole` or `layer_norm`, zoneout allowed; not a subclass), the layer
    takes the fused path instead (`fused.fused_recurrence`): the same forward equations with a
    hand-written backward pass, faster to train, on the same weights and dropout masks. The
    choice is automatic; tests prove the two paths equal (outputs, states and all gradients).
    On a GPU, a call cuDNN computes exactly (plain LSTM or GRU(reset_after=True), no recurrent
    dropout, no mask) runs cuDNN's fused kernel, as Keras's built-in layers do (`cudnn.py`);
    on torch, a call ATen computes exactly (the same calls, and a tanh `SimpleRNNCell`) runs
    ATen's whole-sequence kernel, in training and inference (`aten.py`). `IndRNN` never goes
    to either: their kernels multiply by a full (U, U) recurrent matrix.
    """

    cell_class = None
    takes_use_cudnn = False  # `LSTM` and `GRU`, as Keras's

    def __init__(
        self,
        units,
        weight_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        use_cudnn = kwargs.pop("use_cudnn", "auto") if self.takes_use_cudnn else "auto"
        if use_cudnn not in ("auto", True, False):
            raise ValueError(
                f"`use_cudnn` must be one of 'auto', True, False, got use_cudnn={use_cudnn!r}"
            )
        cell_names = _cell_arg_names(self.cell_class)
        cell_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in cell_names}
        cell = self.cell_class(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="cell",
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        self.weight_dropout = checks.rate("weight_dropout", weight_dropout)
        if self.takes_use_cudnn:  # Keras's `Bidirectional` copies it when it is there
            self.use_cudnn = use_cudnn
        cudnn = cudnn_path()
        if cudnn and use_cudnn and cudnn.applies(self.cell) and cudnn.gpu_available():
            self.supports_jit = False  # cuDNN kernels are not XLA-compatible (as Keras's layers)

    units = cell_property("units")
    activation = cell_property("activation")
    use_bias = cell_property("use_bias")
    dropout = cell_property("dropout")
    recurrent_dropout = cell_property("recurrent_dropout")
    seed = cell_property("seed")

    def build(self, sequences_shape, initial_state_shape=None):
        self._check_rank(sequences_shape)
        super().build(sequences_shape, initial_state_shape)

    def _create_state_variables(self, batch_size):
        create_state_variables(self, batch_size)  # one per replica under a strategy

    @property
    def variables(self):
        """Keras's list, plus a stateful layer's carried states (not weights: neither saved
        nor in `get_weights`). A JAX step runs statelessly on the variables its model lists
        and writes back only those; Keras's `RNN` leaves the states out, so on JAX its
        compiled steps (`fit`, `predict`) silently never carry state (docs/keras_upstream.md, 6)."""
        states = self.states if self.stateful and self.states is not None else []
        return super().variables + [s for s in states if isinstance(s, keras.Variable)]

    def _check_rank(self, shape):
        if len(shape) != 3:
            raise ValueError(
                f"`inputs` to {self.name} must have rank 3 (batch, time, features), "
                f"got shape {tuple(shape)}"
            )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_rank(sequences.shape)
        if initial_state is not None:
            self._check_initial_state(initial_state, sequences)
        if mask is not None:
            self._check_mask(mask, sequences)
        # At inference no draws from the dropout stream (`cell.without_dropout_masks`).
        with contextlib.nullcontext() if training else self.cell.without_dropout_masks():
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )

    def _check_initial_state(self, initial_state, sequences):
        states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
        want = len(self.state_size)
        if len(states) != want:
            raise ValueError(
                f"`initial_state` of {self.name} must hold {want} tensor(s) "
                f"({'[h, c]' if want == 2 else '[h]'}), got {len(states)}"
            )
        batch = sequences.shape[0]
        for s in states:
            shape = tuple(s.shape)
            if (
                len(shape) != 2
                or shape[-1] != self.units
                or (batch is not None and shape[0] is not None and shape[0] != batch)
            ):
                raise ValueError(
                    f"`initial_state` of {self.name} must have shape ({batch}, {self.units}), "
                    f"got {shape}"
                )

    def _check_mask(self, mask, sequences):
        masks = mask if isinstance(mask, (list, tuple)) else [mask]
        want = tuple(sequences.shape[:2])
        for m in masks:
            if m is None:
                continue
            shape = tuple(m.shape)
            if len(shape) != 2 or any(
                a is not None and b is not None and a != b for a, b in zip(shape, want)
            ):
                raise ValueError(
                    f"`mask` of {self.name} must have shape (batch, time) = {want}, got {shape}"
                )

    def dropout_masks(self, sequences, initial_state, training):
        """The variational masks for one call: (m_x (B, D) or None, m_h (B, U) or None), the
        cell's (`DropoutRNNCell`: made once per call by `keras.layers.RNN.call`)."""
        if not training:
            return None, None
        m_x = self.cell.get_dropout_mask(sequences[:, 0, :]) if self.dropout > 0.0 else None
        m_h = (
            self.cell.get_recurrent_dropout_mask(initial_state[0])
            if self.recurrent_dropout > 0.0
            else None
        )
        return m_x, m_h

    def zoneout_masks(self, xs, initial_state, training):
        """The zoneout masks for one call ({state: d}, `cells/zoneout.py`), or None (not
        training, or no zoneout): fresh per step, drawn before the loop, {state: (T, B, U)};
        with `zoneout_variational` the call's one mask per sequence, {state: (B, U)}."""
        if not (training and self.cell.has_zoneout()):
            return None
        if self.cell.zoneout_variational:
            return self.cell.sequence_zoneout_masks(initial_state[0])
        return self.cell.draw_zoneout_masks(tuple(ops.shape(xs)[:2]))

    def call_weights(self, training):
        """This call's step weights: the cell's `step_weights` as tensors, read (and autocast)
        once per call; when training with `weight_dropout`, made from U~ = U * M_U in place
        of U. A weight the cell lacks (a bias without `use_bias`) stays None."""
        U = ops.cast(self.cell.recurrent_kernel, self.compute_dtype)
        if training and self.weight_dropout > 0.0:
            U = keras.random.dropout(U, self.weight_dropout, seed=self.cell.seed_generator)
        return {
            name: None if w is None else ops.cast(w, self.compute_dtype)
            for name, w in self.cell.step_weights(U).items()
        }

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self.stateful and keras.backend.backend() == "torch":
            # `RNN.call` assigns the final states to the variables the initial states were
            # read from, in place; autograd needs the values it read (Keras copies them too).
            initial_state = [ops.copy(s) for s in initial_state]
        m_x, m_h = self.dropout_masks(sequences, initial_state, training)
        x = sequences if m_x is None else sequences * ops.expand_dims(m_x, 1)
        weights = self.call_weights(training)
        dropped = training and self.weight_dropout > 0.0
        use_cudnn = self.use_cudnn if self.takes_use_cudnn else "auto"
        cudnn = cudnn_path() if use_cudnn else None
        if cudnn and m_h is None and mask is None and not dropped and cudnn.applies(self.cell):
            out = cudnn.recurrence(
                self.cell, x, initial_state, self.return_sequences, self.go_backwards
            )
            if out is not None:  # None: no GPU here
                return out
        if use_cudnn is True:
            raise ValueError(
                f"use_cudnn=True was given to {self.name}, but cuDNN cannot compute this call "
                f"here (it needs a GPU, a plain LSTM or GRU(reset_after=True), no recurrent "
                f"dropout, weight dropout or mask); pass use_cudnn='auto' to fall back"
            )
        if keras.backend.backend() == "torch" and m_h is None and mask is None and not dropped:
            from keras_gated.layers import aten  # imports torch

            if aten.applies(self.cell):
                return aten.recurrence(self.cell, x, initial_state, self.go_backwards)
        xs = ops.transpose(x, (1, 0, 2))  # (T, B, D)
        if training and fused.available() and fused.applies(self.cell):
            per_step = projects_per_step(self.units, training=True)
            if not per_step:
                xs = self.cell.project_inputs(xs)  # (T, B, G*U)
            zoneout = self.zoneout_masks(xs, initial_state, training)
            if self.go_backwards:  # outputs stay in processing order, as `scan_steps`
                xs = ops.flip(xs, 0)
                mask = None if mask is None else ops.flip(mask, 1)
                if zoneout and not self.cell.zoneout_variational:
                    zoneout = {s: ops.flip(d, 0) for s, d in zoneout.items()}
            return fused.fused_recurrence(
                self.cell,
                weights,
                xs,
                initial_state,
                m_h,
                mask,
                self.zero_output_for_mask,
                zoneout,
                project=per_step,
            )
        per_step = not training and projects_per_step(self.units, training=False)
        if not per_step:
            xs = self.cell.project_inputs(xs)  # (T, B, G*U), one matmul for all steps
        zoneout = self.zoneout_masks(xs, initial_state, training)
        zoneout_per_step = zoneout is not None and not self.cell.zoneout_variational

        def step(inputs, states):
            x_t, d_t = inputs if zoneout_per_step else (inputs, zoneout)
            xw_t = self.cell.project_inputs(x_t) if per_step else x_t
            extra = {} if d_t is None else {"zoneout_masks": d_t}
            return self.cell.step(xw_t, states, m_h, weights, **extra)

        def loop():
            return scan_steps(
                step,
                (xs, zoneout) if zoneout_per_step else xs,
                initial_state,
                mask,
                self.go_backwards,
                self.zero_output_for_mask,
            )

        if not training and keras.backend.backend() == "tensorflow":
            from keras_gated.layers import fused_tensorflow  # XLA, as the training loops

            loop = fused_tensorflow.compiled(loop, xs)
        return loop()

    def gate_activations(self, inputs, initial_state=None):
        """Per-step gate activations at inference (no dropout).

        Args:
            inputs: (B, T, D).
            initial_state: optional list of (B, U).

        Returns:
            dict name -> numpy array (B, T, U): LSTM "i", "f", "g", "o", "c", "h" (and "c'"
            with `cell_zoneout`: `LSTMCell.gates_at`);
            GRU "z", "r", "h~", "h" (and "u_h" with reset_after: `GRUCell.gates_at`);
            SimpleRNN "h".
        """
        dtype = self.variable_dtype  # outside __call__ nothing autocasts the weights
        x = ops.convert_to_tensor(inputs, dtype=dtype)
        if not self.built:
            self.build(tuple(x.shape))
        states = (
            [ops.convert_to_tensor(s, dtype=dtype) for s in initial_state]
            if initial_state is not None
            else [ops.cast(s, dtype) for s in self.cell.get_initial_state(ops.shape(x)[0])]
        )
        xs = self.cell.project_inputs(ops.transpose(x, (1, 0, 2)))
        weights = self.cell.step_weights()
        names = list(self.cell.gates_at(xs[0], states, weights=weights))

        def step(xw_t, states):
            q = self.cell.gates_at(xw_t, states, weights=weights)
            new_states = [q["h"], q["c"]] if "c" in q else [q["h"]]
            return ops.concatenate([q[n] for n in names], axis=-1), new_states

        _, ys, _ = scan_steps(step, xs, states, go_backwards=self.go_backwards)
        ys = ops.split(ys, len(names), axis=-1)
        return {n: ops.convert_to_numpy(y) for n, y in zip(names, ys)}

    def get_config(self):
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config = {
            **keras.layers.Layer.get_config(self),
            **cell_config,
            "weight_dropout": self.weight_dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        if self.takes_use_cudnn:
            config["use_cudnn"] = self.use_cudnn
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
