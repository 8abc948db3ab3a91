"""Several replicas and workers training one model: whose rows each reads, who writes, sums.

Rows. The global batch is B contiguous streams, row r the token stretch ids[r L : (r+1) L]
(`data.bptt_batches`). Replica q of R carries rows [q b, (q+1) b), b = B / R, at every step,
so it can carry their state from window to window (`keras_private.create_state_variables`),
and its worker reads only that stretch of the stream: the same windows as the global batch's
rows, cut from ids[q b L : (q+1) b L] with batch b (`replica_windows`). On JAX the step sees
the global batch: process w of n reads rows [w B/n, (w+1) B/n) the same way, and Keras lays
them out over its devices.

Writing. Only the chief writes the run directory; every other worker runs the same callbacks
(saving reads variables that all workers must read together) into a temporary directory it
removes at the end, as Keras's multi-worker guide does (`written_dir`). All workers read a
resumed run from the run directory (one host, or a shared file system).

Sums. Each worker evaluates its rows; `sum_over_workers` adds the workers' totals, so a split
is covered once.
"""

import contextlib
import shutil
import tempfile

import keras
import numpy as np

from keras_gated.training.windows import TrainingWindows


def tf_strategy(strategy):
    """True for a `tf.distribute` strategy (replicas inside each step), False for None or a
    `keras.distribution` one (JAX: the step sees the global batch, sharded by rows)."""
    return strategy is not None and not isinstance(strategy, keras.distribution.DataParallel)


def workers(strategy):
    """(this process's index, number of worker processes)."""
    if strategy is None:
        return 0, 1
    if not tf_strategy(strategy):
        import jax

        return jax.process_index(), jax.process_count()
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1
    spec = resolver.cluster_spec().as_dict()
    order = [(kind, i) for kind in ("chief", "worker") for i in range(len(spec.get(kind, ())))]
    return order.index((resolver.task_type, resolver.task_id)), len(order)


@contextlib.contextmanager
def written_dir(out, chief):
    """The directory this worker writes: `out` on the chief, elsewhere a temporary one,
    removed on exit."""
    if chief:
        yield out
        return
    scratch = tempfile.mkdtemp(prefix="keras-gated-worker-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def replica_windows(strategy, ids, batch_size, seq_len, variable, seed, steps_per_epoch):
    """[TrainingWindows] of each of this process's replicas, in replica order (one without
    a `tf.distribute` strategy: this process's rows of the global batch, all of them in one
    process).

    Raises:
        ValueError: `batch_size` is not a multiple of the replicas.
    """
    w, n = workers(strategy)
    if not tf_strategy(strategy):  # JAX: process w reads rows [w B/n, (w+1) B/n), which
        if batch_size % n:  # Keras lays out over its devices
            raise ValueError(
                f"the batch size {batch_size} must be a multiple of the {n} "
                "processes, each reading as many streams: pass such a --batch-size"
            )
        return [
            TrainingWindows(
                replica_stream(ids, batch_size, w, n),
                batch_size // n,
                seq_len,
                variable,
                seed,
                steps_per_epoch,
            )
        ]
    b = per_replica_batch(strategy, batch_size)
    replicas = strategy.num_replicas_in_sync
    local = replicas // n
    return [
        TrainingWindows(
            replica_stream(ids, batch_size, q, replicas),
            b,
            seq_len,
            variable,
            seed,
            steps_per_epoch,
        )
        for q in range(w * local, (w + 1) * local)
    ]


def per_replica_batch(strategy, batch_size):
    """b = B / R, the rows each replica carries (B without a `tf.distribute` strategy)."""
    if not tf_strategy(strategy):
        return batch_size
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"the batch size {batch_size} must be a multiple of the {replicas} "
            "replicas, each carrying as many streams: pass such a --batch-size"
        )
    return batch_size // replicas


def replica_stream(ids, batch_size, q, replicas):
    """ids[q b L : (q+1) b L]: the rows of replica q of `replicas` as a stream of its own."""
    length = len(ids) // batch_size  # L
    b = batch_size // replicas
    return np.asarray(ids)[q * b * length : (q + 1) * b * length]


def distribute(strategy, datasets):
    """The per-replica datasets of this process (each (x, y) (b, T) batches) as one
    distributed dataset: replica q gets its own dataset's batch at every step.

    A `tf.distribute` strategy hands a worker's dataset elements to its replicas in turn.
    """
    if not tf_strategy(strategy):
        return datasets[0]
    import tensorflow as tf

    def worker_dataset(context):
        if len(datasets) == 1:
            return datasets[0]
        steps = datasets[0].cardinality()
        turns = tf.data.Dataset.range(len(datasets)).repeat(steps)
        return tf.data.Dataset.choose_from_datasets(datasets, turns)

    return strategy.distribute_datasets_from_function(worker_dataset)


def sum_over_workers(strategy, values):
    """The elementwise sum of each worker's float64 `values` (1-D), on every worker."""
    values = np.asarray(values, dtype=np.float64)
    if workers(strategy)[1] == 1:
        return values
    if not tf_strategy(strategy):
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)
    import tensorflow as tf

    local = len(strategy.extended.worker_devices)
    # Each worker's total enters through its first replica; the others add zeros.
    per_replica = strategy.run(
        lambda: tf.where(
            tf.distribute.get_replica_context().replica_id_in_sync_group % local == 0,
            tf.constant(values),
            tf.zeros_like(values),
        )
    )
    return strategy.reduce("SUM", per_replica, axis=None).numpy()


def check_same_checkpoint(strategy, out, epochs_done):
    """Raises ValueError unless every worker found the same checkpoint (`epochs_done`) in
    the run directory: they all read it, so it must be one directory they share.

    All equal iff (sum e)^2 = n sum e^2 (Cauchy-Schwarz).
    """
    n = workers(strategy)[1]
    if n == 1:
        return
    total, squares = sum_over_workers(strategy, [epochs_done, epochs_done**2])
    if total * total != n * squares:
        raise ValueError(
            f"the workers found different checkpoints (this one: {epochs_done} epochs done in "
            f"{out!r}, on average {total / n:g}): every worker must see the same run directory "
            "(pass the same --out on a shared file system, or run the workers on one host)"
        )


@contextlib.contextmanager
def lost_workers(strategy):
    """Turns the collective ops' failure when another worker stops (TensorFlow notices
    within seconds: its heartbeats stop) into one RuntimeError saying how to resume."""
    if not tf_strategy(strategy) or workers(strategy)[1] == 1:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.DeadlineExceededError,
        tf.errors.CancelledError,
    ) as error:
        cause = " ".join(str(error.message).split())[:300]
        raise RuntimeError(
            f"another worker stopped ({cause}): training stopped on this worker too; run the "
            "same command on every worker again to resume from the last checkpoint"
        ) from None
