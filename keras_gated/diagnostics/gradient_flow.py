"""How far back in time the gradient reaches: ||d loss / d h_t|| for every step t.

For a recurrent layer run over x (B, T, D) with states s_t = [h_t] or [h_t, c_t], the
backward pass sends the gradient from step t to step t - 1 through the Jacobian
d s_t / d s_{t-1}. For the vanilla RNN h_t = act(x_t W + h_{t-1} U + b):

    (1) d loss/d h_{t-1} = (d loss/d h_t * act'(a_t)) U^T   + (direct terms of loss at t - 1)

so with |act'| <= 1 (tanh, linear) each step multiplies the norm by at most sigma_1(U), the
largest singular value of U: the gradient shrinks (sigma_1 < 1) or may grow (sigma_1 > 1)
exponentially in the distance back. The LSTM's cell state instead sends it back through
c_t = f_t * c_{t-1} + ..., an element-wise product with a different forget gate at each step.

How it is measured: `unroll` runs the layer's own cell (`cell.project_inputs` once, then
`cell.step` per step: the real weights and the real step function, not a re-implementation)
in a Python loop under a `tf.GradientTape` that watches every state tensor s_t the step
returns. The tape's gradient with respect to that tensor sums over all its uses, so it is the
total derivative d loss/d s_t: through the output at t, through h_t = o_t * tanh(c_t) for an
LSTM's c_t, and through every later step. One backward pass gives all of them.

Norms: `loss` is a batch mean; ||d loss/d h_t|| is the L2 norm over the whole (B, U) tensor.
Inference only: no dropout. With `go_backwards=True`, t counts processing steps.
"""

import numpy as np
import tensorflow as tf
from keras import ops

LOSS_AT = ("all", "last")  # loss over every step's prediction, or the last step's only


def state_names(layer):
    """Names of a layer's states, in order: ("h",) or ("h", "c") (LSTM)."""
    size = layer.cell.state_size
    count = len(size) if isinstance(size, (list, tuple)) else 1
    if count not in (1, 2):
        raise ValueError(f"{layer.name} has {count} states; expected [h] or [h, c]")
    return ("h", "c")[:count]


def _stepper(cell, x):
    """step(t, states) -> (h_t, states_t) on the cell's own code."""
    if hasattr(cell, "project_inputs"):  # keras_gated cells: hoisted input projection
        xw = cell.project_inputs(x)
        return lambda t, states: cell.step(xw[:, t], states)
    return lambda t, states: cell(x[:, t], states)  # e.g. keras.layers.LSTMCell


def unroll(layer, inputs, initial_state=None, tape=None):
    """Runs `layer`'s cell over `inputs` one step at a time, at inference.

    Args:
        layer: a built recurrent layer with a `cell` (ours, or a Keras built-in one).
        inputs: x (B, T, D).
        initial_state: optional list of (B, U); zeros by default.
        tape: optional `tf.GradientTape` that watches each state as soon as it is computed.

    Returns:
        outputs (B, T, U) (= h_t at each step) and the list of per-step states, each a list
        over time of (B, U) tensors: `states[k][t]` is state k (h, then c) after step t.
    """
    x = ops.convert_to_tensor(inputs, dtype=layer.compute_dtype)
    if getattr(layer, "go_backwards", False):
        x = ops.flip(x, axis=1)
    states = list(initial_state or layer.cell.get_initial_state(ops.shape(x)[0]))
    step = _stepper(layer.cell, x)
    history = [[] for _ in states]
    for t in range(x.shape[1]):
        _, states = step(t, list(states))
        if tape is not None:
            tape.watch(states)
        for k, s in enumerate(states):
            history[k].append(s)
    outputs = ops.stack(history[0], axis=1)
    return outputs, history


def _norms(grads):
    """Per-step gradients, a list over t of (B, U) -> (T,) L2 norms over (B, U)."""
    return np.array([np.linalg.norm(ops.convert_to_numpy(g).astype("float64")) for g in grads])


