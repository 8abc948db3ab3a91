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

Variable-length windows (`variable_bptt_batches`) replace k*T by s_k = T_1 + ... + T_{k-1}
and T by T_k. AWD-LSTM (Merity et al. 2017, section 4.1) draws each T_k afresh every epoch
(`window_lengths`), so window boundaries move between epochs; its windows tile all L - 1
input steps of every row, the last window being whatever remains.

Symbols: N tokens, B = batch_size, T = seq_len, L = N // B steps per row, K batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_gated import checks

# AWD-LSTM's window-length rule (`window_lengths`).
FULL_PROBABILITY = 0.95  # a window's mean length is T with this probability, else T / 2
LENGTH_STD = 5.0  # standard deviation of a window's length about its mean
MIN_LENGTH = 5  # shorter draws are raised to this
MAX_OVER = 20  # longer draws than T + MAX_OVER are cut to it (bounds the compiled shapes)


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
    needs = (
        f"seq_len={seq_len} needs at least {batch_size * (seq_len + 1)} tokens "
        "(batch_size * (seq_len + 1))"
    )
    streams = _streams(ids, batch_size, seq_len + 1, needs)  # (B, L)
    k = num_batches(streams.size, batch_size, seq_len)
    used = k * seq_len
    # (B, K*T) -> (B, K, T) -> (K, B, T): window k of every row.
    inputs = streams[:, :used].reshape(batch_size, k, seq_len).transpose(1, 0, 2)
    targets = streams[:, 1 : used + 1].reshape(batch_size, k, seq_len).transpose(1, 0, 2)
    import tensorflow as tf  # here, so the tokenizers import without TensorFlow

    return tf.data.Dataset.from_tensor_slices((inputs, targets))


def window_lengths(steps: int, seq_len: int, rng: np.random.Generator) -> list[int]:
    """AWD-LSTM's window lengths T_1..T_K, tiling `steps` input steps (sum == `steps`).

    Each is drawn as

        mu_k = T with probability 0.95, else T / 2
        T_k  = min(max(5, round(x_k)), T + 20)        x_k ~ Normal(mu_k, 5^2)

    except the last, which is what remains (1 <= T_K <= its draw). AWD-LSTM truncates x_k
    (`int`) where this rounds it, and has no upper bound; the bound keeps the number of
    distinct lengths, each a compiled shape, at most T + 20 (a draw above it has
    probability about 3e-5). The rule is meant for T well above 5 (AWD-LSTM: T = 70).

    Args:
        steps: input steps to tile, L - 1 for rows of L tokens (>= 0).
        seq_len: T (> 0).
        rng: the generator every draw comes from, in order.
    """
    _check_positive(seq_len=seq_len)
    lengths, left = [], steps
    while left > 0:
        mean = seq_len if rng.random() < FULL_PROBABILITY else seq_len / 2
        drawn = int(np.rint(rng.normal(mean, LENGTH_STD)))
        drawn = min(max(MIN_LENGTH, drawn), seq_len + MAX_OVER)
        lengths.append(min(drawn, left))
        left -= lengths[-1]
    return lengths


def variable_bptt_batches(ids: Sequence[int] | np.ndarray, batch_size: int, lengths: Sequence[int]):
    """Returns the batches of windows of the given lengths, in order, as a ``tf.data.Dataset``.

    Window k covers steps s_k .. s_k + T_k - 1 of every row, s_k = T_1 + ... + T_{k-1}:

        inputs[k][b, t]  = ids[b*L + s_k + t]
        targets[k][b, t] = ids[b*L + s_k + t + 1]        t = 0 .. T_k - 1

    Args:
        ids: token ids, shape (N,).
        batch_size: B.
        lengths: T_1..T_K, each > 0, summing to at most L - 1; ``window_lengths(L - 1, ...)``
            tiles every row whole.

    Returns:
        A dataset of K pairs ``(inputs, targets)``, int32 of shape (B, T_k) (element spec
        (B, None)).

    Raises:
        ValueError: as `bptt_batches`, a length <= 0, or lengths summing to more than L - 1.
    """
    _check_positive(batch_size=batch_size)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or not lengths.size or lengths.min() <= 0:
        raise ValueError(f"lengths must be positive integers, got {lengths.tolist()}")
    total = int(lengths.sum())
    needs = (
        f"windows of {total} steps need at least {batch_size * (total + 1)} tokens "
        f"(batch_size * ({total} + 1))"
    )
    streams = _streams(ids, batch_size, total + 1, needs)  # (B, L)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    import tensorflow as tf

    rows = tf.constant(streams)

    def window(start, length):
        return rows[:, start : start + length], rows[:, start + 1 : start + 1 + length]

    return tf.data.Dataset.from_tensor_slices((starts, lengths)).map(window)


def _streams(ids, batch_size, row_tokens, needs):
    """The (B, L) int32 rows of `ids`; ValueError (ending with `needs`) if L < `row_tokens`."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError(f"ids must be a 1-D integer sequence, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        raise ValueError(f"ids must lie in [0, 2**31), got range [{ids.min()}, {ids.max()}]")
    if len(ids) < batch_size * row_tokens:
        raise ValueError(
            f"a stream of {len(ids)} tokens is too short for one batch: "
            f"batch_size={batch_size}, {needs}"
        )
    steps = len(ids) // batch_size  # L
    return ids[: batch_size * steps].astype(np.int32).reshape(batch_size, steps)


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        checks.positive_int(name, value)
