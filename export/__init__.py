"""ONNX export of keras-gated models, and a runtime that needs only onnxruntime and numpy.

    from keras_gated.export import to_onnx, OnnxLanguageModel
    to_onnx(model, "lm.onnx", tokenizer=tokenizer)          # needs TensorFlow/Keras
    lm = OnnxLanguageModel("lm.onnx")                        # needs onnxruntime only
    lm.score("some text"), lm.generate("Once", tokens=20, seed=0)

Names are imported lazily (PEP 562), so `import keras_gated.export` loads neither
TensorFlow, Keras, tf2onnx nor onnx; `to_onnx` and `ExportResult` load them on first use.
"""

import importlib

_PUBLIC = {
    "to_onnx": "keras_gated.export.exporter",
    "ExportResult": "keras_gated.export.exporter",
    "ExportError": "keras_gated.export.model_graph",
    "OnnxLanguageModel": "keras_gated.export.runtime",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'keras_gated.export' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
