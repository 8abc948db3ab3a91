"""Checks an exported graph against Keras on random inputs and random non-zero initial states."""

import numpy as np

from . import metadata as md

VERIFY_BATCH = 2  # >= 2, so a batch-axis mix-up shows
VERIFY_TIME = 7  # >= 3, so a time-axis or gate-order mix-up compounds over steps
STATE_SCALE = 0.5  # initial states ~ N(0, 0.5^2): non-zero, inside tanh's responsive range


def verification_inputs(lowered, seed=0):
    """Random model input (token ids in [0, V) or N(0, 1) features) and initial states."""
    rng = np.random.default_rng(seed)
    sizes = {md.BATCH: VERIFY_BATCH, md.TIME: VERIFY_TIME}
    shape = [sizes.get(d, 3) if isinstance(d, str) else d for d in lowered.input_dims]
    if lowered.input_dtype == np.int64:
        x = rng.integers(0, lowered.vocab_size or 2, size=shape, dtype=np.int64)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    states = [(STATE_SCALE * rng.standard_normal((VERIFY_BATCH, spec["size"]))).astype(np.float32)
              for spec in lowered.states]
    return x, states


def run_onnx(session, lowered, x, states):
    """One onnxruntime run -> (main output, final states), in `lowered.states` order."""
    feeds = {lowered.input_name: x}
    feeds.update({spec["input"]: s for spec, s in zip(lowered.states, states)})
    names = [lowered.output_name] + [spec["output"] for spec in lowered.states]
    output, *final = session.run(names, feeds)
    return output, final


def max_abs_diff(model_bytes, lowered, seed=0):
    """Largest |onnxruntime - Keras| over the main output and every final state.

    Raises:
        ValueError: an output has another shape than Keras's.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    x, states = verification_inputs(lowered, seed)
    want_output, want_states = lowered.reference(x, states)
    got_output, got_states = run_onnx(session, lowered, x, states)
    names = [lowered.output_name] + [spec["output"] for spec in lowered.states]
    diff = 0.0
    for name, got, want in zip(names, [got_output, *got_states], [want_output, *want_states]):
        if got.shape != want.shape:
            raise ValueError(f"ONNX output {name!r} has shape {got.shape}, "
                             f"Keras gives {want.shape}")
        diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - want)))) if got.size else diff
    return diff
