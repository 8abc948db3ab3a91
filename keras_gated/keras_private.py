"""The one door to Keras's private modules (`keras.src`): every private name we use, and why.

Each import below has no public equivalent in the Keras versions we support (setup.cfg).
A Keras release that moves one fails here, at import, with the name that is missing,
rather than switching anything off silently.
"""

import contextlib
import importlib

import keras
from keras import tree

SUPPORTED_KERAS = ">=3.12,<3.16"  # as setup.cfg's install_requires


def _module(name):
    """`importlib.import_module(name)`, or an ImportError that says which Keras is needed."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"keras_gated needs Keras's private module {name}, which Keras "
            f"{keras.__version__} lacks ({error}); keras_gated supports Keras "
            f"{SUPPORTED_KERAS}"
        ) from error


def _attribute(obj, name):
    """`getattr(obj, name)`, or an AttributeError that says which Keras is needed."""
    try:
        return getattr(obj, name)
    except AttributeError as error:
        raise AttributeError(
            f"keras_gated needs Keras's private attribute "
            f"{type(obj).__name__}.{name}, which Keras {keras.__version__} "
            f"lacks; keras_gated supports Keras {SUPPORTED_KERAS}"
        ) from error


# `keras.layers.RNN` pre-creates the dropout masks of a cell that is a `DropoutRNNCell`
# (once per sequence, before the time loop, so the loop stays stateless on JAX) and clears
# them after the call; `StackedRNNCells` does so for each cell. A cell that wants per-sequence
# (variational) masks inside `keras.layers.RNN` has to be one: there is no public hook.
DropoutRNNCell = _attribute(_module("keras.src.layers.rnn.dropout_rnn_cell"), "DropoutRNNCell")


def tensorflow_rnn():
    """`keras.src.backend.tensorflow.rnn`, whose `lstm`/`gru` run cuDNN's fused kernels on a
    GPU (the public `keras.layers.LSTM` hides them behind its own cell). TensorFlow only.
    The package re-exports a function named `rnn`, so `from ... import rnn` may not give
    the module."""
    return _module("keras.src.backend.tensorflow.rnn")


@contextlib.contextmanager
def multiworker_fit(model, batch):
    """Where `model.fit`/`evaluate` run under `tf.distribute.MultiWorkerMirroredStrategy`.

    Keras's TensorFlow trainer fails there twice (keras-team/keras#20585;
    docs/keras_upstream.md, 5): it builds the model from the first distributed batch through
    `strategy.reduce("MEAN", (x, y))`, which that strategy refuses for a nested value, and it
    averages each step's logs over the workers with `strategy.reduce("MEAN", v, axis=0)`,
    which fails for the scalars a step returns. Here the model, loss, metrics and optimizer
    are built from one local `batch` (x, y) instead (only its shapes and dtypes matter), and
    scalar logs are averaged over the replicas whole (axis=None).
    """
    trainer = _module("keras.src.backend.tensorflow.trainer")
    keras_reduce = _attribute(trainer, "reduce_per_replica")
    multi_worker = _attribute(trainer, "_collective_all_reduce_multi_worker")
    symbolic_build = _attribute(model, "_symbolic_build")
    _attribute(model, "_maybe_symbolic_build")

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not multi_worker(strategy):
            return keras_reduce(values, strategy, reduction)

        def mean(v):
            rank = len(strategy.experimental_local_results(v)[0].shape)
            return strategy.reduce("MEAN", v, axis=0 if rank else None)

        return tree.map_structure(mean, values)

    with model.distribute_strategy.scope():
        symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer.reduce_per_replica = keras_reduce


_tracking = _module("keras.src.utils.tracking")


@_attribute(_tracking, "no_automatic_dependency_tracking")
def create_state_variables(layer, batch_size):
    """`keras.layers.RNN._create_state_variables` (a stateful layer's carried states, outside
    its weights), with each replica's own copy under a `tf.distribute` strategy.

    Keras's states are mirrored variables there, which a replica cannot assign its own rows
    to. These are on-read synchronised (`aggregation="only_first_replica"`): each replica
    reads and assigns its own (batch_size, units) state; an assignment outside the replicas
    (`reset_state`) reaches all of them. Without a strategy, or off TensorFlow, they are
    ordinary variables.
    """
    with keras.name_scope(layer.name, caller=layer):
        layer.states = [
            keras.Variable(
                value,
                trainable=False,
                dtype=layer.variable_dtype,
                name="rnn_state",
                synchronization="on_read",
                aggregation="only_first_replica",
            )
            for value in layer.get_initial_state(batch_size)
        ]


# -- the export's walk over a functional graph (export/model_graph.py, export/lower_layers.py) ------
# Keras exposes a functional model's layers and its inputs/outputs, not the graph between
# them: which layer call produced a tensor, in which order the calls run, and the masks the
# graph carries. The export walks that graph node by node, so it reads these.


def functional_graph(model):
    """The functional graph behind `model` (itself for a functional model, the one a built
    `Sequential` keeps in `_functional`), or None: not built, or subclassed."""
    if isinstance(model, keras.Sequential):
        return _attribute(model, "_functional")
    functional = _attribute(_module("keras.src.models.functional"), "Functional")
    return model if isinstance(model, functional) else None


def nodes_by_depth(functional):
    """{depth: [Node]}, Keras's execution order (deepest first)."""
    return _attribute(functional, "_nodes_by_depth")


