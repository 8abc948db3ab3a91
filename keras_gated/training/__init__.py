"""Training recipe, perplexity, callbacks and run directories.

Names load on first use, so `keras_gated.training.config` and `.run_dir` (the command line's
parser, a run's files) import without TensorFlow or Keras. Once Keras is imported, importing
this package registers `Perplexity` with Keras, which a checkpoint's compiled metrics name.
"""

import importlib
import sys

_PUBLIC = {
    "Perplexity": "keras_gated.training.metrics",
    "perplexity": "keras_gated.training.metrics",
    "token_nll": "keras_gated.training.metrics",
    "TrainConfig": "keras_gated.training.config",
    "load_run": "keras_gated.training.run_dir",
    "stateless_copy": "keras_gated.training.build",
    "train": "keras_gated.training.trainer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'keras_gated.training' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)


if "keras" in sys.modules:
    importlib.import_module("keras_gated.training.metrics")
