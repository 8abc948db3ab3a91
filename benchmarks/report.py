"""BENCHMARKS.md from the results `benchmarks.run` gathers, and the targets of its "Targets"
section checked against them. Ratios are medians of per-round ratios (see `benchmarks.timing`)."""

import datetime

from benchmarks.timing import ratio_per_round, summary

TRAIN_TARGETS = (  # (other system, ours / other must be at most) at U=650, the headline size
    ("torch", 1.00),
    ("keras", 0.85),
    ("keras-drop", 0.45),
)
BACKEND_TRAIN_TARGETS = (  # on JAX: ours with dropout vs the built-in layers
    ("keras", 1.00),
    ("keras-drop", 0.60),
)
MAIN_UNITS = 650  # other sizes (the 200-unit configuration) must keep the ordering:
# ours faster than each system (ours / other < 1); the U=650 limits are reported beside it
BOUND_FRACTION_TARGET = 0.85  # generation within 85% of the bandwidth bound
SCORE_SPEEDUP_TARGET = 2.0  # batch-1 scoring vs Keras under tf.function
GRU_EXPORT_SPEEDUP_TARGET = 2.0  # vs the Loop graph of Keras's own export
INT8_PERPLEXITY_TOLERANCE = 0.02


def _ms(seconds):
    return f"{seconds * 1e3:,.1f}"


def _stat_ms(stat):
    return f"{_ms(stat.median)} ({_ms(stat.min)}–{_ms(stat.max)})"


def _ratio(stat):
    return f"{stat.median:.2f} ({stat.min:.2f}–{stat.max:.2f})"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- targets ----------------------------------------------------------------------------------
def training_targets(entry):
    """[(target, measured, met)] for one training comparison (one setup, one cell)."""
    times, cell, rows = entry["times"], entry["cell"].upper(), []
    if "ours" not in times:
        return rows
    units = entry["setup"].units
    for other, limit in TRAIN_TARGETS:
        main = units == MAIN_UNITS
        name = (
            f"U={units} {cell}: ours / {other} <= {limit:.2f}"
            if main
            else f"U={units} {cell}: ours / {other} < 1 (ordering; U={MAIN_UNITS}: {limit:.2f})"
        )
        if other not in times:
            rows.append((name, entry["missing"].get(other, "not run"), "n/a"))
            continue
        ratio = ratio_per_round(times["ours"], times[other])
        measured = (
            _ratio(ratio)
            if main
            else (f"{_ratio(ratio)}; {limit:.2f} {'also' if ratio.median <= limit else 'not'} met")
        )
        met = ratio.median <= limit if main else ratio.median < 1
        rows.append((name, measured, "yes" if met else "**no**"))
    return rows


def inference_targets(entry):
    """[(target, measured, met)] for one inference comparison (one cell)."""
    res, cell, rows = entry["results"], entry["cell"], []
    systems = {task: data["systems"] for task, data in res["tasks"].items()}
    generation = next(task for task in systems if task.startswith("generate"))
    label = f"U={entry['setup'].units} {cell.upper()}"
    for name in ("ours-fp32", "ours-int8"):
        fraction = systems[generation][name]["bound_fraction"]
        rows.append(
            (
                f"{label}: {name} generation >= {BOUND_FRACTION_TARGET:.0%} of the bandwidth bound",
                f"{fraction:.0%}",
                "yes" if fraction >= BOUND_FRACTION_TARGET else "**no**",
            )
        )
    score1 = next((task for task in systems if task.startswith("score 1x")), None)
    if score1:
        speedup = 1 / systems[score1]["keras"]["ours_fp32_ratio"].median
        rows.append(
            (
                f"{label}: {score1} ours-fp32 >= {SCORE_SPEEDUP_TARGET:.0f}x Keras tf.function",
                f"{speedup:.2f}x",
                "yes" if speedup >= SCORE_SPEEDUP_TARGET else "**no**",
            )
        )
    if cell == "gru":
        for task in systems:
            speedup = 1 / systems[task]["keras-export"]["ours_fp32_ratio"].median
            measured = f"{speedup:.2f}x"
            floor = res["tasks"][task].get("floor_seconds")
            needed = systems[task]["keras-export"]["seconds"].median / GRU_EXPORT_SPEEDUP_TARGET
            if speedup < GRU_EXPORT_SPEEDUP_TARGET and floor and needed < floor:
                measured += (
                    f"; {GRU_EXPORT_SPEEDUP_TARGET:.0f}x needs {_ms(needed)} ms, under "
                    f"the compute floor {_ms(floor)} ms"
                )
            rows.append(
                (
                    f"{label}: {task} ours-fp32 >= {GRU_EXPORT_SPEEDUP_TARGET:.0f}x Keras's export",
                    measured,
                    "yes" if speedup >= GRU_EXPORT_SPEEDUP_TARGET else "**no**",
                )
            )
    int8 = systems[generation]["ours-int8"]["ours_fp32_ratio"].median  # fp32 / int8 time
    rows.append(
        (
            f"{label}: int8 generation faster than fp32",
            f"int8 takes {1 / int8:.2f}x fp32's time",
            "yes" if int8 > 1 else "**no**",
        )
    )
    ppl = res["perplexity"]
    change = ppl["ours-int8"] / ppl["ours-fp32"] - 1
    rows.append(
        (
            f"{label}: int8 perplexity within {INT8_PERPLEXITY_TOLERANCE:.0%} of fp32",
            f"{ppl['ours-int8']:.2f} vs {ppl['ours-fp32']:.2f} ({change:+.2%})",
            "yes" if abs(change) <= INT8_PERPLEXITY_TOLERANCE else "**no**",
        )
    )
    return rows


