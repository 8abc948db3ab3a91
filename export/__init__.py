"""ONNX export of keras-gated models, and a runtime that needs only onnxruntime and numpy.

    from keras_gated.export import to_onnx, OnnxLanguageModel
    to_onnx(model, "lm.onnx", tokenizer=tokenizer)          # needs TensorFlow/Keras
    lm = OnnxLanguageModel("lm.onnx")                        # needs onnxruntime only
    lm.score("some text"), lm.generate("Once", tokens=20, seed=0)

Names are imported lazily (PEP 562), so `import keras_gated.export` loads neither
TensorFlow, Keras, tf2onnx nor onnx; `to_onnx` and `ExportResult` load them on first use.
"""

from keras_gated import lazy

_PUBLIC = {
    "to_onnx": "keras_gated.export.exporter",
    "ExportResult": "keras_gated.export.exporter",
    "ExportError": "keras_gated.export.model_graph",
    "OnnxLanguageModel": "keras_gated.export.runtime",
}

__getattr__, __dir__, __all__ = lazy.attach(__name__, _PUBLIC)
