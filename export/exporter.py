"""`to_onnx`: build, check, describe, verify, then write atomically (and optionally quantize).

(The module is not named to_onnx.py: importing a submodule sets the package attribute of
the same name, which would shadow the function `keras_gated.export.to_onnx`.)

    result = to_onnx(model, "lm.onnx", tokenizer=tokenizer, quantize="int8")
    result.max_abs_diff, result.file_size, result.quantized_size

The graph interface (input/output names, state names, dynamic axes) is documented in
`metadata.py`; `model_graph.py` explains how a model becomes a graph.
"""

import dataclasses
import errno
import os
import tempfile

import onnx

from keras_gated.atomic import naming, write_files

from . import metadata as md
from .lower_language_model import language_model_graph
from .model_graph import model_graph
from .tf2onnx_bridge import TF2ONNX_MAX_OPSET
from .verify import max_abs_diff

MIN_OPSET = 14  # LSTM/GRU/RNN `layout` attribute; Squeeze/Unsqueeze axes as inputs (13)
MAX_OPSET = TF2ONNX_MAX_OPSET  # tf2onnx may convert a piece of the model
QUANTIZATIONS = ("int8",)


@dataclasses.dataclass
class ExportResult:
    """What `to_onnx` wrote and measured.

    Attributes:
        path: the ONNX file.
        lowered_layers: names of the layers lowered to native ONNX nodes (dropout included,
            as nothing).
        loop_layers: names of the layers built as explicit ONNX loops (layer-normalised
            LSTMs, which no ONNX operator expresses).
        tf2onnx_layers: names of the layers (and Keras ops) converted by tf2onnx.
        max_abs_diff: largest |onnxruntime - Keras| over outputs and final states.
        file_size: bytes of `path`.
        quantized_path, quantized_size: the int8 sibling file and its bytes, or None.
        quantized_max_abs_diff: the int8 model's difference from Keras (not checked), or None.
    """

    path: str
    lowered_layers: list
    loop_layers: list
    tf2onnx_layers: list
    max_abs_diff: float
    file_size: int
    quantized_path: str | None = None
    quantized_size: int | None = None
    quantized_max_abs_diff: float | None = None


def to_onnx(model, path, *, tokenizer=None, opset=17, quantize=None, atol=1e-4, overwrite=False):
    """Exports a Keras model to an ONNX file with native recurrent nodes, verified first.

    Steps: build the graph (`lower_model`), `onnx.checker.check_model`, attach the
    `keras_gated` metadata, compare onnxruntime with Keras on random inputs (batch 3, time 7,
    masks left-padded, right-padded and holed, `verify.py`) and random non-zero states, then
    write to a temporary file in the same directory
    and `os.replace` it onto `path`. Nothing is written when any step fails, a full disk
    included (`atomic.write_files`: with `quantize`, both files or neither).

    Args:
        model: a `keras_gated.LanguageModel`, or any built functional or Sequential model.
        path: the .onnx file to write.
        tokenizer: a `keras_gated.data` tokenizer stored in the metadata, so the runtime can
            score and generate text. Its vocabulary size must match the model's.
        opset: ONNX opset, MIN_OPSET..MAX_OPSET. Default 17.
        quantize: None or "int8": then also write `<stem>.int8.onnx`, after the float file,
            with onnxruntime's dynamic quantization (QInt8 weights: LSTM nodes become
            DynamicQuantizeLSTM, the embedding and untied projection are stored int8; GRU and
            RNN weights stay float). Its difference from Keras is reported, not checked.
        atol: largest accepted |onnxruntime - Keras|. Default 1e-4.
        overwrite: replace existing files. Default False.

    Returns:
        ExportResult.

    Raises:
        FileExistsError: `path` (or the int8 sibling) exists and overwrite=False.
        IsADirectoryError: `path` is a directory.
        FileNotFoundError: `path`'s directory does not exist.
        ExportError (a ValueError): a layer that cannot be exported, named with the reason.
        ValueError: a bad argument, an invalid graph, or a verification difference > `atol`.
    """
    path = _check_target(path, overwrite)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be in [{MIN_OPSET}, {MAX_OPSET}], got opset={opset}")
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize must be None or one of {QUANTIZATIONS}, got {quantize!r}")
    if not atol > 0:
        raise ValueError(f"atol must be > 0, got atol={atol}")
    quantized_path = _check_target(int8_path(path), overwrite) if quantize else None

    lowered = lower_model(model, opset)
    tokenizer_config = _tokenizer_config(tokenizer, lowered.vocab_size)
    proto = lowered.proto
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        via = f" (tf2onnx converted {lowered.tf2onnx_layers})" if lowered.tf2onnx_layers else ""
        raise ValueError(f"the ONNX graph is invalid{via}: {error}") from None
    info = _metadata(model, lowered, tokenizer_config, opset)
    _set_metadata(proto, info)
    data = proto.SerializeToString()
    diff = max_abs_diff(data, lowered)
    if not diff <= atol:
        raise ValueError(
            f"onnxruntime differs from Keras by {diff:.3g} > atol={atol:g}; "
            f"nothing written to {path}"
        )
    files = {path: data}
    if quantize:  # both files are written, or neither
        quantized = _quantize_int8(data, {**info, "quantization": quantize}, quantized_path)
        files[quantized_path] = quantized
    write_files(files)
    result = ExportResult(
        path,
        lowered.lowered_layers,
        lowered.loop_layers,
        lowered.tf2onnx_layers,
        diff,
        os.path.getsize(path),
    )
    if quantize:
        result.quantized_path = quantized_path
        result.quantized_size = os.path.getsize(quantized_path)
        result.quantized_max_abs_diff = max_abs_diff(quantized, lowered)
    return result


