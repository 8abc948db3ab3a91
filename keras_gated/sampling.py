"""Next-token sampling shared by Keras generation and the onnxruntime runtime (numpy only)."""

import numpy as np


def check_sampling(temperature, top_k):
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"`top_k` must be a positive integer or None, got {top_k!r}")


def sample_next(logits, temperature=1.0, top_k=None, rng=None):
    """Samples one id per row from logits (B, V) at `temperature`, among the `top_k` best.

    Returns:
        (B,) int64 ids.
    """
    check_sampling(temperature, top_k)
    rng = rng if rng is not None else np.random.default_rng()
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(p.shape[-1], p=row) for row in p], dtype=np.int64)
