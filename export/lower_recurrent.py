"""Recurrent layer calls -> one native ONNX `LSTM`/`GRU`/`RNN` node each, masks included.

A unidirectional layer (ours or Keras's built-in) is one node with direction "forward" or
"reverse" (`go_backwards`); a `keras.layers.Bidirectional` is one node with direction
"bidirectional" when both directions fit one node (same op, units and GRU reset placement),
else one node per direction. The node runs in ONNX's default layout (X (T, B, D), states
(dirs, B, U)) between Transposes, so the graph around it stays batch-major:
x (B, T, D) -> y (B, T, U) or (B, U), states (B, U).

A mask (B, T) of any pattern is handled as `masking.py` explains, so outputs and states
equal Keras's: masked steps hold the state and repeat the previous output, or give zeros
with `zero_output_for_mask` (which `Bidirectional` sets for `return_sequences=True`).
Keras emits a `go_backwards` layer's outputs in processing order (time reversed) and
`Bidirectional` flips its backward outputs back; here each direction's outputs are first
built in input order, then flipped only for a lone `go_backwards` layer.
A layer-normalised LSTM or GRU has no native node: `scan.py` builds its explicit loop.

A layer over a `StackedRNNCells` (`keras.layers.RNN(StackedRNNCells([cell_1, ..., cell_K]))`)
is a chain of K nodes per direction, node k reading node k-1's output sequence (`run_stack`);
the first nodes of a `Bidirectional`'s two directions read the same x and share one node.
A mask is the same for every node of the chain, which reproduces Keras's masked stacked step
(all cells hold their states, the output repeats): node k's outputs at valid steps are cell
k's outputs there, and node k+1 reads only its valid steps (the compacted view, `masking.py`).
States come out per cell, in cell order, each cell's as Keras flattens them (h then c).
"""

import dataclasses

import numpy as np
from keras import tree

from . import masking
from .native import (
    NotNative,
    layer_cells,
    native_cell,
    node_attributes,
    repeats_state_when_masked,
    runs_as_scan,
    stacked_weights,
    state_kinds,
)


@dataclasses.dataclass
class Direction:
    """One direction of a recurrent call.

    Attributes:
        layer: the Keras recurrent layer (its options).
        reverse: process time backwards.
        initial: its initial states (B, U), in `kinds` order, or None for zeros.
        cell: the cell this node runs: the layer's cell, or one of a `StackedRNNCells`.
    """

    layer: object
    reverse: bool
    initial: list | None
    cell: object = None

    def __post_init__(self):
        if self.cell is None:
            self.cell = self.layer.cell


@dataclasses.dataclass
class Result:
    """One direction's results: `sequence` (B, T, U) in input order (None if not built),
    `last` (B, U) the output at the last processed step, `finals` [(B, U)] states."""

    sequence: str | None
    last: str
    finals: list
    compacted: str | None = None  # (T, B, U) the node's own outputs, if masked: see masking
    compacted_pair: str | None = None  # (T, B, 2U) both directions of one node, forward first


def run_directions(g, directions, x, mask, name, sequences):
    """Runs `directions` (1, or forward then reverse) over x (B, T, D) -> [Result].

    One node for all when they fit one, else one node each; a direction whose cell
    `runs_as_scan` runs as an explicit loop (`scan.py`).
    """
    sm = masking.step_mask(g, mask) if mask is not None else None
    if any(runs_as_scan(d.cell) for d in directions):
        from .scan import run_scan

        return [
            run_scan(g, d, x, sm, f"{name}/{'reverse' if d.reverse else 'forward'}", sequences)
            for d in directions
        ]
    cells = [native_cell(d.cell) for d in directions]
    try:
        attrs = node_attributes(cells)
    except NotNative:
        if len(directions) == 1:
            raise
        return [
            run_node(g, [d], [c], node_attributes([c]), x, sm, f"{name}/{k}", sequences)[0]
            for k, (d, c) in enumerate(zip(directions, cells))
        ]
    return run_node(g, directions, cells, attrs, x, sm, name, sequences)