# -- sections ---------------------------------------------------------------------------------
def machine_section(results):
    m = results["machine"]
    load = results["load"]
    lines = [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} logical cores ({m['vector extensions']})",
        f"- Platform: {m['platform']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "- Threads: " + ", ".join(f"{k} {v}" for k, v in m["threads"].items()),
        f"- Memory bandwidth: {m['bandwidth'] / 1e9:.1f} GB/s — best of 5 single-threaded "
        f"`np.copyto` between two {m['bandwidth_megabytes']} MiB float32 arrays, counting "
        "bytes read + bytes written (STREAM Copy's convention).",
        f"- Load average (1, 5, 15 min): before {_load(load['before'])}, "
        f"after {_load(load['after'])}.",
        "- Other busy processes (share of one core, sampled 1 s) before: "
        + _busy(load["busy_before"])
        + "; after: "
        + _busy(load["busy_after"])
        + ".",
    ]
    if load["busy_before"] or load["busy_after"]:
        lines.append(
            "- **The machine was shared while measuring: re-run on a quiet machine "
            "before quoting these numbers.**"
        )
    return "\n".join(lines)


def _bytes(n):
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _load(values):
    return "n/a" if values is None else ", ".join(f"{v:.2f}" for v in values)


def shared_machine_warning(load):
    """The lines a section ends with when other processes were busy while it was measured
    (`load["busy_before"]` / `load["busy_after"]`), else none."""
    if not (load["busy_before"] or load["busy_after"]):
        return []
    return [
        "",
        "**The machine was shared while measuring: re-run on a quiet machine "
        "before quoting these numbers.**",
    ]


def _busy(busy):
    if not busy:
        return "none"
    return "; ".join(f"{share:.0%} `{command[:60]}`" for share, command in busy[:6])


def training_section(results):
    out = [
        "## Training step",
        "",
        "One step = forward, backward, SGD update, mean cross-entropy over all B x T tokens, "
        "tied embedding/projection. Seconds per step: median (min–max) over "
        f"{results['rounds']} interleaved rounds after {results['warmup']} warm-up steps "
        "per system; the ratio column is ours / this system per round (median, min–max): "
        "below 1 means ours is faster.",
    ]
    for entry in results["training"]:
        times = entry["times"]
        out += ["", f"### {entry['cell'].upper()} — {entry['setup'].label()}", ""]
        rows = []
        for name, samples in times.items():
            ours = name == "ours" or "ours" not in times
            ratio = None if ours else ratio_per_round(times["ours"], samples)
            rounds = (
                "" if ours else " ".join(f"{a / b:.2f}" for a, b in zip(times["ours"], samples))
            )
            rows.append(
                (
                    f"`{name}`",
                    entry["descriptions"][name],
                    _stat_ms(summary(samples)),
                    "—" if ratio is None else _ratio(ratio),
                    rounds,
                )
            )
        for name, why in entry["missing"].items():
            rows.append((f"`{name}`", entry["descriptions"].get(name, ""), why, "—", ""))
        out.append(_table(("system", "what", "ms per step", "ours / this", "per round"), rows))
    return "\n".join(out)


