"""keras-gated: recurrent layers written from the textbook equations, for Keras 3.

`import keras_gated` imports neither Keras nor TensorFlow, so `keras_gated.export`'s runtime
(onnxruntime + numpy) deploys without them and the command line starts fast. Public names load
on first use. Every serialisable class registers with Keras (for `keras.models.load_model`,
`deserialize_keras_object`) as soon as Keras is imported, before or after this package
(`registration.py`).
"""

from keras_gated import lazy, registration

__version__ = "0.1.0"

_PUBLIC = {
    "SimpleRNNCell": "keras_gated.cells",
    "LSTMCell": "keras_gated.cells",
    "GRUCell": "keras_gated.cells",
    "IndRNNCell": "keras_gated.cells",
    "SimpleRNN": "keras_gated.layers",
    "LSTM": "keras_gated.layers",
    "GRU": "keras_gated.layers",
    "IndRNN": "keras_gated.layers",
    "VariationalDropout": "keras_gated.layers",
    "EmbeddingDropout": "keras_gated.layers",
    "LanguageModel": "keras_gated.models",
    "language_model": "keras_gated.models",
    "generate": "keras_gated.models",
    "TrainConfig": "keras_gated.training",
    "train": "keras_gated.training",
    "load_run": "keras_gated.training",
    "perplexity": "keras_gated.training",
}

__getattr__, __dir__, __all__ = lazy.attach(__name__, _PUBLIC)


registration.install()
