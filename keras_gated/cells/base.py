"""What every cell shares: weight creation, initial state, config, and `call = step . project_inputs`."""

import keras
from keras import ops

from keras_gated.cells.gates import check_units


class RecurrentCell(keras.layers.Layer):
    """Base of the cells. Subclasses set `gates` and define `project_inputs`, `gates_at` and `step`.

    A cell splits its pre-activation in two: `project_inputs(x)` is the part that depends on the
    input only (so a layer can compute it for all steps at once), `step(xw_t, states)` the rest.
    `call(x_t, states)` composes them, so the cell runs inside `keras.layers.RNN` unchanged.

    Args:
        units: U, the width of the hidden state (> 0).
        kernel_initializer: for `kernel` (D, G*U). Default "glorot_uniform".
        recurrent_initializer: for `recurrent_kernel` (U, G*U). Default "orthogonal".
        bias_initializer: for `bias`. Default "zeros".
    """

    gates = ()  # gate names in packed order; G = len(gates)

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

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
            shape=(input_dim, width), initializer=self.kernel_initializer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=self.bias_shape(), initializer=self.bias_init(), name="bias"
        )

    def bias_shape(self):
        return (len(self.gates) * self.units,)

    def bias_init(self):
        return self.bias_initializer

    def step_weights(self, recurrent_kernel=None):
        """The weights one step reads besides its input projection, by name, made from
        `recurrent_kernel` (U (U, G*U); default the variable, the layer passes a cast or dropped
        copy): here {"recurrent_kernel": U}. `gates_at(..., weights=)` takes this dict with
        tensors in place of the variables (the fused training path passes them explicitly)."""
        return {"recurrent_kernel": self.recurrent_kernel if recurrent_kernel is None
                else recurrent_kernel}

    def call(self, inputs, states):
        """One time step: x_t (B, D), states (list of (B, U)) -> (h_t (B, U), new states)."""
        return self.step(self.project_inputs(inputs), list(states))

    def get_initial_state(self, batch_size=None):
        size = self.state_size
        sizes = size if isinstance(size, (list, tuple)) else [size]
        return [ops.zeros((batch_size, s), dtype=self.compute_dtype) for s in sizes]

    def get_config(self):
        ser = keras.initializers.serialize
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_initializer": ser(self.kernel_initializer),
            "recurrent_initializer": ser(self.recurrent_initializer),
            "bias_initializer": ser(self.bias_initializer),
        }


def masked(h_prev, recurrent_mask):
    """h_{t-1} as the recurrent matmul sees it: times the variational mask, if any."""
    return h_prev if recurrent_mask is None else h_prev * recurrent_mask
