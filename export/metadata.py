"""The exported graph's interface: tensor names and the `keras_gated` metadata entry.

Standard library only, so the runtime can read it without TensorFlow or Keras.

Graph interface (one graph serves whole sequences and single steps; a step is time = 1):
    inputs   tokens   int64 (batch, time)        token ids in [0, V)   [float32 (batch, time, D)
                                                  named `inputs` for a model without embedding]
             h_k      float32 (batch, U_k)        layer k's hidden state (k = 0, 1, ... over
             c_k      float32 (batch, U_k)        recurrent layers); c_k for LSTM layers only
    outputs  logits   float32 (batch, time, V)   [`outputs` for a model without embedding]
             h_k_out, c_k_out                     the states after the last step
Every state input is required: pass zeros (`initial_states`) to start a sequence. The axes
"batch" and "time" are dynamic and named so, as Triton's ONNX Runtime backend expects.

Metadata: `model.metadata_props["keras_gated"]` holds a JSON object (`FORMAT`, `VERSION`,
`library_version`, `model_class`, `model_config` (a language model's; null for others),
`tokenizer` (or null), `vocab_size`, `input`, `output` (the first of `inputs`, `outputs`),
`states`: [{"input", "output", "size", "layer"}], `lowered_layers`, `loop_layers`,
`tf2onnx_layers`, `opset`).

Other models (`model_graph.py`) keep Keras's input and output names and dtypes; a stateful
recurrent layer k gets the state inputs and outputs above.
"""

import json

METADATA_KEY = "keras_gated"
FORMAT = "keras_gated.onnx"
VERSION = 1
TOKENS = "tokens"
INPUTS = "inputs"
LOGITS = "logits"
OUTPUTS = "outputs"
BATCH, TIME = "batch", "time"


def state_input_name(kind, layer_index):
    """`kind` "h" or "c" of recurrent layer `layer_index` -> the graph input name, e.g. "h_0"."""
    return f"{kind}_{layer_index}"


def state_output_name(kind, layer_index):
    """The graph output carrying that state after the last step, e.g. "h_0_out"."""
    return f"{state_input_name(kind, layer_index)}_out"


def state_specs(layers):
    """[(layer name, [state sizes])] -> the metadata `states` list, in `call_with_states`' flat order.

    A layer with two states is an LSTM: its states are h then c.
    """
    specs = []
    for index, (layer, sizes) in enumerate(layers):
        for kind, size in zip(("h", "c"), sizes):
            specs.append(
                {
                    "input": state_input_name(kind, index),
                    "output": state_output_name(kind, index),
                    "size": int(size),
                    "layer": layer,
                }
            )
    return specs


def json_safe(value):
    """`value` made JSON-safe: tuples as lists, numpy values as Python ones, the rest as repr."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    return repr(value)


def dumps(metadata):
    return json.dumps(json_safe(metadata), sort_keys=True)


def loads(text, source):
    """Parses the metadata JSON; ValueError naming `source` and the problem if it is not ours
    or a field a runtime reads is malformed (`problem`)."""
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise ValueError(
            f"{source}: keras_gated metadata is not valid JSON "
            f"({type(error).__name__}: {str(error)[:200]})"
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{source}: keras_gated metadata lacks format {FORMAT!r}")
    if metadata.get("version") != VERSION:
        raise ValueError(
            f"{source}: unsupported keras_gated metadata version "
            f"{metadata.get('version')!r:.100} (this runtime reads {VERSION})"
        )
    wrong = problem(metadata)
    if wrong:
        raise ValueError(f"{source}: keras_gated metadata {wrong}")
    return metadata


def problem(metadata):
    """What is malformed in the fields a runtime reads (`input`, `output`, `vocab_size`,
    `states`, `tokenizer`), as a phrase; None if nothing is."""
    for key in ("input", "output"):
        if not isinstance(metadata.get(key), str):
            return f"has {key} {metadata.get(key)!r:.100}, not a tensor name"
    size = metadata.get("vocab_size")
    if size is not None and not _positive_int(size):
        return f"has vocab_size {size!r:.100}, not a positive integer or null"
    states = metadata.get("states")
    if not isinstance(states, list):
        return f"has states {states!r:.100}, not a list"
    for i, state in enumerate(states):
        if not (
            isinstance(state, dict)
            and isinstance(state.get("input"), str)
            and isinstance(state.get("output"), str)
            and _positive_int(state.get("size"))
        ):
            return (
                f"has states[{i}] {state!r:.100}, not "
                "{'input': name, 'output': name, 'size': positive integer}"
            )
    inputs = [metadata["input"], *(s["input"] for s in states)]
    outputs = [metadata["output"], *(s["output"] for s in states)]
    for names in (inputs, outputs):
        if len(set(names)) != len(names):
            return f"names a tensor twice in {names!r:.200}"
    tokenizer = metadata.get("tokenizer")
    if tokenizer is not None and not isinstance(tokenizer, dict):
        return f"has tokenizer {tokenizer!r:.100}, not an object or null"
    return None


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
