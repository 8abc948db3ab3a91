"""The fused recurrence's time loops and custom gradient on JAX (see `fused.py`).

`jax.lax.scan` for both loops, `jax.custom_vjp` around them: the forward scan's gradient is
the backward scan, run in reverse, and the recurrent weight gradient one matmul over all
B*T rows (`fused._gram`) where automatic differentiation of the scan accumulates a (U, G*U)
product at every step. The dropout mask m_h inside the chain is a constant of the loops; the
sequence and zoneout masks are inputs without a gradient.
"""

import jax


def recurrence(loops, xs, masks, weights, states):
    """Runs `loops.step` over time-major `xs` (T, B, .) with the gradient of `loops.back`.

    masks: {name: (T, B, .)} (`fused.Loops`). Returns the carried h_t (T, B, U) and the final
    states.
    """
    names = list(weights)  # the order of the weight gradients (JAX sorts a dict's keys)

    def forward(xs, weights, states, masks):
        def body(states, inputs):
            xw_t, inputs_t = inputs
            return loops.step(xw_t, inputs_t, list(states), weights)

        return jax.lax.scan(body, list(states), (xs, loops.step_inputs(masks)))

    @jax.custom_vjp
    def run(xs, weights, states, masks):
        final, rows = forward(xs, weights, states, masks)
        return rows[0], final

    def run_forward(xs, weights, states, masks):
        final, rows = forward(xs, weights, states, masks)
        return (rows[0], final), (xs, weights, states, rows, masks)

    def run_backward(saved, cotangents):
        xs, weights, states, rows, masks = saved
        dys, d_final = cotangents
        prev, factors, with_transposed = loops.backward_inputs(states, rows, masks, weights)

        def body(d_states, inputs):
            dy_t, factors_t = inputs
            return loops.back(dy_t, factors_t, list(d_states), with_transposed)[::-1]

        d_states0, dx_parts = jax.lax.scan(body, list(d_final), (dys, factors), reverse=True)
        dxs, d_weights = loops.gradients(prev, rows, list(dx_parts), weights)
        dxs, d_inputs = loops.input_gradients(xs, dxs, weights)
        d_weights += d_inputs
        d_masks = jax.tree.map(jax.numpy.zeros_like, masks)  # masks get no gradient
        return dxs, dict(zip(names, d_weights)), list(d_states0), d_masks

    run.defvjp(run_forward, run_backward)
    hs, final = run(xs, weights, list(states), masks)
    return hs, list(final)
