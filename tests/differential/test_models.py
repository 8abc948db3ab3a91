"""Drawn models down the backend-independent paths: symbolic shapes, eager call, predict,
gradients, one fit step and evaluate; ours against Keras's built-ins with copied weights."""

import keras
import numpy as np
from hypothesis import example, given

from tests.backend_ops import readout, value_and_grads
from tests.differential import grammar
from tests.differential.build import arrays, build, feed, pair, recurrent_layers, reset_states
from tests.differential.compare import (
    ATOL_FIT,
    ATOL_GRAD,
    RTOL_GRAD,
    assert_close,
    assert_finite_where,
    assert_same_shapes,
    flat,
)
from tests.differential.profiles import budget, tried

LEARNING_RATE = 0.1


def fresh():
    """Each example starts from an empty Keras session (names, graphs)."""
    keras.backend.clear_session()


def layer_input_shape(layer):
    shape = (
        layer.input.shape if not isinstance(layer.input, (list, tuple)) else layer.input[0].shape
    )
    return tuple(shape)


def shapes(value):
    """A shape or a nest of shapes as nested lists of tuples (Keras returns either)."""
    if all(d is None or isinstance(d, int) for d in value):
        return tuple(value)
    return [shapes(v) for v in value]


@budget("shapes")
@given(spec=grammar.models())
def test_symbolic_shapes_and_initial_biases(spec):
    """Output shapes of the functional graph and `compute_output_shape` equal the built-in's,
    and so do the freshly initialised biases (zeros, or unit_forget_bias's ones)."""
    tried("shapes")
    fresh()
    ours, ref = build(spec, "ours"), build(spec, "keras")
    assert [tuple(t.shape) for t in ours.outputs] == [tuple(t.shape) for t in ref.outputs]
    for o, r in zip(recurrent_layers(ours), recurrent_layers(ref), strict=True):
        shape = layer_input_shape(r)
        assert layer_input_shape(o) == shape, (o.name, layer_input_shape(o), shape)
        want, got = shapes(r.compute_output_shape(shape)), shapes(o.compute_output_shape(shape))
        assert got == want, f"{o.name}.compute_output_shape({shape})"
    biases = [(o, r) for o, r in zip(ours.weights, ref.weights) if r.name == "bias"]
    for o, r in biases:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(o),
            keras.ops.convert_to_numpy(r),
            err_msg=f"initial {o.path} against {r.path}",
        )


@budget("eager")
@given(spec=grammar.models())
def test_eager_call(spec):
    """Outputs, states and output masks at inference (twice when stateful: carried state)."""
    tried("eager")
    fresh()
    ours, ref = pair(spec)
    xs = arrays(spec, ref)
    for call in range(2 if spec.stateful else 1):
        assert_close(
            ours(feed(xs), training=False), ref(feed(xs), training=False), f"eager call {call}"
        )
    if spec.inputs.masking == "explicit":  # the first block reads the features and the mask
        x, mask = xs[0], xs[1]
        o, r = recurrent_layers(ours)[0], recurrent_layers(ref)[0]
        got, want = mask_values(o.compute_mask(x, mask)), mask_values(r.compute_mask(x, mask))
        assert [g is None for g in got] == [w is None for w in want], (got, want)
        for g, w in zip(got, want):
            if w is not None:
                np.testing.assert_array_equal(g, w, err_msg=f"{o.name}.compute_mask")


def mask_values(masks):
    """compute_mask's result (None, a mask, or a list of them) as a list of None or arrays."""
    if masks is None or not isinstance(masks, (list, tuple)):
        masks = [masks]
    return [None if m is None else np.asarray(keras.ops.convert_to_numpy(m)) for m in masks]


@budget("predict")
@given(spec=grammar.models())
def test_predict(spec):
    tried("predict")
    fresh()
    ours, ref = pair(spec)
    xs = arrays(spec, ref)
    batch = spec.inputs.batch
    assert_close(
        ours.predict(feed(xs), batch_size=batch, verbose=0),
        ref.predict(feed(xs), batch_size=batch, verbose=0),
        "predict",
    )


def gradients(model, xs, spec):
    """(loss, gradients w.r.t. the trainable weights, then the float inputs) of a random
    readout of every output, in training mode."""
    floats = [k for k, x in enumerate(xs) if x.dtype == np.float32]
    inputs = [keras.Variable(xs[k], name=f"input{k}") for k in floats]
    shapes = [o.shape for o in flat(model(feed(xs), training=False))]
    reset_states(model)
    rng = np.random.default_rng(spec.seed + 2)
    weights = [rng.normal(size=s).astype("float32") for s in shapes]

    def loss_fn():
        values = [keras.ops.convert_to_tensor(x) for x in xs]
        for k, variable in zip(floats, inputs):
            values[k] = keras.ops.convert_to_tensor(variable.value)
        return readout(keras.tree.flatten(model(feed(values), training=True)), weights)

    return value_and_grads(loss_fn, list(model.trainable_variables) + inputs)


