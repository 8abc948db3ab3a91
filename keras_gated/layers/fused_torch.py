"""The fused recurrence's time loops and custom gradient on PyTorch (see `fused.py`).

One `torch.autograd.Function` around both loops, each a plain Python loop over `loops.step`
and `loops.back`: autograd records one node for the whole sequence instead of a graph of T
steps (what `keras.ops.scan`, a Python loop on torch, leaves behind), and the recurrent weight
gradient is one matmul over all B*T rows (`fused._gram`). The forward loop runs without
recording (`Function.forward` is under no_grad); the dropout mask m_h inside the chain is a
constant of the loops.
"""

import torch


class _Recurrence(torch.autograd.Function):
    """apply(loops, names, m, xs, *weights, *states) -> (hs (T, B, U), *final states)."""

    @staticmethod
    def forward(ctx, loops, names, m, xs, *tensors):
        weights = dict(zip(names, tensors))
        states = list(tensors[len(names) :])
        valid = None if m is None else m > 0.0
        steps = []
        for t in range(xs.shape[0]):
            states, rows_t = loops.step(xs[t], None if valid is None else valid[t], states, weights)
            steps.append(rows_t)
        rows = [torch.stack(r) for r in zip(*steps)]  # n_rows of (T, B, .)
        ctx.loops, ctx.names, ctx.m, ctx.n_states = loops, names, m, len(states)
        ctx.save_for_backward(*tensors, *rows)
        return (rows[0], *states)

    @staticmethod
    def backward(ctx, dys, *d_final):
        loops, names, m = ctx.loops, ctx.names, ctx.m
        saved = ctx.saved_tensors
        n_w, n_s = len(names), ctx.n_states
        weights = dict(zip(names, saved[:n_w]))
        states0, rows = list(saved[n_w : n_w + n_s]), list(saved[n_w + n_s :])
        prev, factors, with_transposed = loops.backward_inputs(states0, rows, m, weights)
        d_states, parts = list(d_final), []
        for t in reversed(range(dys.shape[0])):
            dx_t, d_states = loops.back(dys[t], [f[t] for f in factors], d_states, with_transposed)
            parts.append(dx_t)
        dx_parts = [torch.stack(p[::-1]) for p in zip(*parts)]  # n_dx of (T, B, .)
        dxs, d_weights = loops.gradients(prev, rows, dx_parts, weights)
        return (None, None, None, dxs, *d_weights, *d_states)


def recurrence(loops, xs, m, weights, states):
    """Runs `loops.step` over time-major `xs` (T, B, G*U) with the gradient of `loops.back`.

    m: (T, B, 1) or None (M1). Returns the carried h_t (T, B, U) and the final states.
    """
    names = tuple(weights)
    hs, *final = _Recurrence.apply(loops, names, m, xs, *weights.values(), *states)
    return hs, final
