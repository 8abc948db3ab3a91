"""The `keras_gated` metadata of an exported file, made malformed or hostile.

`OnnxLanguageModel` either refuses the file with a ValueError that starts with the file's
path, or loads a model that steps and generates; no KeyError or TypeError escapes.
"""

import json

import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_gated.export import metadata as md
from keras_gated.export.runtime import OnnxLanguageModel
from tests.fuzz.conftest import tiers

NAMES = ["tokens", "logits", "h_0", "c_0", "h_0_out", "c_0_out", "h_1", "", "nope"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from([0, -8, 8, 7, 23, 10**30, 2**63, *NAMES])
    | st.text(max_size=6)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["input", "output", "size", "x"]) | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)
DEEP = "[" * 100_000 + "]" * 100_000  # past Python's recursion limit
RAW = st.sampled_from(
    [
        "",
        "{",
        "null",
        "[]",
        "1",
        '"keras_gated.onnx"',
        "NaN",
        "9" * 5000,
        DEEP,
        '{"format": "keras_gated.onnx", "version": 1}',
        '{"format": "keras_gated.onnx", "version": 2}',
        '{"format": "keras_gated.onnx", "version": 1, "x": ' + DEEP + "}",
    ]
) | st.text(max_size=30)


@pytest.fixture(scope="module")
def original(tiny_onnx):
    proto = onnx.load(str(tiny_onnx))
    text = {p.key: p.value for p in proto.metadata_props}[md.METADATA_KEY]
    return proto.SerializeToString(), json.loads(text)


@st.composite
def hostile_metadata(draw, metadata):
    """The text of the metadata entry: the file's own with one thing changed, or junk."""
    metadata = json.loads(json.dumps(metadata))
    states = metadata["states"]
    key = draw(st.sampled_from(sorted(metadata)))
    kind = draw(
        st.sampled_from(
            ["replace", "remove", "state field", "state list", "tokenizer field", "raw"]
        )
    )
    if kind == "replace":
        metadata[key] = draw(JSON)
    elif kind == "remove":
        del metadata[key]
    elif kind == "state field":
        state = states[draw(st.integers(0, len(states) - 1))]
        field = draw(st.sampled_from(["input", "output", "size", "layer"]))
        if draw(st.booleans()):
            del state[field]
        else:
            state[field] = draw(JSON)
    elif kind == "state list":
        how = draw(st.sampled_from(["drop", "repeat", "reverse", "swap names", "append junk"]))
        if how == "drop":
            states.pop()
        elif how == "repeat":
            states.append(dict(states[0]))
        elif how == "reverse":
            states.reverse()
        elif how == "swap names":
            states[0]["input"], states[0]["output"] = states[0]["output"], states[0]["input"]
        else:
            states.append(draw(JSON))
    elif kind == "tokenizer field":
        tokenizer = metadata["tokenizer"]
        where = tokenizer if draw(st.booleans()) else tokenizer["config"]
        where[
            draw(st.sampled_from(["format", "version", "class_name", "config", "vocabulary"]))
        ] = draw(JSON)
    else:
        return draw(RAW)
    return json.dumps(metadata)


@pytest.mark.parametrize("budget", tiers(60, 3000))
def test_hostile_metadata_is_refused_naming_the_file_or_the_model_works(budget, original, tmp_path):
    data, metadata = original
    path = tmp_path / "lm.onnx"

    @budget
    @given(text=hostile_metadata(metadata))
    def check(text):
        proto = onnx.ModelProto.FromString(data)
        entry = next(p for p in proto.metadata_props if p.key == md.METADATA_KEY)
        entry.value = text
        path.write_bytes(proto.SerializeToString())
        try:
            lm = OnnxLanguageModel(path, providers=["CPUExecutionProvider"])
        except ValueError as error:
            assert str(error).startswith(f"{path}: "), error
            assert "\n" not in str(error)
            return
        # Accepted: then the metadata still describes the graph, and the model runs.
        logits, states = lm.step([[1, 2, 3]])
        assert logits.shape == (1, 3, lm.vocab_size)
        assert [s.shape for s in states] == [(1, u) for u in lm.state_sizes]
        assert lm.generate_ids([1, 2], tokens=3, seed=0).shape == (3,)
        if lm.tokenizer is not None:
            assert isinstance(lm.generate("abc", tokens=2, seed=0), str)

    check()


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda m: m.update(vocab_size=-5), "vocab_size -5, not a positive integer"),
        (lambda m: m.update(vocab_size=22), "'logits' width 22, the graph 23"),
        (lambda m: m.pop("states"), "states None, not a list"),
        (lambda m: m["states"][0].update(size=10**12), "'h_0' width 1000000000000, the graph 8"),
        (lambda m: m["states"][1].update(size="8"), r"states\[1\]"),
        (lambda m: m["states"][0].update(input="c_0"), "names a tensor twice"),
        (lambda m: m["states"][0].update(output="nope"), r"graph lacks the outputs \['nope'\]"),
        (lambda m: m["states"][0].update(input="nope"), r"graph lacks the inputs \['nope'\]"),
        (lambda m: m["states"].pop(), r"metadata does not name the graph inputs \['c_0'\]"),
        (lambda m: m.update(input=["tokens"]), "input \\['tokens'\\], not a tensor name"),
        (
            lambda m: m["tokenizer"]["config"].update(vocabulary=None),
            "stored tokenizer is unusable",
        ),
        (lambda m: m["tokenizer"].update(class_name=[]), "unknown tokenizer class"),
    ],
)
def test_each_malformed_field_is_named(change, needle, original, tmp_path):
    data, metadata = original
    metadata = json.loads(json.dumps(metadata))
    change(metadata)
    proto = onnx.ModelProto.FromString(data)
    next(p for p in proto.metadata_props if p.key == md.METADATA_KEY).value = json.dumps(metadata)
    path = tmp_path / "lm.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match=needle):
        OnnxLanguageModel(path)


def test_metadata_nested_past_the_recursion_limit_is_not_json():
    with pytest.raises(ValueError, match="lm.onnx: keras_gated metadata is not valid JSON"):
        md.loads(DEEP, "lm.onnx")
