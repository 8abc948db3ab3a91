"""Where an onnxruntime session's time goes, from onnxruntime's own profiler: per call, the
time inside the recurrent nodes (`RECURRENT_OPS`) and inside every other node.

    session = ort.InferenceSession(path, options)   # options.enable_profiling = True
    split = node_split(session, lambda: session.run(None, feeds), calls=15, warmup=3)
    split.recurrent.median                           # seconds per call in LSTM/GRU/RNN nodes

The profile is onnxruntime's JSON list of trace events: one `model_run` event (category
"Session") per call, and one `<node>_kernel_time` event (category "Node", `args.op_name` the
operator) per node run inside it; `ts` and `dur` in microseconds.
"""

import bisect
import dataclasses
import json
import os

from benchmarks.timing import Stat, summary

RECURRENT_OPS = ("LSTM", "GRU", "RNN")


@dataclasses.dataclass(frozen=True)
class NodeSplit:
    """Per call (Stat over the profiled calls), in seconds unless stated."""

    recurrent: Stat  # inside RECURRENT_OPS nodes
    other: Stat  # inside every other node
    run: Stat  # the whole call (`model_run`: nodes, feeds, fetches, profiler)
    node_share: Stat  # recurrent / (recurrent + other), a fraction
    call_share: Stat  # recurrent / run, a fraction


def per_call(events):
    """[(recurrent, other, run) seconds, ...] one per `model_run` of the profile `events`, in
    call order."""
    runs = sorted(
        (e["ts"], e["dur"])
        for e in events
        if e.get("cat") == "Session" and e["name"] == "model_run"
    )
    starts = [ts for ts, _ in runs]
    recurrent, other = [0] * len(runs), [0] * len(runs)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        call = bisect.bisect_right(starts, event["ts"]) - 1
        if call < 0 or event["ts"] > sum(runs[call]):
            raise ValueError(f"node event outside any model_run: {event['name']}")
        if event["args"]["op_name"] in RECURRENT_OPS:
            recurrent[call] += event["dur"]
        else:
            other[call] += event["dur"]
    return [(r * 1e-6, o * 1e-6, dur * 1e-6) for r, o, (_, dur) in zip(recurrent, other, runs)]


def node_split(session, run, calls, warmup):
    """Calls `run()` `warmup` + `calls` times on a `session` created with profiling on, ends
    its profiling, reads and removes the profile file; returns the NodeSplit of the last
    `calls` (the warm-up calls skipped)."""
    for _ in range(warmup + calls):
        run()
    path = session.end_profiling()
    try:
        with open(path) as file:
            profiled = per_call(json.load(file))[warmup:]
    finally:
        os.remove(path)
    if len(profiled) != calls:
        raise ValueError(
            f"profile has {len(profiled) + warmup} model_run events, expected {warmup + calls}"
        )
    return NodeSplit(
        recurrent=summary([r for r, _, _ in profiled]),
        other=summary([o for _, o, _ in profiled]),
        run=summary([dur for _, _, dur in profiled]),
        node_share=summary([r / (r + o) for r, o, _ in profiled]),
        call_share=summary([r / dur for r, _, dur in profiled]),
    )
