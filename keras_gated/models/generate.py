"""Text generation from a Keras `LanguageModel`, one token at a time with carried state."""

import keras
import numpy as np

from keras_gated.models.language_model import inference_fn
from keras_gated.sampling import check_sampling, sample_next


def generate(model, tokenizer, prompt, tokens=50, temperature=1.0, top_k=None, seed=None):
    """Continues `prompt` by `tokens` sampled tokens.

    The prompt runs through the model once; each new token is then fed alone with the
    states carried from the previous step (the prefix is never re-run).

    Returns:
        the decoded continuation (without the prompt), with the space that joins it to the
        prompt if one belongs there: `prompt + generate(...)` reads as one text.
    """
    check_sampling(temperature, top_k)
    if not isinstance(tokens, int) or tokens < 0:
        raise ValueError(f"`tokens` must be a non-negative integer, got {tokens!r}")
    ids = tokenizer.encode(prompt)
    if len(ids) == 0:
        raise ValueError("`prompt` is empty after tokenization: give at least one token")
    step = inference_fn(model)
    rng = np.random.default_rng(seed)
    logits, states = step(np.asarray(ids, dtype="int32")[None, :], model.initial_states(1))
    out = []
    for _ in range(tokens):
        nxt = sample_next(keras.ops.convert_to_numpy(logits[:, -1]), temperature, top_k, rng)
        out.append(int(nxt[0]))
        logits, states = step(nxt.astype("int32")[:, None], states)
    return tokenizer.decode(out, after=ids)
