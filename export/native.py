"""A recurrent layer's cells as the operands of native ONNX `LSTM`, `GRU` or `RNN` nodes.

Reads the weights of our cells (`keras_gated.cells`) and of Keras's built-in cells
(`keras.layers.LSTMCell`, `GRUCell`, `SimpleRNNCell`): both pack `kernel` (D, G*U),
`recurrent_kernel` (U, G*U) and `bias` in the same gate order, so one reorder (`layout.py`)
serves both. Our `IndRNNCell`'s recurrent vector u (U,) is an `RNN` node's diagonal R = diag(u).
Nothing is traced, so the weights may live on any Keras backend.

A recurrent layer is any `keras.layers.RNN`: our layers, Keras's LSTM/GRU/SimpleRNN, and
`keras.layers.RNN(cell)` over one of those cells or a `StackedRNNCells` of them, whose cells
(`layer_cells`) run as a chain of nodes, one per cell (`lower_recurrent.py`).
"""

import dataclasses

import keras
import numpy as np

from keras_gated.cells import GRUCell, IndRNNCell, LSTMCell, SimpleRNNCell
from keras_gated.layers import Recurrent

from .layout import (
    keras_to_onnx_gru,
    keras_to_onnx_indrnn,
    keras_to_onnx_lstm,
    keras_to_onnx_lstm_peephole,
    keras_to_onnx_rnn,
    onnx_activations,
)

# Keras's RNN and its subclasses (ours, Keras's LSTM/GRU/SimpleRNN); the cells decide whether
# a layer is native (`native_cell`), else tf2onnx converts it.
RECURRENT_LAYERS = (keras.layers.RNN,)
LSTM_CELLS = (LSTMCell, keras.layers.LSTMCell)
GRU_CELLS = (GRUCell, keras.layers.GRUCell)
RNN_CELLS = (SimpleRNNCell, keras.layers.SimpleRNNCell)
INDRNN_CELLS = (IndRNNCell,)  # an `RNN` node with a diagonal R


class NotNative(Exception):
    """This layer has no native ONNX node; the message says why."""


@dataclasses.dataclass
class NativeCell:
    """One direction of a native node.

    Attributes:
        op: "LSTM", "GRU" or "RNN".
        weights: {"W" (1, G*U, D), "R" (1, G*U, U), "B" (1, 2*G*U)[, "P" (1, 3U)]} float32.
        activations: Keras activation names in the node's order (LSTM f, g, h; GRU f, g; RNN g).
        attrs: other node attributes (GRU `linear_before_reset`).
        units: U. kinds: state names, ("h", "c") for an LSTM, else ("h",).
    """

    op: str
    weights: dict
    activations: list
    attrs: dict
    units: int
    kinds: tuple


def numpy_weight(variable):
    """A Keras variable as a float32 numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def activation_name(activation):
    """A Keras activation (function or name) -> its registered name ("relu", "linear", ...).

    Looked up by identity (`keras.activations.serialize` would import TensorFlow on every
    backend); a function Keras does not know keeps its `__name__` and is refused later.
    """
    if isinstance(activation, str):
        return activation
    name = getattr(activation, "__name__", repr(activation))
    try:
        return name if keras.activations.get(name) is activation else repr(activation)
    except ValueError:
        return repr(activation)


def layer_cells(layer):
    """The cells a recurrent layer runs at each step, in order: its cell, or the cells of a
    `StackedRNNCells` (nested ones flattened), where cell k reads cell k-1's output."""
    cells, pending = [], [layer.cell]
    while pending:
        cell = pending.pop(0)
        if isinstance(cell, keras.layers.StackedRNNCells):
            pending[:0] = list(cell.cells)
        else:
            cells.append(cell)
    return cells


def repeats_state_when_masked(layer):
    """True where Keras's own loop runs the layer on the JAX backend (every `keras.layers.RNN`
    but ours, not unrolled): a masked step emits the first state h_{t-1}, so the steps before a
    row's first valid one emit h0 where other backends emit zeros."""
    return (
        keras.backend.backend() == "jax" and not isinstance(layer, Recurrent) and not layer.unroll
    )


def state_kinds(cell):
    """The states of a cell: ("h", "c") for an LSTM cell (ours or Keras's), else ("h",)."""
    return ("h", "c") if isinstance(cell, LSTM_CELLS) else ("h",)


