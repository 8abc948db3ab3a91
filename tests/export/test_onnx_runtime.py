"""`OnnxLanguageModel`: perplexity, generation, metadata, bad input, and no TensorFlow needed."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import keras_gated.export.runtime as runtime
from keras_gated.export import OnnxLanguageModel, to_onnx
from keras_gated.models import LanguageModel, generate
from tests.export.helpers import V, char_tokenizer, keras_forward, make_lm, random_inputs

TEXT = "a bad cab fed a dead bee; ghijk lmnop qrstuv, then abc again"
# Perplexity from float32 logits: relative error O(1e-6); 1e-5 still catches an off-by-one
# target (which changes the value by O(10%)).
PPL_RTOL = 1e-5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 2-layer tied LSTM with a tokenizer, exported once for this module."""
    model = make_lm("lstm", 2, seed=3)
    tokenizer = char_tokenizer()
    path = tmp_path_factory.mktemp("runtime") / "lm.onnx"
    to_onnx(model, path, tokenizer=tokenizer)
    return model, tokenizer, path


@pytest.fixture(scope="module")
def lm(exported):
    return OnnxLanguageModel(exported[2])


def keras_perplexity(model, ids):
    """exp(sum NLL / predicted tokens) from Keras logits, by hand, in float64."""
    logits, _ = keras_forward(model, ids[None, :-1], model.initial_states(1))
    z = logits[0].astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -logp[np.arange(len(ids) - 1), ids[1:]].sum()
    return float(np.exp(nll / (len(ids) - 1)))


def test_perplexity_equals_keras(exported, lm, monkeypatch):
    model, tokenizer, _ = exported
    ids = tokenizer.encode(TEXT)
    want = keras_perplexity(model, ids)
    assert lm.score(TEXT) == pytest.approx(want, rel=PPL_RTOL)
    monkeypatch.setattr(runtime, "SCORE_CHUNK", 5)  # many chunks with carried state
    assert lm.score_ids(ids) == pytest.approx(want, rel=PPL_RTOL)


def test_step_equals_keras_and_default_states_are_zero(exported, lm):
    model = exported[0]
    tokens, states = random_inputs(lm.state_sizes)
    logits, final = lm.step(tokens, states)
    want_logits, want_final = keras_forward(model, tokens, states)
    np.testing.assert_allclose(logits, want_logits, atol=1e-4)
    for got, want in zip(final, want_final):
        np.testing.assert_allclose(got, want, atol=1e-4)
    zero_logits, _ = lm.step(tokens)
    want_zero_logits, _ = keras_forward(model, tokens, model.initial_states(2))
    np.testing.assert_allclose(zero_logits, want_zero_logits, atol=1e-4)


def test_generation_reproducible_and_equal_to_keras(exported, lm):
    model, tokenizer, _ = exported
    first = lm.generate("abc", tokens=20, temperature=0.9, seed=7)
    assert first == lm.generate("abc", tokens=20, temperature=0.9, seed=7)
    assert first == generate(model, tokenizer, "abc", 20, temperature=0.9, seed=7)
    others = [lm.generate(prompt, tokens=20, seed=8) for prompt in ("abc", "dead", "v")]
    assert any(o != lm.generate(p, tokens=20, seed=7) for o, p in zip(others, ("abc", "dead", "v")))
    ids = lm.generate_ids(tokenizer.encode("abc"), tokens=20, temperature=0.9, seed=7)
    assert ids.shape == (20,) and tokenizer.decode(ids) == first  # prompt excluded


def test_generate_batch_matches_single_prompt_generation(lm):
    prompts = ["abc", "a much longer prompt"]
    batch = lm.generate_batch(prompts, tokens=12, top_k=5, seed=1)
    assert len(batch) == 2 and all(isinstance(text, str) for text in batch)
    assert lm.generate_batch(prompts[:1], tokens=12, top_k=5, seed=1)[0] == lm.generate(
        prompts[0], tokens=12, top_k=5, seed=1
    )
    # Batched rows run the same graph as single prompts: greedy (top_k=1) rows must agree.
    greedy = lm.generate_batch(prompts, tokens=12, top_k=1)
    assert greedy == [lm.generate(p, tokens=12, top_k=1) for p in prompts]


def test_metadata_round_trip(exported, lm):
    model, tokenizer, _ = exported
    meta = lm.metadata
    assert meta["model_class"] == "LanguageModel" and meta["vocab_size"] == V
    assert LanguageModel.from_config(meta["model_config"]).get_config() == json.loads(
        json.dumps(model.get_config())
    )
    assert lm.tokenizer.get_config() == tokenizer.get_config()
    assert [(s["input"], s["output"], s["size"]) for s in meta["states"]] == [
        ("h_0", "h_0_out", 8),
        ("c_0", "c_0_out", 8),
        ("h_1", "h_1_out", 8),
        ("c_1", "c_1_out", 8),
    ]
    assert meta["library_version"] and meta["opset"] == 17 and meta["tf2onnx_layers"] == []
    assert lm.state_names == ["h_0", "c_0", "h_1", "c_1"]


