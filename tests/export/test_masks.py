"""Keras's mask semantics on native nodes, against Keras itself: every cell type, our layers
and Keras's built-ins, forward, `go_backwards` and Bidirectional, outputs and final states,
on one batch whose rows have a right-padded, left-padded, holed, full and empty mask.

Keras (`backend.rnn`): a masked step keeps the states and repeats the previous output (zeros
before the first valid step); `Bidirectional` sets `zero_output_for_mask` for its
`return_sequences` layers, so masked steps give zeros there; a row with no valid step keeps
its initial state. The node sees only `sequence_lens`, so each of these is the export's work.
"""

import keras
import numpy as np
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, op_types, randomize

# float32 onnxruntime vs float32 Keras, U = 5, T = 8: measured max ~2e-7; a masked step taken
# or a held output missed shows as O(0.1).
MASK_ATOL = 1e-5
D, U, T = 3, 5, 8
MASK = np.array(
    [
        [1, 1, 1, 1, 1, 0, 0, 0],  # right-padded
        [0, 0, 0, 1, 1, 1, 1, 1],  # left-padded (pad_sequences' default)
        [1, 0, 1, 1, 0, 0, 1, 0],  # holes
        [1, 1, 1, 1, 1, 1, 1, 1],  # full
        [0, 0, 0, 0, 0, 0, 0, 0],  # empty: states stay initial
    ],
    dtype=bool,
)

CELLS = {  # id -> (layer class name, options, ONNX op)
    "lstm": ("LSTM", {}, "LSTM"),
    "gru-reset_after": ("GRU", {"reset_after": True}, "GRU"),
    "gru-reset_before": ("GRU", {"reset_after": False}, "GRU"),
    "rnn": ("SimpleRNN", {}, "RNN"),
}
IMPLS = {"ours": keras_gated, "keras": keras.layers}


def masked_model(impl, case):
    """x and an explicit mask into: forward (initial states given), go_backwards, last output
    only, and a Bidirectional returning both directions' sequences and states."""
    kind, options, _ = CELLS[case]

    def layer(**kwargs):
        return getattr(IMPLS[impl], kind)(U, **options, **kwargs)

    x = keras.Input((None, D), name="x")
    mask = keras.Input((None,), dtype="bool", name="mask")
    states = [keras.Input((U,), name=f"s{k}") for k in range(2 if kind == "LSTM" else 1)]
    forward = layer(return_sequences=True, return_state=True)(x, mask=mask, initial_state=states)
    backward = layer(return_sequences=True, return_state=True, go_backwards=True)(x, mask=mask)
    last = layer()(x, mask=mask)
    bidirectional = keras.layers.Bidirectional(
        layer(return_sequences=True, return_state=True), merge_mode=None
    )(x, mask=mask)
    outputs = [*forward, *backward, last, *bidirectional]
    return randomize(keras.Model([x, mask, *states], outputs), seed=len(case))


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("case", sorted(CELLS))
def test_masks_right_left_holed_empty(tmp_path, impl, case):
    model = masked_model(impl, case)
    path = tmp_path / "masked.onnx"
    to_onnx(model, path)
    types = op_types(path)
    assert [t for t in types if t in RECURRENT_OPS] == [CELLS[case][2]] * 4
    assert not [t for t in types if t in LOOP_OPS]
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((len(MASK), T, D)).astype(np.float32), "mask": MASK}
    feeds.update(
        {
            x.name: (0.5 * rng.standard_normal((len(MASK), U))).astype(np.float32)
            for x in model.inputs[2:]
        }
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([o.name for o in session.get_outputs()], feeds)
    want = model([feeds[x.name] for x in model.inputs])
    assert len(got) == len(want)
    for name, g, w in zip([o.name for o in session.get_outputs()], got, want):
        assert float(np.max(np.abs(g - np.asarray(w)))) <= MASK_ATOL, name


@pytest.mark.parametrize("opset", [14, 18])
def test_batch_shorter_than_its_time_axis(tmp_path, opset):
    """Every row padded: the node runs over the longest row's steps only, and the padded
    tail still gets Keras's held outputs."""
    x = keras.Input((None, D), name="x")
    y = keras.layers.Masking(0.0)(x)
    y = keras.layers.Bidirectional(keras.layers.GRU(U, return_sequences=True))(y)
    y = keras_gated.LSTM(U, return_sequences=True)(y)
    model = randomize(keras.Model(x, y))
    path = tmp_path / "short.onnx"
    to_onnx(model, path, opset=opset)
    x = np.random.default_rng(1).standard_normal((3, T, D)).astype(np.float32)
    x[0, 3:] = x[1, :2] = x[1, 6:] = x[2, 1:] = 0.0  # lengths 3, 4, 1 of 8
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x})
    assert float(np.max(np.abs(got - np.asarray(model(x))))) <= MASK_ATOL
