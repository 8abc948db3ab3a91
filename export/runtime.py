"""`OnnxLanguageModel`: score and sample text with an exported file, using onnxruntime only.

Imports onnxruntime, numpy, the standard library and `keras_gated.sampling` (numpy only, shared
with Keras generation, so the same seed draws the same tokens), plus, when the file holds a
tokenizer, `keras_gated.data.tokenizers` (pure Python/numpy); no TensorFlow, Keras or onnx.

    lm = OnnxLanguageModel("lm.onnx")
    lm.score("to be or not to be")                 # perplexity
    lm.generate("to be", tokens=20, seed=0)        # 20 sampled tokens after the prompt, as text

States are a flat list of float32 (B, U) arrays in `state_names` order (per recurrent layer
h, then c for an LSTM), as `LanguageModel.call_with_states` returns them. Any exported token
model with one integer input, one output and state inputs (a `LanguageModel`, or a Sequential
or functional model of `stateful` recurrent layers) runs here; its input's name and integer
type come from the file.
"""

import logging
import os

import numpy as np
import onnxruntime as ort

from keras_gated.sampling import check_sampling, sample_next

from . import metadata as md

logger = logging.getLogger(__name__)

SCORE_CHUNK = 256  # time steps per onnxruntime call when scoring; state carries across chunks