def test_providers(exported):
    path = exported[2]
    assert OnnxLanguageModel(path).providers[-1] == "CPUExecutionProvider"
    assert OnnxLanguageModel(path, providers=["CPUExecutionProvider"]).providers == [
        "CPUExecutionProvider"
    ]
    with pytest.raises(ValueError, match="NoSuchExecutionProvider"):
        OnnxLanguageModel(path, providers=["NoSuchExecutionProvider"])


def test_session_options_reach_the_session(exported, lm):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    single = OnnxLanguageModel(exported[2], sess_options=options)
    assert single._session.get_session_options().intra_op_num_threads == 1
    tokens, states = random_inputs(lm.state_sizes)
    np.testing.assert_allclose(
        single.step(tokens, states)[0], lm.step(tokens, states)[0], atol=1e-5
    )


# -- bad input ------------------------------------------------------------------------------
def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        OnnxLanguageModel(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match="not a valid ONNX file"):
        OnnxLanguageModel(garbage)
    text = tmp_path / "text.onnx"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a valid ONNX file"):
        OnnxLanguageModel(text)
    with pytest.raises(ValueError, match="not a valid ONNX file"):
        OnnxLanguageModel(tmp_path)
    plain = tmp_path / "plain.onnx"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(
        onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(plain)
    )
    with pytest.raises(ValueError, match="no keras_gated metadata"):
        OnnxLanguageModel(plain)


def test_bad_tokens(lm):
    with pytest.raises(ValueError, match=r"token id 23 out of range \[0, 23\)"):
        lm.step([[1, 23]])
    with pytest.raises(ValueError, match="token id -1 out of range"):
        lm.score_ids([3, -1, 2])
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        lm.step([1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        lm.step(np.zeros((1, 0), dtype=np.int64))
    with pytest.raises(ValueError, match="integer ids"):
        lm.step([[1.5, 2.0]])
    with pytest.raises(ValueError, match=">= 2 ids"):
        lm.score_ids([4])


def test_bad_states(lm):
    tokens = np.zeros((2, 3), dtype=np.int64)
    states = lm.initial_states(2)
    names = r"\['h_0', 'c_0', 'h_1', 'c_1'\]"
    with pytest.raises(ValueError, match=rf"expected 4 states {names}, got 3"):
        lm.step(tokens, states[:3])
    bad = list(states)
    bad[3] = np.zeros((2, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"state 'c_1' must be a float array of shape \(2, 8\)"):
        lm.step(tokens, bad)
    with pytest.raises(ValueError, match=r"state 'h_0' .* shape \(2, 8\)"):
        lm.step(tokens, [states[0][:1]] + states[1:])
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        lm.initial_states(0)


def test_bad_sampling_arguments(lm):
    with pytest.raises(ValueError, match="temperature"):
        lm.generate("abc", temperature=0)
    with pytest.raises(ValueError, match="temperature"):
        lm.generate("abc", temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        lm.generate("abc", top_k=0)
    with pytest.raises(ValueError, match="tokens must be an integer >= 0"):
        lm.generate("abc", tokens=-1)
    with pytest.raises(ValueError, match="no tokens"):
        lm.generate("")
    assert lm.generate("abc", tokens=0) == ""


def test_without_tokenizer(tmp_path):
    path = tmp_path / "bare.onnx"
    to_onnx(make_lm("gru", 1), path)
    bare = OnnxLanguageModel(path)
    assert bare.tokenizer is None
    with pytest.raises(ValueError, match="without a tokenizer"):
        bare.generate("abc")
    ids = bare.generate_ids([1, 2, 3], tokens=5, seed=0)
    assert ids.shape == (5,) and ids.dtype == np.int64 and ((0 <= ids) & (ids < V)).all()
    assert bare.score_ids([1, 2, 3, 4]) > 1.0


BLOCKED_IMPORTS = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"tensorflow", "keras", "tf2onnx", "onnx"}:
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, Block())
from keras_gated.export import OnnxLanguageModel
lm = OnnxLanguageModel(sys.argv[1])
print(repr(lm.generate("abc", tokens=8, seed=0)), lm.score("abcabc") > 1.0)
heavy = {"tensorflow", "keras", "tf2onnx", "onnx"}
print(sorted(m for m in sys.modules if m.partition(".")[0] in heavy))
"""


def test_runtime_needs_no_tensorflow_keras_or_onnx(exported, lm):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORTS, str(exported[2])],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, modules = done.stdout.strip().splitlines()[-2:]
    assert first == f"{lm.generate('abc', tokens=8, seed=0)!r} True"
    assert modules == "[]"
