"""Checks an exported graph against Keras on random inputs and random non-zero initial states.

Inputs read by embeddings get ids in [1, V) (float ones a fraction above, which Keras's cast
truncates away, as ONNX's does). These and float inputs read by `Masking` get masked steps in
the three patterns Keras accepts: row 0 left-padded, row 1 right-padded, row 2 with a hole (id 0
or the mask value); a boolean input (an explicit mask) gets the same pattern of False.
"""

import numpy as np

VERIFY_BATCH = 3  # >= 2, so a batch-axis mix-up shows; one row per mask pattern
VERIFY_TIME = 7  # >= 3, so a time-axis or gate-order mix-up compounds over steps
STATE_SCALE = 0.5  # initial states ~ N(0, 0.5^2): non-zero, inside tanh's responsive range


def masked_steps(batch, time):
    """bool (batch, time), True at masked steps: left padding, right padding, a hole."""
    masked = np.zeros((batch, time), dtype=bool)
    if time >= 5:
        masked[0, :2] = True
        masked[1 % batch, -2:] = True
        masked[2 % batch, time // 2] = True
    return masked


def verification_feeds(lowered, seed=0):
    """{graph input name: array} for every input, states included."""
    rng = np.random.default_rng(seed)
    batch = lowered.inputs[0].batch or VERIFY_BATCH
    feeds = {}
    for spec in lowered.inputs:
        shape = [
            batch if d == "batch" else VERIFY_TIME if isinstance(d, str) or d is None else d
            for d in spec.dims
        ]
        pattern = masked_steps(shape[0], shape[1]) if len(shape) >= 2 else None
        if spec.dtype == "bool":
            x = ~pattern if pattern is not None else np.ones(shape, bool)
        elif spec.dtype.startswith(("int", "uint")) or spec.high:
            x = rng.integers(1 if spec.high else 0, spec.high or 2, size=shape)
            if not spec.dtype.startswith(("int", "uint")):  # float ids: Keras truncates them
                x = x + rng.uniform(0.0, 0.9, size=shape)
            if spec.high and pattern is not None and len(shape) == 2:
                x[pattern] = 0  # a masked id for Embedding(mask_zero=True)
        else:
            x = rng.standard_normal(shape)
            if spec.mask_value is not None and pattern is not None:
                x[pattern] = spec.mask_value
        feeds[spec.name] = x.astype(spec.dtype)
    for spec in lowered.states:
        feeds[spec["input"]] = (STATE_SCALE * rng.standard_normal((batch, spec["size"]))).astype(
            np.float32
        )
    return feeds


def max_abs_diff(model_bytes, lowered, seed=0):
    """Largest |onnxruntime - Keras| over every output and final state.

    Raises:
        ValueError: an output has another shape than Keras's.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    feeds = verification_feeds(lowered, seed)
    want = lowered.reference(feeds)
    names = list(lowered.outputs) + [spec["output"] for spec in lowered.states]
    got = dict(zip(names, session.run(names, feeds)))
    diff = 0.0
    for name in names:
        if got[name].shape != want[name].shape:
            raise ValueError(
                f"ONNX output {name!r} has shape {got[name].shape}, Keras gives {want[name].shape}"
            )
        if got[name].size:
            error = np.abs(got[name].astype(np.float64) - want[name].astype(np.float64))
            diff = max(diff, float(np.max(error)))
    return diff