@budget("gradients")
@given(spec=grammar.models())
def test_gradients(spec):
    """Gradients w.r.t. weights and inputs; with dropout, only their shapes (random masks)."""
    tried("gradients")
    fresh()
    ours, ref = pair(spec, probe=False)
    xs = arrays(spec, ref)
    (loss, got), (want_loss, want) = gradients(ours, xs, spec), gradients(ref, xs, spec)
    if spec.has_dropout:
        assert_same_shapes(got, want, "gradients")
        assert_finite_where(got, want, "gradients")
        return
    np.testing.assert_allclose(loss, want_loss, atol=ATOL_GRAD, rtol=RTOL_GRAD, err_msg="loss")
    names = [v.path for v in ref.trainable_variables] + ["inputs"] * (
        len(want) - len(ref.trainable_variables)
    )
    for name, g, w in zip(names, got, want, strict=True):
        assert g.shape == w.shape, (name, g.shape, w.shape)
        np.testing.assert_allclose(
            g, w, atol=ATOL_GRAD, rtol=RTOL_GRAD, err_msg=f"d loss / d {name}"
        )


def targets(model, xs, spec):
    rng = np.random.default_rng(spec.seed + 3)
    shapes = [o.shape for o in flat(model(feed(xs), training=False))]
    reset_states(model)
    return [rng.normal(size=s).astype("float32") for s in shapes]


def compile_for_fit(model, n_outputs, **kw):
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=["mse"] * n_outputs, **kw)


# Found by the long profile: an all-masked row's masked mean is 0/0 = NaN in both models, and
# with dropout on the harness once demanded finite losses.
ALL_MASKED_ROW_WITH_DROPOUT = grammar.ModelSpec(
    inputs=grammar.InputSpec(
        batch=1, time=1, static_time=False, features=1, masking="embedding", rows=((False,),)
    ),
    blocks=(
        grammar.BlockSpec(
            wrapper="rnn",
            cells=(
                grammar.CellSpec(
                    kind="lstm", units=1, options=(("recurrent_dropout", 0.5),), keras_cell=False
                ),
            ),
            return_sequences=True,
            return_state=False,
            go_backwards=False,
            stateful=True,
            merge_mode="concat",
            backward=None,
        ),
    ),
    initial_state="none",
    head="pooling",
    nested=False,
    chained=False,
    seed=0,
)


@budget("fit_evaluate")
@given(spec=grammar.models())
@example(spec=ALL_MASKED_ROW_WITH_DROPOUT)
def test_fit_step_and_evaluate(spec):
    """evaluate's loss, then train_on_batch's loss and updated weights (with dropout: finite)."""
    tried("fit_evaluate")
    fresh()
    ours, ref = pair(spec, probe=False)
    xs = arrays(spec, ref)
    ys = targets(ref, xs, spec)
    reset_states(ours)
    for model in (ours, ref):
        compile_for_fit(model, len(ys))
    batch = spec.inputs.batch  # evaluate first: at inference, so comparable with dropout too
    got = np.atleast_1d(ours.evaluate(feed(xs), feed(ys), batch_size=batch, verbose=0))
    want = np.atleast_1d(ref.evaluate(feed(xs), feed(ys), batch_size=batch, verbose=0))
    np.testing.assert_allclose(got, want, atol=ATOL_FIT, rtol=0, err_msg="evaluate loss")
    for model in (ours, ref):
        reset_states(model)
    got = np.atleast_1d(ours.train_on_batch(feed(xs), feed(ys)))
    want = np.atleast_1d(ref.train_on_batch(feed(xs), feed(ys)))
    if spec.has_dropout:
        assert got.shape == want.shape, (got, want)
        assert_finite_where(got, want, "train_on_batch loss")
    else:
        np.testing.assert_allclose(got, want, atol=ATOL_FIT, rtol=0, err_msg="train_on_batch loss")
        for o, r in zip(ours.weights, ref.weights, strict=True):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(o),
                keras.ops.convert_to_numpy(r),
                atol=ATOL_FIT,
                rtol=0,
                err_msg=f"{o.path} after one step",
            )
