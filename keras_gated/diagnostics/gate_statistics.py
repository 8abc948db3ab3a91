"""What the gates do on a text: per-token activations and how saturated they are.

A gate in [0, 1] near 0 closes (a forget gate near 0 erases the cell, an update gate z near 0
replaces h by the candidate), near 1 opens. `gate_saturation` counts the fraction of
activations below `low` and above `high`: a gate that is mostly saturated acts as a switch,
and its gradient sigma'(a) = s (1 - s) is small there.
"""

import numpy as np

from keras_gated.diagnostics.gradient_flow import unrolled_logits

SHOWN_GATES = ("f", "i", "o", "z", "r")  # LSTM forget, input, output; GRU update, reset
SATURATION_LOW = 0.1
SATURATION_HIGH = 0.9


def gate_activity(model, tokens):
    """Gate activations of every gated recurrent layer of a language model, at inference.

    Args:
        model: a `LanguageModel`.
        tokens: (B, T) int.

    Returns:
        dict layer name -> dict gate name -> (B, T, U) array, gates in `SHOWN_GATES` order.
        Layers without gates (SimpleRNN) or without `gate_activations` are left out.
    """
    _, layers = unrolled_logits(model, np.asarray(tokens, dtype="int32"))
    activity = {}
    for layer in model.rnn_layers:
        if not hasattr(layer, "gate_activations"):
            continue
        values = layer.gate_activations(layers[layer.name][0])
        gates = {g: values[g] for g in SHOWN_GATES if g in values}
        if gates:
            activity[layer.name] = gates
    return activity


def gate_saturation(activity, low=SATURATION_LOW, high=SATURATION_HIGH):
    """Fractions of saturated activations per layer and gate.

    Args:
        activity: as returned by `gate_activity`.

    Returns:
        dict layer -> gate -> {"below": fraction < low, "above": fraction > high,
        "mean": mean activation, "low": low, "high": high}.
    """
    return {
        layer: {
            gate: {
                "below": float(np.mean(v < low)),
                "above": float(np.mean(v > high)),
                "mean": float(np.mean(v)),
                "low": low,
                "high": high,
            }
            for gate, v in gates.items()
        }
        for layer, gates in activity.items()
    }
