"""Serving under load: `OnnxLanguageModel` and a plain `onnxruntime.InferenceSession` on one
exported file, 8 threads sharing one session and 8 threads over 4 sessions in one process,
through `benchmarks.serving.call_mix` (score, generate, generate_batch at batch 1-16, step with
fed-back states, session.run) with bad requests among them.

Oracle: the same list made sequentially, first, on one session. Every concurrent result must
equal its sequential one, every good call succeed, every bad one raise what it raised alone,
and resident memory after the run stay within `RSS_GROWTH` of its value after the warm-up.
"""

import gc
import os
import shutil

import numpy as np
import pytest

from benchmarks import serving
from benchmarks.serving import Call
from keras_gated.export import to_onnx
from tests.export.helpers import V, char_tokenizer, make_lm

QUICK_CALLS = 1_000  # `make test`: ~1 s per pass at these sizes
FULL_CALLS = 10_000  # slow tier
SCENARIOS = [(8, 1), (8, 4)]  # (threads, sessions); call i goes to session i mod sessions
WARMUP_SHARE = 0.1  # of the list, served once on the scenario's sessions before measuring RSS
BAD_EVERY = 37  # a bad request after every 37 good ones, the bad list in turn
# A concurrent call against the same call made alone on the same file with the same session
# options: measured bitwise equal (max difference 0 over the 10,000-call list, with one and
# with two intra-op threads).
# 1e-6 relative gives room only for a kernel that splits a reduction by the threads it finds
# free; a state read from another call's buffers changes values by O(0.1).
FLOAT_RTOL = 1e-6
RSS_GROWTH = 0.05  # resident memory after the run / after the warm-up - 1, at most
PASSING_BAD = 2  # the last `bad_calls` succeed


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    """A 2-layer tied LSTM (V=23, E=U=8) with a character tokenizer, exported once."""
    path = tmp_path_factory.mktemp("serving") / "lm.onnx"
    to_onnx(make_lm("lstm", 2, seed=11), path, tokenizer=char_tokenizer())
    return path


@pytest.fixture(scope="module")
def models(path):
    """4 (OnnxLanguageModel, InferenceSession) pairs on `path`, `serving.SESSION_SETTINGS`."""
    return serving.open_models(path, 4)


def bad_calls(lm):
    """One request per distinct bad input: all but the last two must raise; those two pass
    (NaN states give NaN logits; characters outside the vocabulary encode as <unk>)."""
    rng = np.random.default_rng(1)

    def ids(*shape):
        return rng.integers(1, V, size=shape)

    def states(batch, value=1.0):
        return [np.full((batch, size), value, np.float32) for size in lm.state_sizes]

    return [
        Call("score", {"text": "a"}, 1, 0),  # one token: nothing to predict
        Call("generate", {"prompt": "", "tokens": 5, "seed": 0}, 1, 0),
        Call("generate", {"prompt": "ab", "tokens": 5, "temperature": 0.0, "seed": 0}, 1, 0),
        Call("generate", {"prompt": "ab", "tokens": 5, "top_k": 0, "seed": 0}, 1, 0),
        Call("generate", {"prompt": "ab", "tokens": -1, "seed": 0}, 1, 0),
        Call("generate_batch", {"prompts": "abc", "tokens": 3, "seed": 0}, 1, 0),
        Call("generate_batch", {"prompts": [], "tokens": 3, "seed": 0}, 1, 0),
        Call("generate_batch", {"prompts": ["ab", ""], "tokens": 3, "seed": 0}, 1, 0),
        Call("stream", {"tokens": [np.array([[1, V]])], "states": None}, 1, 0),
        Call("stream", {"tokens": [np.array([[-1]])], "states": None}, 1, 0),
        Call("stream", {"tokens": [np.array([[1.0, 2.0]])], "states": None}, 1, 0),
        Call("stream", {"tokens": [np.array([1, 2])], "states": None}, 1, 0),  # 1-D
        Call("stream", {"tokens": [ids(2, 3)], "states": states(3)}, 1, 0),  # batch 3 != 2
        Call("stream", {"tokens": [ids(2, 3)], "states": states(2)[:-1]}, 1, 0),  # 3 of 4
        # step 1 succeeds, step 2 changes the batch under the fed-back states:
        Call("stream", {"tokens": [ids(2, 3), ids(3, 1)], "states": None}, 2, 0),
        Call("run", {"tokens": [ids(2, 3)], "states": states(3)}, 1, 0),  # plain session
        Call("run", {"tokens": [np.array([[1, V]])], "states": states(1)}, 1, 0),
        Call("stream", {"tokens": [ids(2, 3), ids(2, 1)], "states": states(2, np.nan)}, 2, 0),
        Call("generate", {"prompt": "ABC xyz", "tokens": 4, "seed": 0}, 1, 0),
    ]


