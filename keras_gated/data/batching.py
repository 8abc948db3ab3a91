"""Truncated-backpropagation-through-time (BPTT) batches, the classic PTB recipe.

A stream of N token ids is cut into B contiguous streams of L = N // B tokens each
(the last N - B*L tokens are dropped); row b holds ids[b*L : (b+1)*L]. Batch k is the
window of T steps starting at step k*T of every row:

    inputs[k][b, t]  = ids[b*L + k*T + t]
    targets[k][b, t] = ids[b*L + k*T + t + 1]        t = 0 .. T-1

so targets are inputs shifted by one, also across windows: the target of the last input
of window k is the first input of window k+1. Since a target needs one more token, there
are K = (L - 1) // T windows; the last incomplete window is dropped. Row b of batch k+1
continues row b of batch k, so a model may carry its hidden state from one batch to the
next (as Zaremba et al. 2014 and the TensorFlow PTB tutorial do).

Symbols: N tokens, B = batch_size, T = seq_len, L = N // B steps per row, K batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def num_batches(n_tokens: int, batch_size: int, seq_len: int) -> int:
    """Returns K = (n_tokens // batch_size - 1) // seq_len, the batches per epoch (>= 0).

    Raises:
        ValueError: ``batch_size`` or ``seq_len`` is <= 0, or ``n_tokens`` < 0.
    """
    _check_positive(batch_size=batch_size, seq_len=seq_len)
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    return max(0, (n_tokens // batch_size - 1) // seq_len)


def bptt_batches(ids: Sequence[int] | np.ndarray, batch_size: int, seq_len: int):
    """Returns the K batches of a token stream, in order, as a ``tf.data.Dataset``.

    Args:
        ids: token ids, shape (N,).
        batch_size: B, the number of parallel contiguous streams.
        seq_len: T, the steps per window.

    Returns:
        A dataset of K = ``num_batches(N, B, T)`` pairs ``(inputs, targets)``, each int32
        of shape (B, T), with ``targets`` the next token of each input (module docstring).

    Raises:
        ValueError: ``batch_size`` or ``seq_len`` is <= 0; ``ids`` is not a 1-D integer
            sequence in [0, 2**31); or ``ids`` has fewer than B * (T + 1) tokens, the least
            for one batch.
    """
    _check_positive(batch_size=batch_size, seq_len=seq_len)
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError(f"ids must be a 1-D integer sequence, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        raise ValueError(f"ids must lie in [0, 2**31), got range [{ids.min()}, {ids.max()}]")
    needed = batch_size * (seq_len + 1)
    if len(ids) < needed:
        raise ValueError(
            f"a stream of {len(ids)} tokens is too short for one batch: batch_size={batch_size}, "
            f"seq_len={seq_len} needs at least {needed} tokens (batch_size * (seq_len + 1))"
        )
    steps = len(ids) // batch_size  # L
    streams = ids[: batch_size * steps].astype(np.int32).reshape(batch_size, steps)  # (B, L)
    k = num_batches(len(ids), batch_size, seq_len)
    used = k * seq_len
    # (B, K*T) -> (B, K, T) -> (K, B, T): window k of every row.
    inputs = streams[:, :used].reshape(batch_size, k, seq_len).transpose(1, 0, 2)
    targets = streams[:, 1 : used + 1].reshape(batch_size, k, seq_len).transpose(1, 0, 2)
    import tensorflow as tf  # here, so the tokenizers import without TensorFlow

    return tf.data.Dataset.from_tensor_slices((inputs, targets))


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
