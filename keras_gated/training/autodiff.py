"""Gradients of a scalar function of a model's variables, on every Keras backend.

Keras has no public backend-neutral gradient function (its trainers each use their own
backend's autodiff); this is the one place that does the same for what we measure outside
`fit` (the gradient norm before clipping).
"""

import keras
import numpy as np


def gradients(loss_fn, variables):
    """[d loss_fn() / d w as numpy, zeros where unconnected] for each Keras variable w."""
    variables = list(variables)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = [
            None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)
        ]  # (a mirrored variable has no
        # single `value` outside a replica context)
    elif backend == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn()

        grads = jax.grad(pure)([v.value for v in variables])
    elif backend == "torch":
        import torch

        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(loss_fn(), tensors, allow_unused=True)
    else:
        raise NotImplementedError(f"no gradients on the {backend} backend")
    return [
        np.zeros(tuple(v.shape), np.float32)
        if g is None
        else np.asarray(keras.ops.convert_to_numpy(g))
        for v, g in zip(variables, grads)
    ]