class OnnxLanguageModel:
    """A language model exported by `to_onnx`, run by onnxruntime.

    Args:
        path: the .onnx file.
        providers: "auto" (CUDAExecutionProvider when onnxruntime offers it, else CPU) or an
            explicit list of onnxruntime provider names.
        sess_options: an `onnxruntime.SessionOptions` (threads, spinning, ...) or None.

    Attributes:
        vocab_size: V. state_names: graph state inputs. state_sizes: their widths U.
        providers: the providers the session uses. tokenizer: the stored tokenizer or None.
        metadata: the parsed `keras_gated` metadata.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: not a valid ONNX file; no keras_gated metadata, malformed metadata, or
            metadata that does not match the graph (the message names the file and the
            field); not a token model; or an unknown provider.
    """

    def __init__(self, path, providers="auto", sess_options=None):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such ONNX file: {path}")
        if os.path.isdir(path):
            raise ValueError(f"{path} is a directory, not a valid ONNX file")
        self.path = path
        chosen = _choose_providers(providers)
        try:
            self._session = ort.InferenceSession(path, sess_options, providers=chosen)
        except Exception as error:  # onnxruntime raises its own exception classes
            raise ValueError(
                f"{path}: not a valid ONNX file ({type(error).__name__}: "
                f"{str(error).strip()[:200]})"
            ) from None
        self.providers = self._session.get_providers()
        logger.info("%s runs on %s", path, self.providers[0])
        props = self._session.get_modelmeta().custom_metadata_map
        if md.METADATA_KEY not in props:
            raise ValueError(
                f"{path}: no keras_gated metadata (not exported by keras_gated.export.to_onnx)"
            )
        self.metadata = md.loads(props[md.METADATA_KEY], path)
        inputs = {i.name: i for i in self._session.get_inputs()}
        self._input = self.metadata.get("input")
        token_type = inputs[self._input].type if self._input in inputs else ""
        if not self.metadata.get("vocab_size") or "int" not in token_type:
            raise ValueError(
                f"{path}: not a language model (its input is {self._input!r}, not token ids)"
            )
        self._token_dtype = np.int32 if token_type == "tensor(int32)" else np.int64
        self.vocab_size = int(self.metadata["vocab_size"])
        specs = self.metadata["states"]
        if not specs:
            raise ValueError(
                f"{path}: not a language model (no state inputs to carry between "
                f"calls; export its recurrent layers with stateful=True)"
            )
        self.state_names = [s["input"] for s in specs]
        self.state_sizes = [int(s["size"]) for s in specs]
        self._outputs = [self.metadata["output"]] + [s["output"] for s in specs]
        missing = {self._input, *self.state_names} - set(inputs)
        if missing:
            raise ValueError(f"{path}: graph lacks the inputs {sorted(missing)} its metadata names")
        unnamed = set(inputs) - {self._input, *self.state_names}
        if unnamed:
            raise ValueError(f"{path}: metadata does not name the graph inputs {sorted(unnamed)}")
        outputs = {o.name: o for o in self._session.get_outputs()}
        missing = set(self._outputs) - set(outputs)
        if missing:
            raise ValueError(
                f"{path}: graph lacks the outputs {sorted(missing)} its metadata names"
            )
        widths = [(outputs[self._outputs[0]], self.vocab_size)]
        widths += [(inputs[name], size) for name, size in zip(self.state_names, self.state_sizes)]
        for tensor, size in widths:  # a static last axis must be the metadata's width
            if tensor.shape and isinstance(tensor.shape[-1], int) and tensor.shape[-1] != size:
                raise ValueError(
                    f"{path}: metadata gives {tensor.name!r} width {size}, the "
                    f"graph {tensor.shape[-1]}"
                )
        self.tokenizer = _tokenizer(self.metadata.get("tokenizer"), self.vocab_size, path)

    def __repr__(self):
        return (
            f"OnnxLanguageModel({self.path!r}, vocab_size={self.vocab_size}, "
            f"states={self.state_names}, providers={self.providers})"
        )

    # -- the graph ----------------------------------------------------------------------
    def initial_states(self, batch):
        """Zero states for `batch` sequences: a list of float32 (batch, U)."""
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        return [np.zeros((batch, size), dtype=np.float32) for size in self.state_sizes]

    def step(self, tokens, states=None):
        """Runs the graph once.

        Args:
            tokens: token ids (B, T), integers in [0, V); T = 1 for a single step.
            states: list of (B, U) float arrays in `state_names` order; None: zeros.

        Returns:
            (logits float32 (B, T, V), final states list of float32 (B, U)).

        Raises:
            ValueError: tokens not 2-D integers in [0, V) with B, T >= 1; wrong state count
                or shape (the message names the state input and the expected shape).
        """
        tokens = self._check_tokens(tokens)
        batch = tokens.shape[0]
        states = self.initial_states(batch) if states is None else self._check_states(states, batch)
        feeds = {
            self._input: tokens.astype(self._token_dtype),
            **dict(zip(self.state_names, states)),
        }
        logits, *final = self._session.run(self._outputs, feeds)
        return logits, final

    # -- scoring ------------------------------------------------------------------------
    def score_ids(self, ids):
        """Perplexity exp(sum NLL / predicted tokens) of one id sequence (N,), N >= 2.

        Token t + 1 is predicted from tokens 0..t; the sequence runs in chunks of
        `SCORE_CHUNK` steps with the state carried over, so any length fits in memory.
        """
        ids = self._check_tokens(np.asarray(ids).reshape(1, -1) if np.ndim(ids) == 1 else ids)
        if ids.shape[0] != 1 or ids.shape[1] < 2:
            raise ValueError(f"score_ids needs one sequence of >= 2 ids, got shape {ids.shape}")
        states, total = None, 0.0
        inputs, targets = ids[:, :-1], ids[0, 1:]
        for start in range(0, inputs.shape[1], SCORE_CHUNK):
            logits, states = self.step(inputs[:, start : start + SCORE_CHUNK], states)
            logp = _log_softmax(logits[0].astype(np.float64))
            chunk_targets = targets[start : start + SCORE_CHUNK]
            total -= logp[np.arange(len(chunk_targets)), chunk_targets].sum()
        return float(np.exp(total / len(targets)))

    def score(self, text):
        """Perplexity of `text` tokenized with the stored tokenizer; see `score_ids`."""
        return self.score_ids(self._require_tokenizer().encode(text))

    # -- generation ---------------------------------------------------------------------
    def generate_ids(self, prompt_ids, tokens=50, temperature=1.0, top_k=None, seed=None):
        """Samples `tokens` ids to follow `prompt_ids` (N,), N >= 1.

        The prompt is fed in one call, then each sampled id is fed alone with the carried
        state. Sampling is `keras_gated.sampling.sample_next`: softmax(logits / temperature)
        among the `top_k` most likely ids if given; `seed` makes it reproducible, and the same
        seed draws what Keras's `keras_gated.models.generate` draws.

        Returns:
            int64 array (tokens,): the sampled ids, without the prompt.
        """
        return self.generate_ids_batch([prompt_ids], tokens, temperature, top_k, seed)[0]

    def generate_ids_batch(self, prompts_ids, tokens=50, temperature=1.0, top_k=None, seed=None):
        """`generate_ids` for several prompts: each prompt is fed alone (prompts of any lengths
        need no padding or masking), then the sampling steps run as one batch.

        Returns:
            list of int64 arrays (tokens,). With one prompt the draws equal `generate_ids`'s;
            with several, each step draws for the rows in turn from one generator.
        """
        if not isinstance(tokens, (int, np.integer)) or tokens < 0:
            raise ValueError(f"tokens must be an integer >= 0, got {tokens!r}")
        check_sampling(temperature, top_k)
        prompts = [self._check_tokens(np.asarray(p).reshape(1, -1)) for p in prompts_ids]
        if not prompts:
            raise ValueError("no prompts given")
        last, states = [], []
        for prompt in prompts:
            logits, final = self.step(prompt)
            last.append(logits[:, -1])
            states.append(final)
        logits = np.concatenate(last)  # (B, V)
        states = [np.concatenate(column) for column in zip(*states)]
        rng = np.random.default_rng(seed)
        sampled = []
        for k in range(tokens):
            ids = sample_next(logits, temperature, top_k, rng)  # (B,)
            sampled.append(ids)
            if k + 1 < tokens:
                step_logits, states = self.step(ids[:, None], states)
                logits = step_logits[:, -1]
        if not sampled:
            return [np.zeros(0, np.int64) for _ in prompts]
        return list(np.stack(sampled, axis=1))

    def generate(self, prompt, tokens=50, temperature=1.0, top_k=None, seed=None):
        """The decoded continuation of `prompt` (without it, but with the space that joins it
        to the prompt if one belongs there), as Keras's `generate` returns; see `generate_ids`."""
        return self.generate_batch([prompt], tokens, temperature, top_k, seed)[0]

    def generate_batch(self, prompts, tokens=50, temperature=1.0, top_k=None, seed=None):
        """`generate` for a list of prompts; see `generate_ids_batch` for how they are batched."""
        tokenizer = self._require_tokenizer()
        if isinstance(prompts, str):
            raise ValueError("generate_batch takes a list of prompts; use generate for one")
        encoded = []
        for prompt in prompts:
            ids = tokenizer.encode(prompt)
            if len(ids) == 0:
                raise ValueError(f"prompt {prompt!r} has no tokens; give at least one")
            encoded.append(ids)
        out = self.generate_ids_batch(encoded, tokens, temperature, top_k, seed)
        return [tokenizer.decode(ids, after=prompt) for ids, prompt in zip(out, encoded)]

    # -- checks -------------------------------------------------------------------------
    def _check_tokens(self, tokens):
        array = np.asarray(tokens)
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(
                f"tokens must have shape (batch, time) with batch, time >= 1, got {array.shape}"
            )
        if array.dtype.kind not in "iu":
            raise ValueError(f"tokens must be integer ids, got dtype {array.dtype}")
        bad = (array < 0) | (array >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"token id {array[bad].flat[0]} out of range [0, {self.vocab_size}) "
                f"(vocab_size={self.vocab_size})"
            )
        return array.astype(np.int64)

    def _check_states(self, states, batch):
        states = list(states)
        if len(states) != len(self.state_names):
            raise ValueError(
                f"expected {len(self.state_names)} states {self.state_names}, got {len(states)}"
            )
        checked = []
        for name, size, state in zip(self.state_names, self.state_sizes, states):
            state = np.asarray(state)
            if state.shape != (batch, size) or state.dtype.kind not in "fiu":
                raise ValueError(
                    f"state {name!r} must be a float array of shape "
                    f"({batch}, {size}), got {state.dtype} {state.shape}"
                )
            checked.append(state.astype(np.float32))
        return checked

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError(
                f"{self.path} was exported without a tokenizer; use score_ids / "
                f"generate_ids with token ids, or export with tokenizer=..."
            )
        return self.tokenizer


def _choose_providers(providers):
    available = ort.get_available_providers()
    if providers == "auto":
        gpu = "CUDAExecutionProvider"
        return [gpu, "CPUExecutionProvider"] if gpu in available else ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    unknown = [p for p in providers if p not in available]
    if unknown or not providers:
        raise ValueError(
            f"unknown onnxruntime providers {unknown or providers}; available: {available}"
        )
    return list(providers)


def _tokenizer(config, vocab_size, path):
    if config is None:
        return None
    from keras_gated.data.tokenizers import tokenizer_from_config

    try:
        tokenizer = tokenizer_from_config(config)
        tokenizer.vocab_size  # noqa: B018  (RuntimeError without a vocabulary)
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: stored tokenizer is unusable ({error})") from None
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(
            f"{path}: stored tokenizer has {tokenizer.vocab_size} tokens, the model {vocab_size}"
        )
    return tokenizer


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
