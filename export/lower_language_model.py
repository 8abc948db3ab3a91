"""A `keras_gated.LanguageModel` as a graph with the interface of `metadata.py`.

tokens (B, T) + states -> Gather -> one native node per recurrent layer -> MatMul -> logits
(B, T, V) + states; tied, the MatMul reads a Transpose of the Gather's own initializer.
Dropout layers vanish. Every state input is required (zeros start a sequence).
"""

import keras

from . import metadata as md
from .graph import FLOAT, INT64, GraphBuilder
from .lower_layers import lower_embedding, lower_reverse_embedding
from .lower_recurrent import lower_rnn
from .lowered import GraphInput, Lowered
from .native import has_scan_cell, state_kinds


def language_model_graph(model, opset):
    """tokens (B, T) + states -> logits (B, T, V) + states for a `LanguageModel`."""
    g = GraphBuilder("keras_gated_language_model")
    tokens = g.add_input(md.TOKENS, INT64, [md.BATCH, md.TIME])
    x, E = lower_embedding(g, model.embedding, tokens)  # embed_dropout: identity
    sizes, state_outputs = [], []
    for index, layer in enumerate(model.rnn_layers):  # each dropout after it: identity
        units = int(layer.cell.units)
        kinds = state_kinds(layer.cell)
        initial = [
            g.add_input(md.state_input_name(kind, index), FLOAT, [md.BATCH, units])
            for kind in kinds
        ]
        (x, *_), finals = lower_rnn(g, layer, x, None, initial)
        for kind, final in zip(kinds, finals):
            state_outputs.append(
                g.node("Identity", [final], outputs=[md.state_output_name(kind, index)])
            )
        sizes.append((layer.name, [units] * len(kinds)))
    logits = lower_reverse_embedding(g, model.embedding, x, E)
    states = md.state_specs(sizes)
    g.add_output(g.publish(logits, md.LOGITS), FLOAT, [md.BATCH, md.TIME, model.vocab_size])
    for spec in states:
        g.add_output(spec["output"], FLOAT, [md.BATCH, spec["size"]])
    names = [
        model.embedding.name,
        model.embed_weight_dropout_layer.name,
        model.embed_dropout_layer.name,
    ]
    names += [layer.name for pair in zip(model.rnn_layers, model.dropouts) for layer in pair]
    loops = [layer.name for layer in model.rnn_layers if has_scan_cell(layer)]
    inputs = [GraphInput(md.TOKENS, "int64", [md.BATCH, md.TIME], high=model.vocab_size)]
    return Lowered(
        g.model(opset),
        inputs,
        [md.LOGITS],
        model.vocab_size,
        states,
        [name for name in names if name not in loops],
        loops,
        [],
        language_model_reference(model, states),
    )


def language_model_reference(model, states):
    """`model.call_with_states` at inference; a stateful model runs as a non-stateful copy."""
    if model.stateful:
        model = model.stateless_twin()

    def reference(feeds):
        initial = [feeds[spec["input"]] for spec in states]
        logits, final = model.call_with_states(feeds[md.TOKENS], initial, training=False)
        to_numpy = keras.ops.convert_to_numpy
        got = {md.LOGITS: to_numpy(logits)}
        got.update({spec["output"]: to_numpy(s) for spec, s in zip(states, final)})
        return got

    return reference
