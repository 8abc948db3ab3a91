"""Inference speed: Keras under tf.function, onnxruntime on Keras's own export, onnxruntime on
our export (fp32 and int8), for sequence scoring and token-by-token generation.

Systems (`SYSTEMS`), each a callable (tokens (B, T) int, states list of (B, U)) -> (logits,
states), all on the same weights (trained briefly, see `train_briefly`):
    keras         our LanguageModel's `call_with_states` under one `tf.function` (input
                  signature with free B and T, so no retracing)
    keras-export  onnxruntime on the file `model.export(format="onnx")` writes for the same
                  model built from Keras's built-in LSTM/GRU layers with our weights copied in
                  (a functional model with the states as inputs and outputs, so it can stream)
    ours-fp32     onnxruntime on `keras_gated.export.to_onnx`'s file, through `OnnxLanguageModel`
    ours-int8     the same with `quantize="int8"` (onnxruntime dynamic quantization)
Tasks: scoring (B, T) tokens from zero states in one call; generation of `gen_tokens` tokens at
batch 1, one call per token with the state carried, the next token the argmax (greedy, so
sampling costs nothing and every system follows its own argmax path).

The bandwidth bound of generation: each token must read every weight once, so
tokens/s <= bandwidth / weight bytes. Weight bytes come from the graph: every initializer
counts in full, except one read only by Gather nodes (an embedding lookup), which counts one
row; the Keras system counts its variables (the tied matrix once).
"""

import dataclasses
import os

import numpy as np

from benchmarks.timing import interleave, ratio_per_round, summary, time_call
from benchmarks.training import train_step

SYSTEMS = ("keras", "keras-export", "ours-fp32", "ours-int8")


@dataclasses.dataclass(frozen=True)
class InferSetup:
    vocab: int = 10_000
    units: int = 650  # E = U, tied
    layers: int = 2
    score_shapes: tuple = ((1, 35), (20, 35))  # (B, T) per scoring task
    gen_tokens: int = 100
    train_steps: int = 60  # Adam steps on Shakespeare before measuring (perplexity check)
    eval_tokens: int = 20 * 35 * 10  # held-out tokens for perplexity
    seed: int = 0


# -- models -----------------------------------------------------------------------------
def corpus_ids(vocab, eval_tokens):
    """(train ids, valid ids, tokenizer) of the built-in Shakespeare corpus, vocabulary V."""
    from keras_gated.data import WordTokenizer, load_corpus

    corpus = load_corpus("shakespeare", verbose=False)
    tokenizer = WordTokenizer(max_vocab=vocab).fit(doc.text for doc in corpus.train)
    if tokenizer.vocab_size != vocab:
        raise ValueError(f"the corpus has {tokenizer.vocab_size} word types, fewer than V={vocab}")
    train = np.asarray(tokenizer.encode(corpus.text("train")), np.int32)
    valid = np.asarray(tokenizer.encode(corpus.text("valid")), np.int32)[: eval_tokens + 1]
    return train, valid, tokenizer


def train_briefly(model, ids, steps, batch=20, seq_len=35, lr=3e-3, clipnorm=1.0):
    """`steps` Adam steps of stateless BPTT on `ids` (so the weights are not the random
    initialisation, where int8 rounding hides easily); returns the last training loss."""
    import keras

    step = train_step(model, keras.optimizers.Adam(lr, global_clipnorm=clipnorm))

    rows = len(ids) // batch
    stream = ids[: rows * batch].reshape(batch, rows)
    loss = float("nan")
    for k in range(steps):
        start = (k * seq_len) % max(rows - seq_len - 1, 1)
        chunk = stream[:, start : start + seq_len + 1]
        loss = float(step(chunk[:, :-1], chunk[:, 1:]))
    return loss


def ours_model(setup, cell):
    import keras

    import keras_gated

    keras.utils.set_random_seed(setup.seed)
    return keras_gated.language_model(
        setup.vocab,
        cell=cell,
        embed_dim=setup.units,
        units=setup.units,
        num_layers=setup.layers,
        tie_weights=True,
        seed=setup.seed,
    )


def builtin_streaming_model(ours, cell):
    """Keras's built-in layers with `ours`'s weights: [tokens, *states] -> [logits, *states]."""
    import keras

    layer_class = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    per_layer = 2 if cell == "lstm" else 1
    units = ours.units
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    states_in = [
        keras.Input((units,), name=f"state_in_{k}") for k in range(per_layer * len(ours.rnn_layers))
    ]
    embedding = keras.layers.ReversibleEmbedding(
        ours.vocab_size, ours.embed_dim, tie_weights=True, name="embedding"
    )
    x, states_out, layers = embedding(tokens), [], []
    for k in range(len(ours.rnn_layers)):
        layer = layer_class(
            units, return_sequences=True, return_state=True, use_cudnn=False, name=f"{cell}_{k}"
        )
        x, *s = layer(x, initial_state=states_in[per_layer * k : per_layer * (k + 1)])
        states_out += s
        layers.append(layer)
    model = keras.Model([tokens, *states_in], [embedding(x, reverse=True), *states_out])
    model([np.zeros((1, 1), np.int32)] + [np.zeros((1, units), np.float32)] * len(states_in))
    embedding.embeddings.assign(ours.embedding.embeddings)
    for theirs, mine in zip(layers, ours.rnn_layers):
        for a, b in zip(
            theirs.cell.weights, (mine.cell.kernel, mine.cell.recurrent_kernel, mine.cell.bias)
        ):
            a.assign(b)
    return model


