"""Where the training step runs: XLA compilation and data parallelism (`tf.distribute`
strategies on TensorFlow, `keras.distribution` on JAX)."""

import contextlib

import keras

from keras_gated.keras_private import multiworker_fit
from keras_gated.layers.recurrent import cudnn_path
from keras_gated.training.workers import tf_strategy, workers


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
    return (
        config.xla
        and config.cell != "keras-lstm"
        and config.strategy == "none"
        and not cudnn.gpu_available()
    )


def distribution_strategy(name):
    """The data-parallel scope for `TrainConfig.strategy` (None for "none"): an object with
    `.scope()`, inside which the model is made and trained.

    TensorFlow: "mirrored" is `tf.distribute.MirroredStrategy` over the local GPUs (or logical
    CPU devices); "multiworker" `tf.distribute.MultiWorkerMirroredStrategy`, each machine
    started with its own TF_CONFIG (see the README). JAX: "mirrored" is
    `keras.distribution.DataParallel` over `jax.devices()` (on a CPU,
    XLA_FLAGS=--xla_force_host_platform_device_count=N makes N); "multiworker" first joins the
    processes with `keras.distribution.initialize()` (KERAS_DISTRIBUTION_JOB_ADDRESSES,
    _NUM_PROCESSES and _PROCESS_ID, or JAX's cluster auto-detection), then the same over every
    process's devices. The batch size is the global batch, split evenly over replicas.
    torch: none here.
    """
    if name == "none":
        return None
    backend = keras.backend.backend()
    if backend == "jax":
        if name == "multiworker":
            keras.distribution.initialize()  # KERAS_DISTRIBUTION_* variables, or auto-detection
            # each process reads its own rows (`workers.replica_windows`), not a global batch
            return keras.distribution.DataParallel(auto_shard_dataset=False)
        return keras.distribution.DataParallel()
    if backend != "tensorflow":
        raise ValueError(f"--strategy {name} needs the TensorFlow or JAX backend, not {backend}")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def fit_scope(strategy, model, dataset):
    """Where `model.fit` runs: inside a `keras.distribution` scope (JAX: it lays out the batches
    there), outside a `tf.distribute` one (Keras's trainer enters it per step; callbacks such
    as the gradient-norm logger then run in the cross-replica context, where they can read
    mirrored variables); under `MultiWorkerMirroredStrategy`, with Keras's trainer mended
    (`keras_private.multiworker_fit`, from the first local batch (x, y) of `dataset`)."""
    if isinstance(strategy, keras.distribution.DataParallel):
        return strategy.scope()
    if tf_strategy(strategy) and workers(strategy)[1] > 1:
        return multiworker_fit(model, next(iter(dataset)))
    return contextlib.nullcontext()