def backend_training_section(results):
    entries = results.get("backend_training") or []
    out = []
    for entry in entries:
        backend, setup = entry["backend"], entry["setup"]
        out += [f"## Training step on the {backend.upper()} backend", ""]
        if "failed" in entry:
            out += [f"Failed:\n\n```\n{entry['failed']}\n```", ""]
            continue
        versions = ", ".join(f"{k} {v}" for k, v in entry["versions"].items())
        out += [
            f"{setup.label()}; {versions}. Each system is a `keras.Model` with Keras's "
            'default `compile()` (`jit_compile="auto"`: XLA on JAX; our layers train on '
            "the fused path, `jax.lax.scan` loops with a `jax.custom_vjp` gradient), timed by "
            "`train_on_batch` in one subprocess "
            "(`benchmarks/backend_training.py`), interleaved rounds.",
            "",
        ]
        for cell, times in entry["times"].items():
            rows = []
            for name, samples in times.items():
                ratio = _ratio(ratio_per_round(times["ours"], samples)) if name != "ours" else "1"
                rows.append(
                    (
                        f"`{name}`",
                        entry["descriptions"][name][cell],
                        _stat_ms(summary(samples)),
                        ratio,
                    )
                )
            out += [
                f"### {cell.upper()} — {backend}",
                "",
                _table(("system", "what", "ms per step", "ours / this"), rows),
                "",
            ]
            out += _recurrent_bound_lines(entry, cell)
    return "\n".join(out).rstrip()


def _budget(times, other, limit):
    """Stat over rounds of limit x other - floor: what the target leaves the recurrent layers."""
    return summary([limit * o - f for o, f in zip(times[other], times["floor"])])


def _gemm(row):
    """A `benchmarks.recurrent_gemms` row's product with its operands' shapes, e.g.
    "(700, 650).T @ (700, 2600)"."""
    return row["form"].replace("a", str(tuple(row["lhs"]))).replace("b", str(tuple(row["rhs"])))


def _recurrent_bound_lines(entry, cell):
    """The budget each target leaves the recurrent layers beside their matmuls' GEMM time."""
    times, gemms = entry["times"][cell], entry.get("recurrent_gemms", {}).get(cell)
    if "floor" not in times or gemms is None:
        return []
    budgets = "; ".join(
        f"{limit:.2f} x `{other}` − `floor` = {_ms(_budget(times, other, limit).median)} ms"
        for other, limit in BACKEND_TRAIN_TARGETS
    )
    ours = summary([a - f for a, f in zip(times["ours"], times["floor"])]).median
    shapes = "; ".join(
        f"{g['what']} `{_gemm(g)}` {g['calls']} × {g['seconds'] * 1e3:.2f} ms "
        f"({g['gflops']:.0f} GFLOP/s)"
        for g in gemms["gemms"]
    )
    return [
        f"Left for the {entry['setup'].layers} recurrent layers per step (per round, "
        f"median): {budgets}; `ours` − `floor` = {_ms(ours)} ms. Their matmuls alone take "
        f"{_ms(gemms['seconds'])} ms: XLA's time for each GEMM (best of a few jit-compiled "
        "calls; a per-step GEMM in a `lax.scan` of T; `benchmarks/recurrent_gemms.py`) "
        f"times its calls per step: {shapes}.",
        "",
    ]


def backend_training_targets(entry):
    """[(target, measured, met)] for one backend's training comparison."""
    if "failed" in entry:
        return [(f"{entry['backend']}: training step", "failed", "**no**")]
    rows = []
    for cell, times in entry["times"].items():
        for other, limit in BACKEND_TRAIN_TARGETS:
            ratio = ratio_per_round(times["ours"], times[other])
            measured = _ratio(ratio)
            gemms = entry.get("recurrent_gemms", {}).get(cell)
            if gemms and "floor" in times:
                budget = _budget(times, other, limit).median
                if gemms["seconds"] > budget:
                    measured += (
                        f"; bounded: the recurrent layers' matmuls alone take "
                        f"{_ms(gemms['seconds'])} ms > budget {_ms(budget)} ms "
                        f"({limit:.2f} x {other} − floor)"
                    )
            rows.append(
                (
                    f"{entry['backend']} U={entry['setup'].units} {cell.upper()}: "
                    f"ours (dropout) / {other} <= {limit:.2f}",
                    measured,
                    "yes" if ratio.median <= limit else "**no**",
                )
            )
    return rows