def keras_forward(model):
    """`model.call_with_states` under one tf.function with free batch and time."""
    import tensorflow as tf

    specs = [tf.TensorSpec((None, None), tf.int32)] + [
        tf.TensorSpec((None, s), tf.float32) for s in model.state_sizes
    ]

    @tf.function(input_signature=specs)
    def forward(tokens, *states):
        logits, new_states = model.call_with_states(tokens, list(states))
        return [logits, *new_states]

    def run(tokens, states):
        logits, *new_states = forward(tokens.astype(np.int32), *states)
        return logits.numpy(), [s.numpy() for s in new_states]

    return run


def session_options(spinning):
    """onnxruntime options for the benchmark's sessions: default threads; `spinning` False
    stops the thread pool from spinning after each call. Scoring (one call per sample) runs
    without it: with several sessions interleaved in one process, a finished session's
    spinning threads take the cores from the next system timed (measured: our GRU 1x35
    scoring 12.1 ms with spinning, 7.4 ms without; Keras's export 26.4 and 19.0 ms).
    Generation (100 calls per sample, as a streaming user runs them) keeps it on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
    return options


def ort_forward(path, spinning):
    """onnxruntime on a plain file (Keras's export): inputs/outputs in the graph's order."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        path, session_options(spinning), providers=["CPUExecutionProvider"]
    )
    inputs = [i.name for i in session.get_inputs()]
    int_type = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}[session.get_inputs()[0].type]

    def run(tokens, states):
        feeds = {inputs[0]: tokens.astype(int_type), **dict(zip(inputs[1:], states))}
        logits, *new_states = session.run(None, feeds)
        return logits, new_states

    return run


def ours_ort_forward(path, spinning):
    """Our runtime, `OnnxLanguageModel.step`, on a `to_onnx` file."""
    from keras_gated.export import OnnxLanguageModel

    lm = OnnxLanguageModel(
        path, providers=["CPUExecutionProvider"], sess_options=session_options(spinning)
    )
    return lambda tokens, states: lm.step(tokens, states)


# -- graph facts ----------------------------------------------------------------------------
def graph_facts(path):
    """{"ops": {op_type: count}, "weight_bytes": bytes read per token (see module doc)}."""
    import collections

    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    ops = collections.Counter()
    consumers = collections.defaultdict(set)

    def visit(graph):
        for node in graph.node:
            ops[node.op_type] += 1
            for name in node.input:
                consumers[name].add(node.op_type)
            for attr in node.attribute:
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else []:
                    visit(sub)

    visit(model.graph)
    total = 0
    for init in model.graph.initializer:
        size = numpy_helper.to_array(init).nbytes
        if consumers[init.name] == {"Gather"} and len(init.dims) == 2:
            size //= init.dims[0]
        total += size
    return {"ops": dict(ops), "weight_bytes": total}


def keras_weight_bytes(model):
    """Bytes a Keras model reads per token: variables, the embedding's lookup aside (tied)."""
    return sum(int(np.prod(v.shape)) * 4 for v in model.trainable_weights)


def score_flops(setup, cell, batch, steps):
    """FLOPs (2 per multiply-add) of scoring (B, T): every layer's input and recurrent matmuls
    and the output projection; the gate arithmetic (O(B T U) per layer) is left out."""
    gates, u = {"lstm": 4, "gru": 3}[cell], setup.units
    per_token = setup.layers * (u * gates * u + u * gates * u) + u * setup.vocab  # E = U
    return 2 * batch * steps * per_token