def run_node(g, directions, cells, attrs, x, sm, name, sequences):
    """One native node over `directions`; see `run_directions`."""
    op, kinds = cells[0].op, cells[0].kinds
    w = {
        key: g.initializer(f"{name}/{key}", value) for key, value in stacked_weights(cells).items()
    }
    if sm:
        X = masking.compacted(g, x, sm) or masking.compact(g, x, sm, f"{name}/compact")
    else:
        X = g.node("Transpose", [x], name=f"{name}/time_major", perm=[1, 0, 2])
    given = [d.initial is not None for d in directions]
    if any(given) and not all(given):
        raise NotNative("initial states given for one direction only")
    initial = {kind: "" for kind in kinds}
    if all(given):
        axis0 = g.ints("axes_0", [0])
        for k, kind in enumerate(kinds):
            parts = [
                g.node("Unsqueeze", [d.initial[k], axis0], name=f"{name}/initial_{kind}")
                for d in directions
            ]
            initial[kind] = (
                parts[0]
                if len(parts) == 1
                else g.node("Concat", parts, name=f"{name}/initial_{kind}", axis=0)
            )
    inputs = [X, w["W"], w["R"], w["B"], sm.lengths32 if sm else "", initial["h"]]
    if op == "LSTM":
        inputs += [initial["c"], w.get("P", "")]
    while inputs[-1] == "":
        inputs.pop()
    if len(directions) == 2:
        direction = "bidirectional"
    else:
        direction = "reverse" if directions[0].reverse else "forward"
    Y, *node_finals = g.node(
        op, inputs, outputs=1 + len(kinds), name=name, direction=direction, **attrs
    )
    per_final = [
        per_direction(g, final, 0, len(directions), f"{name}/final_{kind}")
        for kind, final in zip(kinds, node_finals)
    ]  # [kind][direction] (B, U)
    if sequences and not sm:
        per_y = per_direction(g, Y, 1, len(directions), f"{name}/Y")  # (T, B, U) each
    results = []
    for k, d in enumerate(directions):
        finals, sequence, last = [per_kind[k] for per_kind in per_final], None, None
        if sm:
            starts = d.initial or [None] * len(kinds)
            h0 = d.initial[0] if d.initial and repeats_state_when_masked(d.layer) else None
            hint = f"{name}/restore_{k}"
            if sequences:
                sequence = masking.restore(g, Y, k, len(directions), sm, d.reverse, hint, h0)
                if d.layer.zero_output_for_mask:
                    sequence = masking.zero_masked(g, sequence, sm, hint)
            last = masking.last_output(
                g, finals[0], sm, d.reverse, d.layer.zero_output_for_mask, hint, h0
            )
            finals = [
                masking.hold_empty_rows(g, final, start, sm, f"{name}/final_{kind}_{k}")
                for final, start, kind in zip(finals, starts, kinds)
            ]
        else:
            last = finals[0]
            if sequences:
                sequence = g.node(
                    "Transpose", [per_y[k]], name=f"{name}/batch_major_{k}", perm=[1, 0, 2]
                )
        results.append(Result(sequence, last, finals))
    if sm and sequences:
        views = per_direction(g, Y, 1, len(directions), f"{name}/Y_compacted")
        for result, view in zip(results, views):
            result.compacted = view
        if len(directions) == 2:  # Y (T, 2, B, U) -> (T, B, 2U): one copy, not Split + Concat
            pair = g.node("Transpose", [Y], name=f"{name}/Y_TB2U", perm=[0, 2, 1, 3])
            results[0].compacted_pair = g.node(
                "Reshape", [pair, g.ints("TB_2U", [0, 0, -1])], name=f"{name}/Y_pair"
            )
    return results


def per_direction(g, t, axis, count, name):
    """The `count` directions of a node output `t`, split on `axis`, which is removed."""
    axes = g.ints(f"axes_{axis}", [axis])
    if count == 1:
        return [g.node("Squeeze", [t, axes], name=name)]
    parts = g.node("Split", [t, g.ints("split", [1] * count)], outputs=count, name=name, axis=axis)
    return [g.node("Squeeze", [part, axes], name=f"{name}_{k}") for k, part in enumerate(parts)]


def flip_time(g, y, name):
    """y (B, T, ...) with time reversed."""
    return g.node(
        "Slice",
        [
            y,
            g.ints("starts", [-1]),
            g.ints("ends", [np.iinfo(np.int64).min]),
            g.ints("axes_1", [1]),
            g.ints("steps", [-1]),
        ],
        name=name,
    )


