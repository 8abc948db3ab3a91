"""keras-gated: recurrent layers written from the textbook equations, for Keras 3.

`import keras_gated` imports neither Keras nor TensorFlow, so `keras_gated.export`'s runtime
(onnxruntime + numpy) deploys without them and the command line starts fast. Public names load
on first use. Every serialisable class registers with Keras (for `keras.models.load_model`,
`deserialize_keras_object`) as soon as Keras is imported, before or after this package: a
post-import hook on `keras` (`wrapt.register_post_import_hook`) imports the modules that
define them.
"""

import importlib
import sys

from keras_gated import lazy

__version__ = "0.1.0"

_PUBLIC = {
    "SimpleRNNCell": "keras_gated.cells",
    "LSTMCell": "keras_gated.cells",
    "GRUCell": "keras_gated.cells",
    "SimpleRNN": "keras_gated.layers",
    "LSTM": "keras_gated.layers",
    "GRU": "keras_gated.layers",
    "VariationalDropout": "keras_gated.layers",
    "LanguageModel": "keras_gated.models",
    "language_model": "keras_gated.models",
    "generate": "keras_gated.models",
    "TrainConfig": "keras_gated.training",
    "train": "keras_gated.training",
    "load_run": "keras_gated.training",
    "perplexity": "keras_gated.training",
}

# The modules whose classes are registered with Keras (`register_keras_serializable`).
_SERIALIZABLE = (
    "keras_gated.cells",
    "keras_gated.layers",
    "keras_gated.models.language_model",
    "keras_gated.training.metrics",
)

__getattr__, __dir__, __all__ = lazy.attach(__name__, _PUBLIC)


def _register(_keras_module=None):
    for module in _SERIALIZABLE:
        importlib.import_module(module)


try:
    import wrapt
except ImportError:  # a runtime-only install; Keras, if present at all, is imported already
    if "keras" in sys.modules:
        _register()
else:
    wrapt.register_post_import_hook(_register, "keras")  # runs at once if Keras is imported