def producing_node(kt):
    """The Node that computed the KerasTensor `kt`, or None for a tensor outside a graph."""
    history = getattr(kt, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return _attribute(history.operation, "_inbound_nodes")[history.node_index]


def graph_mask(kt):
    """The mask the graph attaches to the KerasTensor `kt` (`Layer.compute_mask`'s result),
    or None."""
    return getattr(kt, "_keras_mask", None)


def set_mask(x, mask):
    """Attaches `mask` to the tensor `x` as Keras's layers do, so the next layer called on `x`
    receives it (no public API attaches a mask to a tensor)."""
    _attribute(_module("keras.src.backend"), "set_keras_mask")(x, mask)


# The classes of the Keras ops a functional graph records for `keras.ops` calls (e.g. the
# `NotEqual` of `Embedding(mask_zero=True)`): the export lowers those nodes by class, and
# `keras.ops` exposes the functions only.
numpy_ops = _module("keras.src.ops.numpy")
core_ops = _module("keras.src.ops.core")


def patch_tf2onnx():
    """Keras's own fix that lets tf2onnx 1.17 run under numpy 2 (`keras.src.export`, used by
    `model.export(format="onnx")`; tf2onnx has no release with it)."""
    _attribute(_module("keras.src.export.tf2onnx_lib"), "patch_tf2onnx")()


# -- callback counters (training/callbacks.py) -----------------------------------------------
# `ReduceLROnPlateau` and `EarlyStopping` keep their progress in these attributes (documented
# nowhere) and reset them in `on_train_begin`; no public API saves or restores them, and a
# resumed run (one `fit` per epoch) needs them back.
CALLBACK_COUNTERS = {
    keras.callbacks.ReduceLROnPlateau: ("best", "wait", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("best", "wait", "stopped_epoch"),
}


def callback_counters(callback):
    """{name: float} of the counters `callback` holds now (those not None)."""
    values = {name: _attribute(callback, name) for name in CALLBACK_COUNTERS[type(callback)]}
    return {name: float(value) for name, value in values.items() if value is not None}


def restore_callback_counters(callback, values):
    """Sets `callback`'s counters to `values` ({name: float}, as `callback_counters` gave)."""
    for name in CALLBACK_COUNTERS[type(callback)]:
        _attribute(callback, name)
        if name in values:
            setattr(callback, name, values[name])
