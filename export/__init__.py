"""ONNX export of Keras models with recurrent layers, and a runtime that needs only onnxruntime.

    from keras_gated.export import to_onnx, OnnxLanguageModel
    to_onnx(model, "model.onnx")                             # any functional/Sequential model
    to_onnx(lm, "lm.onnx", tokenizer=tokenizer)              # a keras_gated.LanguageModel
    lm = OnnxLanguageModel("lm.onnx")                        # needs onnxruntime only
    lm.score("some text"), lm.generate("Once", tokens=20, seed=0)

One mechanism for every model (`model_graph.py`): walk the model's Keras functional graph
(a Sequential through its inner functional model, nested models in place) in Keras's own
execution order, keeping a map Keras tensor -> ONNX tensor, and lower each node:
- recurrent layers (ours, Keras's built-in LSTM/GRU/SimpleRNN, `keras.layers.RNN` over our
  or Keras's cells, and `Bidirectional` around them) to one native `LSTM`/`GRU`/`RNN` node
  each, one per cell of a `StackedRNNCells` (`lower_recurrent.py`, weights from
  `native.py` and `layout.py`); their masks, which are tensors of the Keras graph too, of
  any pattern, through in-graph compaction around the node (`masking.py`); a
  layer-normalised LSTM or GRU, which no operator expresses, to an explicit `Scan` (`scan.py`);
- embeddings, Dense, TimeDistributed(Dense), Masking, merges, RepeatVector, Reshape,
  BatchNormalization, activations, global 1D poolings, dropout-like identities and the Keras
  ops masks are made of (`lower_layers.py`); `Attention` and `AdditiveAttention` (`attention.py`),
  each with the masks Keras hands it (`call_masks.py`);
- anything else, one node at a time, with tf2onnx (`tf2onnx_bridge.py`, TensorFlow backend
  only), spliced in with its inputs' masks.
A `keras_gated.LanguageModel` (subclassed, no functional graph) has its own small graph with
the runtime's interface (`lower_language_model.py`, `metadata.py`). `to_onnx` (`exporter.py`)
checks, verifies against Keras (`verify.py`) and writes atomically.

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