def inference_section(results):
    out = [
        "## Inference",
        "",
        "onnxruntime CPU provider with default threads; thread spinning off for scoring "
        "and on for generation (see `inference.session_options`); Keras is our "
        "LanguageModel.call_with_states "
        'under one tf.function. `keras-export` is `model.export(format="onnx")` of the same '
        "weights in Keras's built-in layers. Scoring: one call on (B, T) tokens from zero "
        "states. Generation: batch 1, one call per token with the state carried, greedy "
        "(argmax). Seconds: median (min–max) over interleaved rounds; `ours-fp32 / this` is "
        "the per-round time ratio (above 1: this system is faster than ours-fp32). The "
        "bandwidth bound is bandwidth / bytes of weights read per token (every initializer "
        "once; an embedding read only by Gather counts one row).",
    ]
    for entry in results["inference"]:
        res = entry["results"]
        out += [
            "",
            f"### {entry['cell'].upper()} — V={entry['setup'].vocab}, "
            f"E=U={entry['setup'].units}, {entry['setup'].layers} layers",
            "",
        ]
        rows = []
        for task, data in res["tasks"].items():
            for name, row in data["systems"].items():
                bound = (
                    f"{row['bound_tokens_per_s']:,.0f} tok/s, {row['bound_fraction']:.0%}"
                    if "bound_fraction" in row
                    else ""
                )
                rows.append(
                    (
                        task,
                        f"`{name}`",
                        _stat_ms(row["seconds"]),
                        f"{row['tokens_per_s']:,.0f}",
                        "—" if name == "ours-fp32" else _ratio(row["ours_fp32_ratio"]),
                        bound,
                    )
                )
        out.append(
            _table(
                (
                    "task",
                    "system",
                    "ms per call",
                    "tokens/s",
                    "ours-fp32 / this",
                    "bandwidth bound, fraction",
                ),
                rows,
            )
        )
        ops = res["ops"]
        out += [
            "",
            "Weights read per generated token: "
            + ", ".join(f"`{k}` {_bytes(v)}" for k, v in res["weight_bytes"].items())
            + ".",
            "Graph ops: "
            + "; ".join(
                f"`{name}`: " + ", ".join(f"{op}×{n}" for op, n in sorted(counts.items()))
                for name, counts in ops.items()
            )
            + ".",
            f"Perplexity on {res['eval_tokens']:,} held-out Shakespeare tokens after "
            f"{entry['setup'].train_steps} Adam steps (last training loss "
            f"{res['train_loss']:.2f}): "
            + ", ".join(f"`{k}` {v:.3f}" for k, v in res["perplexity"].items())
            + ".",
            f"Compute floor of scoring (FLOPs of the matmuls / onnxruntime's MatMul rate "
            f"measured here, {res['matmul_rate'] / 1e9:.0f} GFLOP/s): "
            + ", ".join(
                f"{task} {data['flops'] / 1e9:.2f} GFLOP, {_ms(data['floor_seconds'])} ms"
                for task, data in res["tasks"].items()
                if "flops" in data
            )
            + ".",
            f"Export check: to_onnx max |onnxruntime - Keras| {res['export_max_abs_diff']:.1e}, "
            f"int8 {res['int8_max_abs_diff']:.1e}. Greedy 20-token continuations equal to "
            "ours-fp32's: "
            + ", ".join(f"`{k}` {'yes' if v else 'no'}" for k, v in res["generated_agree"].items())
            + ".",
        ]
    return "\n".join(out)


def memory_section(results):
    rows = [
        (what, "failed: " + note if mib is None else f"{mib:,.0f}", detail)
        for what, mib, note, detail in results["memory"]
    ]
    return "\n".join(
        [
            "## Peak resident memory",
            "",
            "Each row is one subprocess (`python -m benchmarks.memory ...`); the peak "
            "RSS is that child's own high-water mark (`VmHWM`; see "
            "benchmarks/memory.py for why not `ru_maxrss`).",
            "",
            _table(("measurement", "peak RSS (MiB)", "what ran"), rows),
        ]
    )


def targets_section(results):
    rows = []
    for entry in results["training"]:
        rows += training_targets(entry)
    for entry in results.get("backend_training") or []:
        rows += backend_training_targets(entry)
    for entry in results["inference"]:
        rows += inference_targets(entry)
    return "\n".join(["## Targets", "", _table(("target", "measured", "met"), rows)])


def markdown(results):
    """The whole BENCHMARKS.md text."""
    sections = [
        "# keras-gated benchmarks",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by\n\n"
        f"    {results['command']}\n\n"
        f"({results['mode']} mode; wall time {results['wall_seconds'] / 60:.1f} min). "
        "Benchmarks, not tests: nothing here is asserted anywhere.",
        machine_section(results),
        targets_section(results),
        training_section(results),
        backend_training_section(results),
        inference_section(results),
        memory_section(results),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def emit(text, out=None):
    """Prints a rendered section, and writes it to `out` too when given."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)