def layer_gradient_norms(layer, inputs, loss_fn, initial_state=None):
    """||d loss/d s_t|| for every step t of one layer, by autodiff on the layer's cell.

    Args:
        layer: a built recurrent layer.
        inputs: x (B, T, D).
        loss_fn: outputs (B, T, U) tensor -> scalar loss, e.g. a readout on `outputs[:, -1]`.
        initial_state: optional list of (B, U).

    Returns:
        dict state name -> (T,) float64 array: "h" (and "c" for an LSTM).
    """
    with tf.GradientTape() as tape:
        outputs, states = unroll(layer, inputs, initial_state, tape)
        loss = loss_fn(outputs)
    grads = tape.gradient(loss, states, unconnected_gradients="zero")
    return {name: _norms(g) for name, g in zip(state_names(layer), grads)}


def next_token_loss(logits, targets, loss_at="all"):
    """Mean cross-entropy of logits (B, T, V) against targets (B, T): every step or the last."""
    if loss_at not in LOSS_AT:
        raise ValueError(f"`loss_at` must be one of {LOSS_AT}, got {loss_at!r}")
    if loss_at == "last":
        logits, targets = logits[:, -1:], targets[:, -1:]
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, "int32"), logits)
    return tf.reduce_mean(nll)


def unrolled_logits(model, tokens, tape=None):
    """`LanguageModel.call_with_states` at inference with every recurrent layer run by `unroll`.

    Args:
        model: a `LanguageModel` (its `embedding`, `rnn_layers`, `dropouts`).
        tokens: (B, T) int.
        tape: optional `tf.GradientTape` for `unroll`.

    Returns:
        logits (B, T, V), and dict layer name -> (inputs (B, T, D), per-step states as `unroll`).
    """
    layers = {}

    def run_layer(layer, inputs, initial_state, training):
        outputs, states = unroll(layer, inputs, initial_state, tape=tape)
        layers[layer.name] = (inputs, states)
        return [outputs, *(per_step[-1] for per_step in states)]

    logits, _ = model.call_with_states(tokens, run_layer=run_layer)
    return logits, layers


def model_gradient_norms(model, tokens, targets, loss_at="all"):
    """||d loss/d s_t|| for each recurrent layer of a language model, in one backward pass.

    Args:
        model: a `LanguageModel`.
        tokens: inputs (B, T) int.
        targets: next tokens (B, T) int.
        loss_at: "all" (mean next-token loss over every step) or "last" (the last step only,
            so the gradient at step t has travelled T - 1 - t steps back).

    Returns:
        dict layer name -> dict state name -> (T,) float64 array ("h", and "c" for an LSTM).
    """
    tokens = ops.convert_to_tensor(tokens, dtype="int32")
    with tf.GradientTape() as tape:
        logits, layers = unrolled_logits(model, tokens, tape)
        loss = next_token_loss(logits, targets, loss_at)
    states = {name: per_step for name, (_, per_step) in layers.items()}
    grads = tape.gradient(loss, states, unconnected_gradients="zero")
    return {
        layer.name: {n: _norms(g) for n, g in zip(state_names(layer), grads[layer.name])}
        for layer in model.rnn_layers
    }


def growth_rates(norms):
    """Per-step ratios ||g_{t-1}|| / ||g_t|| going back in time, (T - 1,), from norms (T,).

    Entry k is the factor from distance k to distance k + 1 back from the last step.
    """
    back = np.asarray(norms, dtype="float64")[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return back[1:] / back[:-1]


def gradient_reach(norms):
    """||g_1|| / ||g_T|| from norms (T,) indexed by step: the share of the last step's gradient
    that reaches the first step (NaN when the last is zero)."""
    norms = np.asarray(norms, dtype="float64")
    return float(norms[0] / norms[-1]) if norms[-1] > 0 else float("nan")


def largest_singular_value(matrix):
    """sigma_1 of a 2-D matrix (its spectral norm)."""
    return float(np.linalg.svd(np.asarray(matrix, dtype="float64"), compute_uv=False)[0])
