"""Activation regularisation (AR) and temporal activation regularisation (TAR) of a sequence.

    (1) AR  = alpha * mean_{b, t, u} y[b, t, u]^2                       y (B, T, U)
    (2) TAR = beta * mean_{b, t >= 2, u} (h[b, t, u] - h[b, t - 1, u])^2   h (B, T, U)

AR keeps activations small, TAR keeps them slow. In a language model (awd-lstm) y is the last
recurrent layer's output after its dropout and h the same output before it; each is a term of
the training loss only. With T = 1 there is no pair of steps and TAR is 0.

Reference: Merity, McCann & Socher 2017, "Revisiting Activation Regularization for Language
RNNs"; awd-lstm's `alpha` and `beta`.
"""

import keras
from keras import ops


def activation_regularization(y, alpha):
    """(1): alpha times the mean square of y (B, T, U); a scalar in Keras's float type."""
    y = ops.cast(y, keras.backend.floatx())
    return alpha * ops.mean(ops.square(y))


def temporal_activation_regularization(h, beta):
    """(2): beta times the mean square of h_t - h_{t-1} over h (B, T, U); 0 when T = 1."""
    h = ops.cast(h, keras.backend.floatx())
    d = h[:, 1:] - h[:, :-1]
    count = ops.cast(ops.shape(d)[0] * ops.shape(d)[1] * ops.shape(d)[2], h.dtype)
    return beta * ops.sum(ops.square(d)) / ops.maximum(count, 1.0)
