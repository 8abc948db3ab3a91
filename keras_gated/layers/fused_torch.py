"""The fused recurrence's time loops and custom gradient on PyTorch (see `fused.py`).

One `torch.autograd.Function` around both loops, each a plain Python loop over `loops.step`
and `loops.back`: autograd records one node for the whole sequence instead of a graph of T
steps (what `keras.ops.scan`, a Python loop on torch, leaves behind), and the recurrent weight
gradient is one matmul over all B*T rows (`fused._gram`). The forward loop runs without
recording (`Function.forward` is under no_grad); the dropout mask m_h inside the chain and the
sequence and zoneout masks are constants of the loops.
"""

import torch


class _Recurrence(torch.autograd.Function):
    """apply(loops, names, masks, xs, *weights, *states) -> (hs (T, B, U), *final states)."""

    @staticmethod
    def forward(ctx, loops, names, masks, xs, *tensors):
        weights = dict(zip(names, tensors))
        states = list(tensors[len(names) :])
        inputs = loops.step_inputs(masks)
        steps = []
        for t in range(xs.shape[0]):
            inputs_t = {k: v[t] for k, v in inputs.items()}
            states, rows_t = loops.step(xs[t], inputs_t, states, weights)
            steps.append(rows_t)
        rows = [torch.stack(r) for r in zip(*steps)]  # n_rows of (T, B, .)
        ctx.loops, ctx.names, ctx.masks, ctx.n_states = loops, names, masks, len(states)
        ctx.save_for_backward(xs, *tensors, *rows)
        return (rows[0], *states)

    @staticmethod
    def backward(ctx, dys, *d_final):
        loops, names, masks = ctx.loops, ctx.names, ctx.masks
        xs, *saved = ctx.saved_tensors
        n_w, n_s = len(names), ctx.n_states
        weights = dict(zip(names, saved[:n_w]))
        states0, rows = list(saved[n_w : n_w + n_s]), list(saved[n_w + n_s :])
        prev, factors, with_transposed = loops.backward_inputs(states0, rows, masks, weights)
        d_states, parts = list(d_final), []
        for t in reversed(range(dys.shape[0])):
            factors_t = {k: f[t] for k, f in factors.items()}
            dx_t, d_states = loops.back(dys[t], factors_t, d_states, with_transposed)
            parts.append(dx_t)
        dx_parts = [torch.stack(p[::-1]) for p in zip(*parts)]  # n_dx of (T, B, .)
        dxs, d_weights = loops.gradients(prev, rows, dx_parts, weights)
        dxs, d_inputs = loops.input_gradients(xs, dxs, weights)
        d_weights += d_inputs
        return (None, None, None, dxs, *d_weights, *d_states)


def recurrence(loops, xs, masks, weights, states):
    """Runs `loops.step` over time-major `xs` (T, B, .) with the gradient of `loops.back`.

    masks: {name: (T, B, .)} (`fused.Loops`). Returns the carried h_t (T, B, U) and the final
    states.
    """
    names = tuple(weights)
    hs, *final = _Recurrence.apply(loops, names, masks, xs, *weights.values(), *states)
    return hs, final
