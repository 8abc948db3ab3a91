"""Training recipe, perplexity, callbacks and run directories.

Names load on first use, so `keras_gated.training.config` and `.run_dir` (the command line's
parser, a run's files) import without TensorFlow or Keras. `Perplexity`, which a checkpoint's
compiled metrics name, registers with Keras when Keras is imported (`keras_gated/__init__.py`).
"""

from keras_gated import lazy

_PUBLIC = {
    "Perplexity": "keras_gated.training.metrics",
    "perplexity": "keras_gated.training.metrics",
    "token_nll": "keras_gated.training.metrics",
    "TrainConfig": "keras_gated.training.config",
    "load_run": "keras_gated.training.run_dir",
    "stateless_copy": "keras_gated.training.build",
    "train": "keras_gated.training.trainer",
    "GradientNormLogger": "keras_gated.training.grad_norm",
    "global_gradient_norm": "keras_gated.training.grad_norm",
    "WarnWorseThanUniform": "keras_gated.training.uniform_check",
    "WorseThanUniformWarning": "keras_gated.training.uniform_check",
}

__getattr__, __dir__, __all__ = lazy.attach(__name__, _PUBLIC)
