"""Where the training step runs: XLA compilation and `tf.distribute` strategies."""

import keras

from keras_gated.layers.recurrent import cudnn_path


def uses_xla(config):
    """`jit_compile` for the training step: on TensorFlow, `config.xla` for our cells on one
    CPU; on JAX and torch, Keras's default ("auto": XLA on JAX, eager on torch).

    On TensorFlow, Keras's "auto" leaves XLA off on CPU, where it slows Keras's own recurrent
    layers (`keras-lstm`); our layers' bounded loops gain from it (BENCHMARKS.md: `ours` vs
    `ours-noxla`). XLA cannot compile a step whose variables sit on several devices, nor the
    cuDNN kernels our layers use on a GPU (layers/cudnn.py).
    """
    if keras.backend.backend() != "tensorflow":
        return "auto"
    cudnn = cudnn_path()
    return (config.xla and config.cell != "keras-lstm" and config.strategy == "none"
            and not cudnn.gpu_available())


def distribution_strategy(name):
    """The `tf.distribute` strategy for `TrainConfig.strategy` (None for "none").

    "mirrored": data parallel over the local GPUs (or logical CPU devices); "multiworker":
    several machines, each started with its own TF_CONFIG (see the README). The batch size
    is the global batch, split evenly over replicas.
    """
    import tensorflow as tf

    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()
