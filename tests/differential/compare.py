"""Assertions of the differential harness: ours against the built-in, with named tolerances."""

import keras
import numpy as np

# float32 against float32 on the same inputs: the same products in another order (a hoisted
# input projection, a fused gate matmul) differ by O(1e-7) per step; two blocks of T <= 5 steps
# and a head stay below 1e-6, so 1e-5 leaves a 10x margin (a swapped gate shows as O(0.1)).
ATOL_F32 = 1e-5
# Gradients sum O(B*T*U) such differences through the readout: O(1e-6) measured; 1e-4 abs plus
# 1e-5 relative leaves the margin for weights whose gradient is O(10).
ATOL_GRAD, RTOL_GRAD = 1e-4, 1e-5
# Losses and weights after one SGD step (learning rate 0.1): gradients' error times 0.1.
ATOL_FIT = 1e-5
# onnxruntime against Keras, float32: measured max ~3e-7 at these sizes (tests/export).
ATOL_ONNX = 1e-5


def flat(result):
    """A model result (tensor, list or nested lists) as a list of numpy arrays."""
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(result)]


def assert_same_shapes(got, want, what):
    got, want = flat(got), flat(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, the built-in {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what}: output {k} has shape {g.shape}, the built-in {w.shape}"
    return got, want


def assert_close(got, want, what, atol=ATOL_F32, rtol=0.0):
    got, want = assert_same_shapes(got, want, what)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, err_msg=f"{what}: output {k}")


def assert_finite_where(values, reference, what):
    """Where the random dropout masks make values incomparable: finite exactly where the
    built-in's are (an all-masked row's masked mean is 0/0 = NaN for both)."""
    for k, (v, r) in enumerate(zip(flat(values), flat(reference), strict=True)):
        np.testing.assert_array_equal(
            np.isfinite(v), np.isfinite(r), err_msg=f"{what}: output {k}, finite entries"
        )