def run_stack(g, stacks, x, mask, name, sequences):
    """Runs 1 or 2 directions (forward then reverse) of a layer's cells over x (B, T, D).

    Args:
        stacks: [(layer, reverse, initial)] per direction; `initial` is the direction's initial
            states in Keras's structure (nested per cell for a `StackedRNNCells`) or None.
        sequences: whether the last cell's output sequence is needed.

    Returns:
        [(Result of the last cell, [final states (B, U) of every cell, flat in cell order])]
        per direction.
    """
    chains = [layer_cells(layer) for layer, _, _ in stacks]
    if len({len(cells) for cells in chains}) != 1:
        raise NotNative("the directions of a Bidirectional layer stack different numbers of cells")
    depth = len(chains[0])
    if (
        depth > 1
        and mask is not None
        and any(repeats_state_when_masked(layer) for layer, _, _ in stacks)
    ):
        raise NotNative(
            "Keras's JAX loop emits the first cell's state at masked steps of a "
            "StackedRNNCells, which no chain of nodes reproduces"
        )
    initials = [per_cell_states(initial, cells) for (_, _, initial), cells in zip(stacks, chains)]
    inputs = [x] * len(stacks)
    finals = [[] for _ in stacks]
    results = None
    for level in range(depth):
        last = level == depth - 1
        directions = [
            Direction(layer, reverse, initial[level], cells[level])
            for (layer, reverse, _), initial, cells in zip(stacks, initials, chains)
        ]
        level_name = name if depth == 1 else f"{name}/cell_{level}"
        wanted = sequences or not last
        if all(xk == inputs[0] for xk in inputs):  # one node for both directions, if they fit
            results = run_directions(g, directions, inputs[0], mask, level_name, wanted)
        else:
            results = [
                run_directions(g, [d], xk, mask, f"{level_name}/{k}", wanted)[0]
                for k, (d, xk) in enumerate(zip(directions, inputs))
            ]
        for k, result in enumerate(results):
            finals[k] += result.finals
            if not last:
                inputs[k] = result.sequence
                if mask is not None and result.compacted:  # the next node reads Y' directly
                    masking.note_compacted(
                        g, result.sequence, masking.step_mask(g, mask), result.compacted
                    )
    return list(zip(results, finals))


def per_cell_states(initial, cells):
    """A direction's initial states in Keras's structure -> [[(B, U) per state] or None per
    cell], split by each cell's state count."""
    if initial is None:
        return [None] * len(cells)
    flat = tree.flatten(initial)
    counts = [len(state_kinds(cell)) for cell in cells]
    if len(flat) != sum(counts):
        raise NotNative(f"{len(flat)} initial states for cells with {sum(counts)} states")
    starts = np.cumsum([0, *counts])
    return [flat[a:b] for a, b in zip(starts[:-1], starts[1:])]


def lower_rnn(g, layer, x, mask, initial_state):
    """A unidirectional recurrent layer call -> ([output, *final states], final states).

    Returns:
        (outputs as Keras's call returns them, flattened; the final states of every cell).
    """
    ((result, finals),) = run_stack(
        g,
        [(layer, bool(layer.go_backwards), initial_state)],
        x,
        mask,
        layer.name,
        layer.return_sequences,
    )
    output = result.last
    if layer.return_sequences:
        output = result.sequence
        if layer.go_backwards:  # Keras: processing order
            output = flip_time(g, output, f"{layer.name}/processing_order")
        elif result.compacted:
            masking.note_compacted(g, output, masking.step_mask(g, mask), result.compacted)
    outputs = [output, *finals] if layer.return_state else [output]
    return outputs, finals


MERGE_OPS = {"sum": "Add", "mul": "Mul", "ave": "Add"}


def lower_bidirectional(g, layer, x, mask, initial_state):
    """A `keras.layers.Bidirectional` call -> outputs as Keras's call returns them, flattened."""
    forward, backward = layer.forward_layer, layer.backward_layer
    if forward.go_backwards or not backward.go_backwards:
        raise NotNative("a forward layer with go_backwards=True")
    half = None if initial_state is None else len(initial_state) // 2  # as Keras splits them
    stacks = [
        (forward, False, None if half is None else initial_state[:half]),
        (backward, True, None if half is None else initial_state[half:]),
    ]
    sequences = layer.return_sequences
    (fw, fw_finals), (bw, bw_finals) = run_stack(g, stacks, x, mask, layer.name, sequences)
    y, y_rev = (fw.sequence, bw.sequence) if sequences else (fw.last, bw.last)
    mode = layer.merge_mode
    if mode is None:
        outputs = [y, y_rev]
    elif mode == "concat":
        outputs = [g.node("Concat", [y, y_rev], name=f"{layer.name}/concat", axis=-1)]
        if sequences and fw.compacted and bw.compacted:
            view = fw.compacted_pair or g.node(
                "Concat", [fw.compacted, bw.compacted], name=f"{layer.name}/compacted", axis=-1
            )
            masking.note_compacted(g, outputs[0], masking.step_mask(g, mask), view)
    else:
        merged = g.node(MERGE_OPS[mode], [y, y_rev], name=f"{layer.name}/{mode}")
        if mode == "ave":
            merged = g.node("Mul", [merged, g.initializer("half", 0.5)], name=f"{layer.name}/ave")
        outputs = [merged]
    if layer.return_state:
        outputs += fw_finals + bw_finals
    return outputs