def with_bad_calls(calls, bad):
    """`calls` with `bad[k % len(bad)]` after every BAD_EVERY of them."""
    out = []
    for i, call in enumerate(calls):
        out.append(call)
        if (i + 1) % BAD_EVERY == 0:
            out.append(bad[(i // BAD_EVERY) % len(bad)])
    return out


def outcome(call, model):
    """The call's result made alone, or ("raised", type name, message)."""
    try:
        return serving.perform(call, *model)
    except Exception as error:
        return ("raised", type(error).__name__, str(error))


def difference(got, want):
    """None when `got` equals `want` (strings exactly, floats within FLOAT_RTOL, NaN equal
    to NaN), else a short description."""
    if isinstance(want, (str, tuple)) or (isinstance(want, list) and isinstance(want[0], str)):
        return None if got == want else f"{got!r} != {want!r}"
    got, want = ([got], [want]) if isinstance(want, float) else (got, want)
    if [np.shape(a) for a in got] != [np.shape(b) for b in want]:
        return f"shapes {[np.shape(a) for a in got]} != {[np.shape(b) for b in want]}"
    for a, b in zip(got, want):
        if not np.allclose(a, b, rtol=FLOAT_RTOL, atol=0.0, equal_nan=True):
            return f"max difference {np.nanmax(np.abs(np.subtract(a, b, dtype=np.float64))):.3g}"
    return None


def sequential(models, count):
    """The mixed list (good and bad calls) and each call's outcome made alone on the first
    session, in order."""
    calls = with_bad_calls(
        serving.call_mix(models[0][0], count, seed=count), bad_calls(models[0][0])
    )
    return calls, [outcome(call, models[0]) for call in calls]


def raised(expected):
    return {i for i, e in enumerate(expected) if isinstance(e, tuple)}


@pytest.fixture(scope="module")
def quick_load(models):
    return sequential(models, QUICK_CALLS)


@pytest.fixture(scope="module")
def full_load(models):
    return sequential(models, FULL_CALLS)


def check_under_load(load, models, threads):
    calls, expected = load
    mismatches = []

    def check(i, result):
        message = difference(result, expected[i])
        if message is not None:
            mismatches.append((i, calls[i].kind, message))

    serving.serve(calls[: int(WARMUP_SHARE * len(calls))], models, threads, check)
    gc.collect()
    before = serving.resident_mib()
    _, failed = serving.serve(calls, models, threads, check)
    gc.collect()
    after = serving.resident_mib()
    assert mismatches == []
    assert {i for i, _ in failed} == raised(expected), "a call failed that passed alone, or back"
    for i, error in failed:
        assert ("raised", type(error).__name__, str(error)) == expected[i]
    if before is not None:  # Linux: /proc/self/status
        assert after <= (1 + RSS_GROWTH) * before, f"RSS {before:.0f} -> {after:.0f} MiB"


@pytest.mark.parametrize("threads, sessions", SCENARIOS)
def test_concurrent_calls_equal_sequential_ones(quick_load, models, threads, sessions):
    check_under_load(quick_load, models[:sessions], threads)


@pytest.mark.slow  # the quick test runs a tenth of this list
@pytest.mark.parametrize("threads, sessions", SCENARIOS)
def test_full_load(full_load, models, threads, sessions):
    check_under_load(full_load, models[:sessions], threads)


def test_the_load_covers_every_request_and_the_check_can_fail(quick_load, models):
    calls, expected = quick_load
    good = [c for i, c in enumerate(calls) if i % (BAD_EVERY + 1) != BAD_EVERY]
    assert sum(c.calls for c in good) >= QUICK_CALLS and {c.kind for c in good} == set(
        serving.KINDS
    )
    assert {len(c.args["prompts"]) for c in good if c.kind == "generate_batch"} == set(range(1, 17))
    for kind in ("stream", "run"):
        assert {len(c.args["tokens"][0]) for c in good if c.kind == kind} == set(range(1, 17))
    assert any(
        len(c.args["tokens"]) > 1 and c.args["states"] is not None
        for c in good
        if c.kind == "stream"
    )  # random states fed, then carried
    bad = bad_calls(models[0][0])
    assert len(calls) - len(good) >= len(bad)  # every bad request is in the list
    outcomes = [outcome(call, models[0]) for call in bad]
    assert all(isinstance(o, tuple) for o in outcomes[:-PASSING_BAD])
    nan_logits, unknown = outcomes[-PASSING_BAD:]
    assert np.isnan(nan_logits[0]).all() and isinstance(unknown, str)
    # The comparison sees a state nudged by far less than a crossed call would move it, and
    # two different generations.
    failing = raised(expected)
    stream = next(i for i, c in enumerate(calls) if c.kind == "stream" and i not in failing)
    nudged = [a + 1e-4 * np.abs(a).max() for a in expected[stream]]
    assert difference(nudged, expected[stream]) is not None
    texts = [e for c, e in zip(calls, expected) if c.kind == "generate" and isinstance(e, str)]
    assert difference(texts[0], texts[1]) is not None


def test_a_session_serves_after_its_file_is_removed(path, quick_load, tmp_path):
    """onnxruntime reads the file once: removing it under a live session changes nothing."""
    copy = tmp_path / "copy.onnx"
    shutil.copy(path, copy)
    models = serving.open_models(copy, 2)
    os.remove(copy)
    calls, expected = quick_load
    mismatches = []
    _, failed = serving.serve(
        calls[:200],
        models,
        4,
        lambda i, r: mismatches.append(i) if difference(r, expected[i]) else None,
    )
    assert mismatches == [] and {i for i, _ in failed} == raised(expected[:200])
