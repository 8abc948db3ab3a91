"""What every cell shares: weights, Keras's constructor arguments, dropout inside
`keras.layers.RNN`, initial state, config, and `call = step . project_inputs`."""

import contextlib

import keras
from keras import ops

from keras_gated import checks
from keras_gated.cells.zoneout import draw_masks
from keras_gated.keras_private import DropoutRNNCell

# The activations of the textbook equations: the fast paths (fused, cuDNN) and Keras's own
# cuDNN check assume these.
TANH, SIGMOID = keras.activations.tanh, keras.activations.sigmoid
# Inside the square root of every layer norm (Keras's `LayerNormalization` default).
LAYER_NORM_EPSILON = 1e-3


class RecurrentCell(DropoutRNNCell, keras.layers.Layer):
    """Base of the cells. Subclasses set `gates` and define `gates_at` and `step` (and
    `input_weights`, `project_inputs` where the projection is not x W + b).

    A cell splits its pre-activation in two: `project_inputs(x)` is the part that depends on the
    input only (so a layer can compute it for all steps at once, or inside each step),
    `step(xw_t, states)` the rest.
    `call(x_t, states)` composes them, so the cell runs inside `keras.layers.RNN` and
    `keras.layers.StackedRNNCells` unchanged, dropout included.

    Args (Keras's cell arguments, with Keras's meaning and defaults):
        units: U, the width of the hidden state (> 0).
        activation: the candidate / output activation (tanh in the equations). Default "tanh".
        use_bias: whether the cell has `bias`; without it every b term is absent. Default True.
        kernel_initializer: for `kernel` (D, G*U). Default "glorot_uniform".
        recurrent_initializer: for `recurrent_kernel` (U, G*U). Default "orthogonal".
        bias_initializer: for `bias`. Default "zeros".
        kernel_regularizer, recurrent_regularizer, bias_regularizer: penalties on those
            weights, collected in `losses`. Default None.
        kernel_constraint, recurrent_constraint, bias_constraint: projections applied to those
            weights after each optimizer update. Default None.
        dropout: input dropout rate p_x in [0, 1): one mask (B, D) per sequence. Default 0.
        recurrent_dropout: rate p_h in [0, 1) on h_{t-1}: one mask (B, U) per sequence, shared
            by all gates (Gal & Ghahramani 2016, "tied"). Default 0.
        seed: seed of the dropout masks. Default None.

    The masks are made once per sequence by whichever runs the cell over time (our layers, or
    `keras.layers.RNN` through `DropoutRNNCell`) and used only when `training=True`.
    """

    gates = ()  # gate names in packed order; G = len(gates)

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = checks.positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = checks.rate("dropout", dropout)
        self.recurrent_dropout = checks.rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @contextlib.contextmanager
    def without_dropout_masks(self):
        """Within, the cell makes no dropout masks: `keras.layers.RNN.call` makes them before
        every call, training or not, which would draw from the seed generator at inference
        and so shift the masks of the training steps after it (our layers use this when not
        training, so inference leaves the dropout stream as it was)."""
        self._masks_off = True
        try:
            yield
        finally:
            self._masks_off = False

    def get_dropout_mask(self, step_input):
        return None if getattr(self, "_masks_off", False) else super().get_dropout_mask(step_input)

    def get_recurrent_dropout_mask(self, step_input):
        if getattr(self, "_masks_off", False):
            return None
        return super().get_recurrent_dropout_mask(step_input)

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        width = len(self.gates) * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width),
            initializer=self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=self.recurrent_shape(),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_kernel_constraint(),
        )
        self.bias = (
            self.add_weight(
                shape=self.bias_shape(),
                initializer=self.bias_init(),
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def recurrent_shape(self):
        """The shape of `recurrent_kernel`: (U, G*U); `IndRNNCell`'s is a vector (U,)."""
        return (self.units, len(self.gates) * self.units)

    def recurrent_kernel_constraint(self):
        """What `recurrent_kernel` applies after each optimizer update: `recurrent_constraint`
        (`IndRNNCell` adds its clip)."""
        return self.recurrent_constraint

    def bias_shape(self):
        return (len(self.gates) * self.units,)

    def bias_init(self):
        return self.bias_initializer

    def input_weights(self):
        """The weights `project_inputs` reads, by name: {"kernel": W (D, G*U), "input_bias": b^x
        (G*U,) or None without `use_bias`} (the layer-normalised cells add their gains)."""
        return {"kernel": self.kernel, "input_bias": self.bias}

    def project_inputs(self, x, weights=None):
        """x (..., D) -> x W + b^x (..., G*U), for all steps at once or one step's x_t.
        `weights`: `input_weights()`, or a dict holding them as tensors (the fused path)."""
        w = weights or self.input_weights()
        return plus_bias(ops.matmul(x, w["kernel"]), w.get("input_bias"))

    def is_plain(self):
        """Whether the cell computes its equations with the textbook's options: a bias and tanh
        (and sigmoid gates), as the fast paths assume. (A subclass's step may differ: the
        fast paths also check the exact class.)"""
        return self.use_bias and self.activation is TANH

    def step_weights(self, recurrent_kernel=None):
        """The weights one step reads besides its input projection, by name, made from
        `recurrent_kernel` (U (U, G*U); default the variable, the layer passes a cast or dropped
        copy): here {"recurrent_kernel": U}. `gates_at(..., weights=)` takes this dict with
        tensors in place of the variables (the fused training path passes them explicitly)."""
        return {
            "recurrent_kernel": self.recurrent_kernel
            if recurrent_kernel is None
            else recurrent_kernel
        }

    def call(self, inputs, states, training=False):
        """One time step: x_t (B, D), states (list of (B, U)) -> (h_t (B, U), new states),
        with the sequence's dropout masks (`DropoutRNNCell`) and this step's zoneout masks when
        training. A one-state cell also takes h_{t-1} as a bare tensor and then returns h_t
        bare, as Keras's cells do."""
        nested = isinstance(states, (list, tuple))
        states = list(states) if nested else [states]
        x_t, m_h, zoneout = inputs, None, {}
        if training and self.dropout > 0.0:
            x_t = x_t * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0.0:
            m_h = self.get_recurrent_dropout_mask(states[0])
        if training and self.has_zoneout():
            zoneout = {"zoneout_masks": self.zoneout_masks_for_call(states[0])}
        h, new_states = self.step(self.project_inputs(x_t), states, m_h, **zoneout)
        return (h, new_states) if nested else (h, new_states[0])

    def zoneout_rates(self):
        """{state: zoneout rate p} ("h", and "c" for an LSTM): none here (`GatedCell`)."""
        return {}

    def has_zoneout(self):
        return any(rate > 0.0 for rate in self.zoneout_rates().values())

    def get_initial_state(self, batch_size=None):
        size = self.state_size
        sizes = size if isinstance(size, (list, tuple)) else [size]
        return [ops.zeros((batch_size, s), dtype=self.compute_dtype) for s in sizes]

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **{
                name: ser(getattr(self, name))
                for name in (
                    "kernel_initializer",
                    "recurrent_initializer",
                    "bias_initializer",
                    "kernel_regularizer",
                    "recurrent_regularizer",
                    "bias_regularizer",
                    "kernel_constraint",
                    "recurrent_constraint",
                    "bias_constraint",
                )
            },
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


class GatedCell(RecurrentCell):
    """Base of `LSTMCell` and `GRUCell`: a `RecurrentCell` with sigmoid-like gates and zoneout.

    Args:
        recurrent_activation: the gates' activation (sigmoid in the equations).
            Default "sigmoid".
        implementation: accepted for Keras's configs (Keras 2 wrote 0, 1 or 2); every value
            computes the same function here (Keras's 1 splits the matmuls per gate). Default 2.
        zoneout: zoneout rate p in [0, 1) on h (`cells/zoneout.py`, (Z1)-(Z2)). Default 0.
        zoneout_variational: one zoneout mask per sequence for all steps instead of a fresh
            one at every step (the paper's). Default False.
        **kwargs: see `RecurrentCell`.
    """

    def __init__(
        self,
        units,
        recurrent_activation="sigmoid",
        implementation=2,
        zoneout=0.0,
        zoneout_variational=False,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.implementation = implementation
        self.zoneout = checks.rate("zoneout", zoneout)
        self.zoneout_variational = bool(zoneout_variational)
        self._sequence_zoneout = None

    def is_plain(self):
        return self.has_plain_gates() and not self.has_zoneout()

    def has_plain_gates(self):
        """Whether a step computes the textbook's gates (`is_plain` less zoneout, which changes
        only how the new states are kept): the fused training path's condition, which runs
        zoneout's training masks too."""
        return super().is_plain() and self.recurrent_activation is SIGMOID

    def zoneout_rates(self):
        return {"h": self.zoneout}

    def draw_zoneout_masks(self, shape):
        """Fresh zoneout masks {state: d (*shape, U)} for the states with a rate (`zoneout.py`)."""
        return draw_masks(
            self.zoneout_rates(), (*shape, self.units), self.seed_generator, self.compute_dtype
        )

    def zoneout_masks_for_call(self, h):
        """One step's masks {state: d (B, U)} inside `keras.layers.RNN`: the sequence's own with
        `zoneout_variational` (drawn before the loop with the dropout masks), else fresh.

        Raises:
            ValueError: fresh masks on JAX, where Keras's loop is a `lax.scan` that cannot
                draw (our `LSTM` and `GRU` layers draw every step's masks before theirs).
        """
        if self.zoneout_variational:
            return self.sequence_zoneout_masks(h)
        if keras.backend.backend() == "jax":
            raise ValueError(
                f"{type(self).__name__} with zoneout inside keras.layers.RNN cannot draw a "
                f"fresh mask at every step on JAX (Keras's loop is a stateless lax.scan): use "
                f"keras_gated.{type(self).__name__[:-4]}, which draws them before its loop, "
                f"or zoneout_variational=True"
            )
        return self.draw_zoneout_masks((ops.shape(h)[0],))

    def sequence_zoneout_masks(self, h):
        """The call's variational masks {state: d (B, U)}, drawn once per call (as
        `DropoutRNNCell`'s dropout masks) from h_0 (B, U)."""
        if self._sequence_zoneout is None:
            self._sequence_zoneout = self.draw_zoneout_masks((ops.shape(h)[0],))
        return self._sequence_zoneout

    def get_recurrent_dropout_mask(self, step_input):
        """As `RecurrentCell`'s; `keras.layers.RNN` calls it before its loop, where the
        variational zoneout masks are drawn too, so the loop itself draws nothing."""
        if (
            self.zoneout_variational
            and self.has_zoneout()
            and not getattr(self, "_masks_off", False)
        ):
            self.sequence_zoneout_masks(step_input)
        return super().get_recurrent_dropout_mask(step_input)

    def reset_recurrent_dropout_mask(self):
        super().reset_recurrent_dropout_mask()
        self._sequence_zoneout = None

    def get_config(self):
        return {
            **super().get_config(),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "implementation": self.implementation,
            "zoneout": self.zoneout,
            "zoneout_variational": self.zoneout_variational,
        }


def masked(h_prev, recurrent_mask):
    """h_{t-1} as the recurrent matmul sees it: times the variational mask, if any."""
    return h_prev if recurrent_mask is None else h_prev * recurrent_mask


def plus_bias(x, bias):
    """x + b, or x when the cell has no bias (`use_bias=False`)."""
    return x if bias is None else x + bias


def layer_norm_per_gate(a, units):
    """LN(a_k) for every gate k of a (..., G*U): each gate's U units to mean 0 and (biased)
    variance 1, epsilon `LAYER_NORM_EPSILON` inside the square root; no gain, no bias."""
    per_gate = ops.reshape(a, (-1, units))  # one row per gate of every leading position
    mean = ops.mean(per_gate, axis=-1, keepdims=True)
    var = ops.var(per_gate, axis=-1, keepdims=True)
    return ops.reshape((per_gate - mean) * ops.rsqrt(var + LAYER_NORM_EPSILON), ops.shape(a))