def lower_model(model, opset):
    """The graph of `model` -> `lowered.Lowered`: a language model's own interface, else the
    walk of its functional graph (`model_graph.py`)."""
    from keras_gated.models import LanguageModel

    if isinstance(model, LanguageModel):
        return language_model_graph(model, opset)
    return model_graph(model, opset)


def int8_path(path):
    """ "model.onnx" -> "model.int8.onnx" (any other name gets ".int8.onnx" appended)."""
    return path[: -len(".onnx")] + ".int8.onnx" if path.endswith(".onnx") else path + ".int8.onnx"


def _check_target(path, overwrite):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(
            errno.EISDIR, "is a directory; give a file path like model.onnx", path
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, "directory does not exist", parent)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(errno.EEXIST, "file exists; pass overwrite=True to replace it", path)
    return path


def _tokenizer_config(tokenizer, vocab_size):
    if tokenizer is None:
        return None
    from keras_gated.data.tokenizers import tokenizer_to_config

    if vocab_size is not None and tokenizer.vocab_size != vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens, the model's vocabulary has {vocab_size}"
        )
    return tokenizer_to_config(tokenizer)


def _metadata(model, lowered, tokenizer_config, opset):
    import keras_gated
    from keras_gated.models import LanguageModel

    return {
        "format": md.FORMAT,
        "version": md.VERSION,
        "library_version": keras_gated.__version__,
        "model_class": type(model).__name__,
        # A language model's own arguments; a functional model's config is Keras's business
        # (and serializing it imports TensorFlow on every backend).
        "model_config": model.get_config() if isinstance(model, LanguageModel) else None,
        "tokenizer": tokenizer_config,
        "vocab_size": lowered.vocab_size,
        "input": lowered.inputs[0].name,
        "output": lowered.outputs[0],
        "inputs": [spec.name for spec in lowered.inputs],
        "outputs": list(lowered.outputs),
        "states": lowered.states,
        "lowered_layers": lowered.lowered_layers,
        "loop_layers": lowered.loop_layers,
        "tf2onnx_layers": lowered.tf2onnx_layers,
        "opset": opset,
    }


def _set_metadata(proto, info):
    """Sets `metadata_props["keras_gated"]` to the JSON of `info`, replacing an old entry."""
    kept = [p for p in proto.metadata_props if p.key != md.METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=md.METADATA_KEY, value=md.dumps(info))


def _quantize_int8(data, info, target):
    """onnxruntime's dynamic quantization of the serialized model `data` -> serialized bytes,
    worked out in a scratch folder beside `target` (removed after; an OSError names `target`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(target))) as scratch:
            source, output = (
                os.path.join(scratch, "fp32.onnx"),
                os.path.join(scratch, "int8.onnx"),
            )
            onnx.save(_fold_initializer_transposes(onnx.load_from_string(data)), source)
            quantize_dynamic(source, output, weight_type=QuantType.QInt8)
            proto = onnx.load(output)
    except OSError as error:
        raise naming(error, target) from error
    _set_metadata(proto, info)
    return proto.SerializeToString()


def _fold_initializer_transposes(proto):
    """Replaces each Transpose of an initializer by a transposed initializer.

    The tied projection reads Transpose(E); left as is, quantization stores E as int8 and
    dequantizes and transposes all of it on every call. Folded, the projection's MatMul gets
    its own int8 weight (E is then stored twice, each in int8: still 1/2 of the float file).
    """
    from onnx import numpy_helper

    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        array = numpy_helper.to_array(inits[node.input[0]]).transpose(perm)
        graph.initializer.append(numpy_helper.from_array(array.copy(), node.output[0]))
        graph.node.remove(node)
    return proto
