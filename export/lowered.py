"""A built ONNX graph and what `verify.py` and the metadata need to know about it."""

import dataclasses
from collections.abc import Callable

import onnx


@dataclasses.dataclass
class GraphInput:
    """One graph input fed by the caller.

    Attributes:
        name: the input's name (Keras's input name, or `tokens`).
        dtype: its Keras dtype name ("float32", "int32", "int64", "bool").
        dims: ints or named dynamic axes ("batch", "time", ...).
        high: for inputs read by embeddings (integer or float ids), the smallest vocabulary
            size (ids in [0, high)); None otherwise.
        mask_value: for float inputs read by `Masking`, the value that masks a step.
        batch: the batch size Keras fixes (a stateful model's), which verification must use;
            the graph's batch axis stays dynamic.
    """

    name: str
    dtype: str
    dims: list
    high: int | None = None
    mask_value: float | None = None
    batch: int | None = None


@dataclasses.dataclass
class Lowered:
    """A built graph and what is needed to check it.

    Attributes:
        proto: the ONNX ModelProto (no metadata yet).
        inputs: [GraphInput], without the state inputs.
        outputs: output names, without the state outputs.
        vocab_size: V for a token model (one integer input read by an embedding), else None.
        states: metadata state specs (`metadata.state_specs`).
        lowered_layers: layers lowered to native nodes (dropout included, as nothing).
        loop_layers: layers built as explicit ONNX loops (`scan.py`: layer-normalised LSTMs
            and GRUs).
        tf2onnx_layers: layers and ops converted by tf2onnx.
        reference: Keras on the same feeds: {input and state names: arrays} ->
            {output and state output names: arrays}.
    """

    proto: onnx.ModelProto
    inputs: list
    outputs: list
    vocab_size: int | None
    states: list
    lowered_layers: list
    loop_layers: list
    tf2onnx_layers: list
    reference: Callable
