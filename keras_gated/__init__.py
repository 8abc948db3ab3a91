"""keras-gated: recurrent layers written from the textbook equations, for Keras 3.

Public names load on first use, so `keras_gated.export`'s runtime (onnxruntime + numpy)
deploys without TensorFlow or Keras. When Keras is already imported, `import keras_gated`
loads (and registers with Keras, for `load_model`) every layer and model at once.
"""

import importlib
import sys

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

__all__ = sorted(_PUBLIC)


def _load_all():
    for module in sorted(set(_PUBLIC.values())):
        importlib.import_module(module)


def __getattr__(name):
    if name in _PUBLIC:
        _load_all()  # registers every serializable class, not just the one asked for
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'keras_gated' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)


if "keras" in sys.modules:
    _load_all()
