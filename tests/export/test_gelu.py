"""GELU exports natively, with `Erf` (exact) or `Tanh` (approximate), never tf2onnx's `Erfc`.

Keras's `gelu` defaults to the exact form 0.5 x (1 + erf(x / sqrt 2)); the approximate form is
0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). Checked against Keras through `to_onnx`
(Dense(activation="gelu") and Activation("gelu"), on our recurrent layer and Keras's), and
both forms of `lower_gelu` against a float64 numpy oracle written from those formulas.
"""

import math

import keras
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

import keras_gated
from keras_gated.export import to_onnx
from keras_gated.export.graph import GraphBuilder
from keras_gated.export.lower_layers import lower_gelu
from tests.export.helpers import RECURRENT_OPS, op_types, randomize

# float32 graph vs float64 formula: erf/tanh in float32 are within a few ulp, |x| <= 6 gives
# |gelu| <= 6, so O(1e-6) at most; a wrong constant (sqrt 2 for 1 / sqrt 2) shows as O(0.1).
FORMULA_ATOL = 2e-6
# float32 onnxruntime vs float32 Keras through Dense + GRU, U = 6: measured max 6e-8; TF's
# exact gelu uses erfc(-x / sqrt 2), equal to 1 + erf(x / sqrt 2) up to float32 rounding.
GELU_ATOL = 1e-5
IMPLS = {"ours": keras_gated, "keras": keras.layers}


def gelu_oracle(x, approximate):
    """GELU in float64 from the formulas above."""
    x = np.asarray(x, np.float64)
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("approximate", [False, True], ids=["exact", "approximate"])
def test_lower_gelu_is_the_formula(approximate):
    g = GraphBuilder("gelu")
    x = g.add_input("x", TensorProto.FLOAT, ["n"])
    g.node("Identity", [lower_gelu(g, x, "gelu", approximate)], outputs=["y"])
    g.add_output("y", TensorProto.FLOAT, ["n"])
    session = ort.InferenceSession(
        g.model(17).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    xs = np.linspace(-6, 6, 241, dtype=np.float32)
    (got,) = session.run(None, {"x": xs})
    assert float(np.max(np.abs(got - gelu_oracle(xs, approximate)))) <= FORMULA_ATOL
    keras_gelu = keras.ops.convert_to_numpy(keras.activations.gelu(xs, approximate=approximate))
    assert float(np.max(np.abs(got - keras_gelu))) <= FORMULA_ATOL


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_gelu_layers_export_natively(tmp_path, impl):
    """Dense(gelu) -> GRU -> Activation(gelu): no tf2onnx piece, one GRU node, no Erfc."""
    x_in = keras.Input((5, 4), name="x")
    x = keras.layers.Dense(6, activation="gelu")(x_in)
    x = IMPLS[impl].GRU(6, return_sequences=True)(x)
    x = keras.layers.Activation("gelu")(x)
    model = randomize(keras.Model(x_in, x))
    path = tmp_path / "model.onnx"
    result = to_onnx(model, path)
    types = op_types(path)
    assert result.tf2onnx_layers == []
    assert "Erf" in types and "Erfc" not in types
    assert len([t for t in types if t in RECURRENT_OPS]) == 1
    xs = 2 * np.random.default_rng(1).standard_normal((3, 5, 4)).astype("float32")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": xs})
    want = keras.ops.convert_to_numpy(model(xs))
    assert float(np.max(np.abs(got - want))) <= GELU_ATOL
