"""Backend-generic gradients for tests: one API over TensorFlow, JAX and torch.

`value_and_grads(loss_fn, variables)` differentiates a zero-argument function that calls
layers or models (reading their Keras variables) with respect to those variables:
    TensorFlow  tf.GradientTape around loss_fn()
    JAX         jax.value_and_grad of loss_fn run in a keras.StatelessScope that maps each
                variable to a traced value (what `layer.stateless_call` does inside)
    torch       torch.autograd.grad of loss_fn() with respect to the variables' tensors
Gradients come back as float numpy arrays, zeros where the loss does not depend on a
variable (TF and torch report None there; JAX reports zeros).
"""

import contextlib

import keras
import numpy as np


def backend():
    return keras.backend.backend()


def value_and_grads(loss_fn, variables):
    """(float loss, [numpy gradient per variable]) of the scalar `loss_fn()`."""
    variables = list(variables)
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, [v.value for v in variables])
    elif name == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn()

        loss, grads = jax.value_and_grad(pure)([v.value for v in variables])
    elif name == "torch":
        import torch

        tensors = [v.value for v in variables]
        assert all(t.requires_grad for t in tensors), "torch variables must be trainable"
        loss = loss_fn()
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    else:
        raise NotImplementedError(f"no gradients on the {name} backend")
    out = []
    for variable, grad in zip(variables, grads):
        if grad is None:
            out.append(np.zeros(tuple(variable.shape), dtype=variable.dtype))
        else:
            out.append(np.asarray(keras.ops.convert_to_numpy(grad)))
    return float(keras.ops.convert_to_numpy(loss)), out


def readout(tensors, weights):
    """sum_k sum(tensors[k] * weights[k]): a scalar that every entry of every tensor reaches."""
    total = 0.0
    for tensor, weight in zip(tensors, weights):
        total = total + keras.ops.sum(tensor * keras.ops.convert_to_tensor(weight, tensor.dtype))
    return total


@contextlib.contextmanager
def float64_policy():
    """float64 layers for the duration of the block, on every backend.

    Keras caches its global dtype policy at the first layer made, so `set_floatx` alone
    would not reach layers made afterwards. JAX computes in float32 unless x64 is enabled,
    which would silently make a float64 test a float32 one.
    """
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    x64 = None
    if backend() == "jax":
        import jax

        x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
        if x64 is not None:
            import jax

            jax.config.update("jax_enable_x64", x64)
