"""An `Embedding` fed float ids exports as Cast then Gather, truncating as Keras does.

Keras's `Embedding.call` casts ids of another dtype than int32/int64 to int32 (toward zero:
2.7 -> 2, -0.5 -> 0) before its `take`; ONNX's `Gather` refuses float indices. The export
casts to int32 first; `to_onnx`'s own check then feeds ids with a fraction above each integer.
Checked with and without `mask_zero` (Keras compares the float ids with 0 for the mask), on
our LSTM and Keras's.
"""

import keras
import numpy as np
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, op_types, randomize

# float32 onnxruntime vs float32 Keras, Embedding -> Bi-LSTM(U = 5) over T = 6: measured max
# 1.2e-7; an id off by one (rounding instead of truncating) shows as O(0.1).
IDS_ATOL = 1e-5
V, E, U, T = 9, 4, 5, 6
IMPLS = {"ours": keras_gated, "keras": keras.layers}


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("mask_zero", [False, True], ids=["unmasked", "mask_zero"])
def test_float_ids_are_truncated_then_gathered(tmp_path, impl, mask_zero):
    ids = keras.Input((T,), name="ids")  # float32, as the keras-io examples feed it
    x = keras.layers.Embedding(V, E, mask_zero=mask_zero)(ids)
    x = keras.layers.Bidirectional(IMPLS[impl].LSTM(U))(x)
    model = randomize(keras.Model(ids, x))
    path = tmp_path / "model.onnx"
    result = to_onnx(model, path)
    types = op_types(path)
    assert result.tf2onnx_layers == []
    assert types.index("Cast") < types.index("Gather")
    assert len([t for t in types if t in RECURRENT_OPS]) == 1
    assert not [t for t in types if t in LOOP_OPS]

    tokens = np.array(
        [
            [0.0, 0.0, 2.7, 8.99, 1.0, 3.5],  # left-padded; fractions truncate
            [5.2, -0.5, 0.4, 7.0, 0.0, 0.0],  # -0.5 and 0.4 -> id 0, not masked
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ],
        np.float32,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"ids": tokens})
    want = keras.ops.convert_to_numpy(model(tokens))
    assert float(np.max(np.abs(got - want))) <= IDS_ATOL
    if not mask_zero:  # the oracle: Keras on the truncated ids (the mask reads the floats)
        truncated = keras.ops.convert_to_numpy(model(np.trunc(tokens)))
        assert float(np.max(np.abs(got - truncated))) <= IDS_ATOL