def runs_as_scan(cell):
    """Whether `cell` has no native node and runs as an explicit `Scan` (`scan.py`): a
    layer-normalised `LSTMCell` or `GRUCell`, or one with zoneout (whose inference
    expectation changes the recurrence)."""
    return isinstance(cell, (LSTMCell, GRUCell)) and (cell.layer_norm or cell.has_zoneout())


def has_scan_cell(layer):
    """True if any cell of the recurrent `layer` runs as a `Scan` (an ONNX loop)."""
    return hasattr(layer, "cell") and any(runs_as_scan(c) for c in layer_cells(layer))


def native_cell(cell):
    """The `NativeCell` of a cell (ours or Keras's LSTMCell/GRUCell/SimpleRNNCell, our IndRNNCell).

    Raises:
        NotNative: a `runs_as_scan` cell, an unknown cell, or an activation ONNX lacks.
    """
    if runs_as_scan(cell):
        raise NotNative(f"{type(cell).__name__} with layer_norm or zoneout has no native ONNX node")
    if not isinstance(cell, (*LSTM_CELLS, *GRU_CELLS, *RNN_CELLS, *INDRNN_CELLS)):
        raise NotNative(f"cell {type(cell).__name__} has no native ONNX node")
    units = int(cell.units)
    kernel, recurrent = numpy_weight(cell.kernel), numpy_weight(cell.recurrent_kernel)
    if getattr(cell, "bias", None) is not None:
        bias = numpy_weight(cell.bias)
    else:  # Keras's use_bias=False
        reset_after = isinstance(cell, GRU_CELLS) and cell.reset_after
        bias = np.zeros((2, kernel.shape[1]) if reset_after else kernel.shape[1], np.float32)
    act = activation_name(getattr(cell, "activation", "tanh"))
    gate_act = activation_name(getattr(cell, "recurrent_activation", "sigmoid"))
    if isinstance(cell, LSTM_CELLS):
        W, R, B = keras_to_onnx_lstm(kernel, recurrent, bias)
        weights = {"W": W, "R": R, "B": B}
        if getattr(cell, "peephole", False):
            weights["P"] = keras_to_onnx_lstm_peephole(numpy_weight(cell.peephole_kernel))
        return NativeCell("LSTM", weights, [gate_act, act, act], {}, units, ("h", "c"))
    if isinstance(cell, GRU_CELLS):
        W, R, B, linear_before_reset = keras_to_onnx_gru(kernel, recurrent, bias, cell.reset_after)
        return NativeCell(
            "GRU",
            {"W": W, "R": R, "B": B},
            [gate_act, act],
            {"linear_before_reset": linear_before_reset},
            units,
            ("h",),
        )
    to_onnx = keras_to_onnx_indrnn if isinstance(cell, INDRNN_CELLS) else keras_to_onnx_rnn
    W, R, B = to_onnx(kernel, recurrent, bias)
    return NativeCell("RNN", {"W": W, "R": R, "B": B}, [act], {}, units, ("h",))


def node_attributes(cells):
    """The attributes of one node running `cells` (1 direction, or forward then reverse).

    Raises:
        NotNative: the directions need different ops, widths or GRU reset placement.
    """
    first = cells[0]
    for other in cells[1:]:
        if (other.op, other.units, other.attrs) != (first.op, first.units, first.attrs):
            raise NotNative(
                f"directions differ ({first.op} {first.units} {first.attrs} vs "
                f"{other.op} {other.units} {other.attrs}); one ONNX node needs "
                f"the same op, units and reset placement"
            )
    try:
        activations = onnx_activations([name for cell in cells for name in cell.activations])
    except NotImplementedError as error:
        raise NotNative(str(error)) from None
    defaults = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
    if activations["activations"] == defaults[first.op] * len(cells) and first.op != "RNN":
        activations = {}
    return {"hidden_size": first.units, **first.attrs, **activations}


def stacked_weights(cells):
    """Each operand with the directions stacked on axis 0: {"W" (dirs, G*U, D), ...}."""
    keys = ["W", "R", "B"] + (["P"] if any("P" in cell.weights for cell in cells) else [])
    stacked = {}
    for key in keys:
        parts = [cell.weights.get(key, np.zeros((1, 3 * cell.units), np.float32)) for cell in cells]
        stacked[key] = np.concatenate(parts, axis=0)
    return stacked