def matmul_rate(rows, inner, cols, rounds):
    """FLOP/s of onnxruntime's MatMul (rows, inner) x (inner, cols) on this machine, best of
    `rounds` calls after two warm-up calls: the rate no graph's matmuls can beat here."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(inner, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, inner])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, cols])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(
        model.SerializeToString(), session_options(False), providers=["CPUExecutionProvider"]
    )
    x = np.ones((rows, inner), np.float32)
    seconds = [time_call(lambda: session.run(None, {"x": x})) for _ in range(rounds + 2)][2:]
    return 2 * rows * inner * cols / min(seconds)


# -- measurement -----------------------------------------------------------------------------
def generate(forward, states, first_token, tokens):
    """Greedy generation of `tokens` ids at batch 1; returns them."""
    token, out = np.array([[first_token]], np.int64), []
    for _ in range(tokens):
        logits, states = forward(token, states)
        token = logits[:, -1].argmax(-1)[:, None]
        out.append(int(token[0, 0]))
    return out


def perplexity(forward, ids, units_per_state, batch=20, seq_len=35):
    """exp(mean NLL) of `ids` cut into `batch` rows, run in windows with carried states."""
    rows = (len(ids) - 1) // batch
    x = ids[: rows * batch].reshape(batch, rows)
    y = ids[1 : rows * batch + 1].reshape(batch, rows)
    states = [np.zeros((batch, u), np.float32) for u in units_per_state]
    total = 0.0
    for start in range(0, rows, seq_len):
        logits, states = forward(x[:, start : start + seq_len], states)
        logits = logits.astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        target = y[:, start : start + seq_len]
        total -= np.take_along_axis(logp, target[..., None], -1).sum()
    return float(np.exp(total / y.size))


def prepare(setup, cell, workdir, data):
    """Trains our model briefly, exports it both ways; returns a dict describing the systems."""
    import keras_gated.export as kge

    train_ids, _, tokenizer = data
    model = ours_model(setup, cell)
    loss = train_briefly(model, train_ids, setup.train_steps)
    builtin = builtin_streaming_model(model, cell)
    keras_path = os.path.join(workdir, f"keras_{cell}.onnx")
    builtin.export(keras_path, format="onnx", verbose=False)
    ours_path = os.path.join(workdir, f"ours_{cell}.onnx")
    result = kge.to_onnx(model, ours_path, tokenizer=tokenizer, quantize="int8", overwrite=True)
    return {
        "model": model,
        "builtin": builtin,
        "train_loss": loss,
        "paths": {
            "keras-export": keras_path,
            "ours-fp32": ours_path,
            "ours-int8": result.quantized_path,
        },
        "export": result,
    }


def run_inference(setup, cell, prepared, data, bandwidth, rounds, warmup, progress=None):
    """Times every system on every task, interleaved; returns a results dict."""
    model = prepared["model"]
    _, valid_ids, _ = data

    def systems(spinning, keras_run):
        paths = prepared["paths"]
        return {
            "keras": keras_run,
            "keras-export": ort_forward(paths["keras-export"], spinning),
            "ours-fp32": ours_ort_forward(paths["ours-fp32"], spinning),
            "ours-int8": ours_ort_forward(paths["ours-int8"], spinning),
        }

    keras_run = keras_forward(model)  # one tf.function for both tasks
    forwards, scoring = systems(True, keras_run), systems(False, keras_run)
    facts = {name: graph_facts(path) for name, path in prepared["paths"].items()}
    weight_bytes = {
        "keras": keras_weight_bytes(model),
        **{name: f["weight_bytes"] for name, f in facts.items()},
    }
    sizes = model.state_sizes
    rng = np.random.default_rng(setup.seed)
    results = {
        "cell": cell,
        "tasks": {},
        "weight_bytes": weight_bytes,
        "ops": {name: f["ops"] for name, f in facts.items()},
        "train_loss": prepared["train_loss"],
        "export_max_abs_diff": prepared["export"].max_abs_diff,
        "int8_max_abs_diff": prepared["export"].quantized_max_abs_diff,
    }

    big = max(setup.score_shapes, key=lambda shape: shape[0] * shape[1])
    results["matmul_rate"] = matmul_rate(big[0] * big[1], setup.units, setup.vocab, rounds)
    for batch, steps in setup.score_shapes:
        tokens = rng.integers(0, setup.vocab, (batch, steps)).astype(np.int64)
        zeros = [np.zeros((batch, s), np.float32) for s in sizes]
        calls = {name: (lambda f=f, x=tokens, z=zeros: f(x, z)) for name, f in scoring.items()}
        times = interleave(calls, rounds, warmup, progress=progress)
        task = _task(times, batch * steps)
        task["flops"] = score_flops(setup, cell, batch, steps)
        task["floor_seconds"] = task["flops"] / results["matmul_rate"]
        results["tasks"][f"score {batch}x{steps}"] = task

    start = [np.zeros((1, s), np.float32) for s in sizes]
    first = int(valid_ids[0])
    calls = {
        name: (lambda f=f: generate(f, start, first, setup.gen_tokens))
        for name, f in forwards.items()
    }
    times = interleave(calls, rounds, warmup, progress=progress)
    task = _task(times, setup.gen_tokens)
    for name, row in task["systems"].items():
        bound = bandwidth / weight_bytes[name]
        row["bound_tokens_per_s"] = bound
        row["bound_fraction"] = row["tokens_per_s"] / bound
    results["tasks"][f"generate {setup.gen_tokens}"] = task
    results["generated_agree"] = {
        name: generate(f, start, first, 20) == generate(forwards["ours-fp32"], start, first, 20)
        for name, f in forwards.items()
    }
    results["perplexity"] = {name: perplexity(f, valid_ids, sizes) for name, f in forwards.items()}
    results["eval_tokens"] = len(valid_ids) - 1
    return results


def _task(times, tokens_per_call):
    systems = {}
    for name, samples in times.items():
        stat = summary(samples)
        systems[name] = {
            "seconds": stat,
            "tokens_per_s": tokens_per_call / stat.median,
            "ours_fp32_ratio": ratio_per_round(times["ours-fp32"], samples),
            "samples": samples,
        }
    return {"systems": systems, "tokens_per_call": tokens_per_call}
