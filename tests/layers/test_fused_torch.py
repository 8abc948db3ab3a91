"""On torch, the fused training path (keras_gated/layers/fused_torch.py) equals the reference
path (`scan_steps` over `cell.step`, differentiated by autograd), forward and backward, for
every cell, mask pattern and direction, with and without dropout.

`test_fused.py` states the same on TensorFlow and JAX; its cases, mask, tolerance and
comparison are reused here, with torch's autograd in place of its tape and `jax.grad`.
"""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_gated.layers import fused
from tests.backend_ops import backend
from tests.layers.test_fused import (
    FUSED_CASES,
    MASK,
    MASK_CASES,
    SEED,
    ZONEOUT_CASES,
    assert_equal_results,
    make_layer,
    masks,
)
from tests.oracles.harness import B, D, T, U, assign_weights, random_states, random_weights

pytestmark = pytest.mark.skipif(backend() != "torch", reason="torch's autograd.Function")

DROPOUT = {"dropout": 0.3, "recurrent_dropout": 0.4, "weight_dropout": 0.2}
# Each row one pattern, per batch of B = 3 rows (T = 5): none of a row masked, right-padded
# (Keras's `pad_sequences(padding="post")`), left-padded (its default), holed; `MASK` mixes them.
MASKS = {
    "none": None,
    "right": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool),
    "left": np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], bool),
    "holed": np.array([[1, 0, 1, 0, 1], [0, 1, 1, 0, 1], [1, 1, 0, 1, 0]], bool),
    "mixed": MASK,
}


def forward_and_gradients(layer, x, states, mask=None, training=True):
    """Outputs, final states, and the gradients of a random functional of both w.r.t. every
    weight, the inputs and the initial states, from one call of `layer` on torch."""
    import torch

    rng = np.random.default_rng(1)
    out_coef = torch.tensor(rng.normal(size=(B, T, U)).astype("float32"))
    state_coefs = [torch.tensor(rng.normal(size=(B, U)).astype("float32")) for _ in states]
    x = torch.tensor(x, requires_grad=True)
    states = [torch.tensor(s, requires_grad=True) for s in states]
    ys, *final = layer(x, initial_state=states, mask=mask, training=training)
    loss = (ys * out_coef).sum() + sum((s * k).sum() for s, k in zip(final, state_coefs))
    weights = [v.value for v in layer.trainable_variables]
    grads = torch.autograd.grad(loss, [*weights, x, *states])
    return [keras.ops.convert_to_numpy(r) for r in [ys, *final, *grads]]


def path_results(case, path, monkeypatch, mask=None, training=True, **layer_kwargs):
    """`forward_and_gradients` of a layer with `SEED`'s weights and dropout seeds, on `path`:
    "reference" (neither fast path), "fused" (ATen off) or "aten" (as the layer chooses)."""
    from keras_gated.layers import aten

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(B, T, D)).astype("float32")
    states = [s.astype("float32") for s in random_states(case, B, U, rng)]
    weights = random_weights(case, D, U, rng)
    layer = make_layer(case, seed=SEED, **layer_kwargs)
    layer(x, initial_state=states)
    assign_weights(layer, weights)
    with monkeypatch.context() as patch:
        if path != "aten":
            patch.setattr(aten, "applies", lambda cell: False)
        if path == "reference":
            patch.setattr(fused, "applies", lambda cell: False)
        return forward_and_gradients(layer, x, states, mask, training)


def fused_against_reference(case, monkeypatch, mask=None, **layer_kwargs):
    calls = []
    original = fused.fused_recurrence
    with monkeypatch.context() as patch:
        patch.setattr(
            fused, "fused_recurrence", lambda *a, **k: calls.append(1) or original(*a, **k)
        )
        got = path_results(case, "fused", monkeypatch, mask, **layer_kwargs)
    assert calls == [1]  # the fused path was taken
    want = path_results(case, "reference", monkeypatch, mask, **layer_kwargs)
    assert_equal_results(case, got, want)


@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: c.id)
def test_fused_path_equals_reference_path(case, dropout, monkeypatch):
    fused_against_reference(case, monkeypatch, **(DROPOUT if dropout else {}))


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("pattern", [p for p in MASKS if p != "none"])
@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: c.id)
def test_fused_path_with_masks_equals_reference_path(case, pattern, go_backwards, monkeypatch):
    """Keras's mask semantics, both directions; backwards also with `zero_output_for_mask`
    (what `Bidirectional(return_sequences=True)` sets)."""
    fused_against_reference(
        case,
        monkeypatch,
        MASKS[pattern],
        go_backwards=go_backwards,
        zero_output_for_mask=go_backwards,
        **DROPOUT,
    )


@pytest.mark.parametrize("variational", [False, True], ids=["fresh", "variational"])
@pytest.mark.parametrize(
    "case, zoneout", ZONEOUT_CASES, ids=[f"{c.id}-{'-'.join(z)}" for c, z in ZONEOUT_CASES]
)
def test_fused_path_with_zoneout_equals_reference_path(case, zoneout, variational, monkeypatch):
    """Zoneout's training masks (the mask rule per unit), with the holed mask backwards."""
    fused_against_reference(
        case,
        monkeypatch,
        MASKS["holed"],
        go_backwards=True,
        zoneout_variational=variational,
        **zoneout,
        **DROPOUT,
    )


# Any mask with a valid step in each row, any cell and option: drawn, 30 examples (~3 s).
@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    case=st.sampled_from(FUSED_CASES),
    mask=st.none() | masks,
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
    dropout=st.booleans(),
)
def test_drawn_calls_on_the_fused_path_equal_the_reference_path(
    case, mask, go_backwards, zero_output_for_mask, dropout
):
    with pytest.MonkeyPatch.context() as monkeypatch:
        fused_against_reference(
            case,
            monkeypatch,
            mask,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            **(DROPOUT if dropout else {}),
        )
