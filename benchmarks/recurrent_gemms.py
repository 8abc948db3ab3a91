"""XLA's time for the matmuls our recurrent layers run in one training step (JAX backend).

The fused path (`keras_gated/layers/fused.py`) of one layer with D inputs, U units and
G gates (LSTM 4; GRU 3, reset_after=True) on a (B, T, D) batch runs these GEMMs, where
a = x W + h U is the (B, G*U) pre-activation and da its gradient:
    x W          (B*T, D) x (D, G*U)      once      input projection, all steps at once
    da W^T       (B*T, G*U) x (G*U, D)    once      gradient to the inputs
    x^T da       (D, B*T) x (B*T, G*U)    once      dW
    h_{t-1} U    (B, U) x (U, G*U)        T times   forward recurrence
    da_t U^T     (B, G*U) x (G*U, U)      T times   (L3)/(G3), U^T made once
    h^T da       (U, B*T) x (B*T, G*U)    once      dU (L4)/(G4)
Nothing else is counted (gates, masks, the embedding and softmax), so the sum is what the
layers' matmuls alone take with XLA's GEMMs: a floor for any implementation built on them.
"""

GATES = {"lstm": 4, "gru": 3}
FORMS = {  # how each GEMM reads its operands, as the layers hold them
    "a @ b": lambda a, b: a @ b,
    "a @ b.T": lambda a, b: a @ b.T,
    "a.T @ b": lambda a, b: a.T @ b,
}
TRIES = 7  # timed calls of each GEMM loop; the best one counts


def layer_gemms(cell, batch, steps, inputs, units):
    """[(what, lhs shape, form, rhs shape, calls per training step)] of one layer."""
    rows, gu = batch * steps, GATES[cell] * units
    return [
        ("x W", (rows, inputs), "a @ b", (inputs, gu), 1),
        ("da W^T", (rows, gu), "a @ b.T", (inputs, gu), 1),
        ("x^T da", (rows, inputs), "a.T @ b", (rows, gu), 1),
        ("h U", (batch, units), "a @ b", (units, gu), steps),
        ("da U^T", (batch, gu), "a @ b", (gu, units), steps),
        ("h^T da", (rows, units), "a.T @ b", (rows, gu), 1),
    ]


def flops(lhs, form, rhs):
    """2 m k n of one GEMM."""
    (m, k), n = (lhs[::-1] if form == "a.T @ b" else lhs), rhs[0 if form == "a @ b.T" else 1]
    return 2 * m * k * n


def gemm_seconds(lhs, form, rhs, repeats, tries=TRIES):
    """Seconds per float32 GEMM: the best of `tries` calls of one jit-compiled `lax.scan` of
    `repeats` GEMMs (a new lhs each), divided by `repeats`. A per-step GEMM is timed in a
    loop of T, as the layers run it: one call's dispatch (~30 us, more than a small GEMM)
    is then spread over the steps instead of counted at each."""
    import jax
    import numpy as np

    from benchmarks.timing import time_call

    rng = np.random.default_rng(0)
    a, b = (
        jax.device_put(rng.standard_normal(s, dtype=np.float32)) for s in ((repeats, *lhs), rhs)
    )
    product = FORMS[form]
    loop = jax.jit(lambda a, b: jax.lax.scan(lambda _, a_t: (None, product(a_t, b)), None, a)[1])
    loop(a, b).block_until_ready()
    return min(time_call(lambda: loop(a, b).block_until_ready()) for _ in range(tries)) / repeats


def measure(setup, cell):
    """{"gemms": [a row per GEMM of one layer], "seconds": all layers' GEMMs per step}; a
    row's "seconds" is one call's, its "calls" every layer's calls per training step."""
    rows = []
    for what, lhs, form, rhs, calls in layer_gemms(
        cell, setup.batch, setup.steps, setup.units, setup.units
    ):  # E = U
        seconds = gemm_seconds(lhs, form, rhs, calls)
        rows.append(
            {
                "what": what,
                "lhs": lhs,
                "form": form,
                "rhs": rhs,
                "calls": calls * setup.layers,
                "seconds": seconds,
                "gflops": flops(lhs, form, rhs) / seconds / 1e9,
            }
        )
    return {"gemms": rows, "seconds": sum(r["calls"] * r["seconds"] for r in rows)}
