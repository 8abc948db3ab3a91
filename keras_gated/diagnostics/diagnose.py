"""Diagnostics of a trained run directory (`keras-gated diagnose runs/NAME`).

Writes into `out`:
    gradient_flow.png/.csv     ||dL/ds_t|| per layer, trained model and a random-init twin,
                               on the first BPTT batch of the validation text
    gates_<layer>.png          gate heat maps over a sentence (LSTM f, i, o; GRU z, r)
    gate_saturation.png/.csv   fraction of gate activations < 0.1 and > 0.9 on that sentence
    training_curves.png/.csv   loss, perplexity and (with grad_norm.csv) the gradient norm
    summary.json               the headline numbers
"""

import os

import keras
import numpy as np

from keras_gated.atomic import write_json
from keras_gated.data import bptt_batches, load_corpus
from keras_gated.diagnostics import plots, tables
from keras_gated.diagnostics.curves import read_grad_norms, read_training_log
from keras_gated.diagnostics.demo import _advance, _stage
from keras_gated.diagnostics.gate_statistics import gate_activity, gate_saturation
from keras_gated.diagnostics.gradient_flow import model_gradient_norms
from keras_gated.training import load_run

RUN_STAGES = 5  # progress-bar steps of `diagnose_run`
VISIBLE = {" ": "\u2423", "\n": "\\n", "\t": "\\t"}  # how odd tokens appear on an axis


def validation_ids(config, tokenizer):
    """The run's validation text as ids, or None if its corpus cannot be read here."""
    try:
        corpus = load_corpus(config.corpus, seed=config.seed, verbose=False)
    except (OSError, ValueError, ImportError):
        return None
    return tokenizer.encode(corpus.text("valid"))


def gradient_batch(ids, batch_size, seq_len):
    """The first BPTT batch (inputs, targets), each (B, T), B <= batch_size so that it fits."""
    if ids is None or len(ids) < seq_len + 1:
        raise ValueError(
            f"need at least seq_len + 1 = {seq_len + 1} tokens of text for the "
            "gradient batch: the corpus is unreadable or too short; pass --text"
        )
    batch = max(1, min(batch_size, len(ids) // (seq_len + 1)))
    inputs, targets = next(iter(bptt_batches(ids, batch, seq_len)))
    return inputs.numpy(), targets.numpy()


def sentence_ids(ids, tokenizer, length):
    """`length` ids from the middle of `ids`, starting just after a line break if there is one."""
    start = len(ids) // 2
    newline = tokenizer.encode("\n")
    if len(newline) == 1 and newline[0] != 0:
        breaks = np.flatnonzero(ids[start:] == newline[0])
        if len(breaks) and start + breaks[0] + 1 + length <= len(ids):
            start += breaks[0] + 1
    start = max(0, min(start, len(ids) - length))
    return ids[start : start + length]


def token_labels(tokenizer, ids):
    vocabulary = tokenizer.vocabulary
    return [VISIBLE.get(t, t) for t in (vocabulary.id_to_token(int(i)) for i in ids)]


def random_twin(model, seed):
    """A freshly initialised, stateless model of the same configuration."""
    keras.utils.set_random_seed(seed)
    return model.stateless_twin(copy_weights=False)


def diagnose_run(
    run_dir, out=None, text=None, loss_at="all", batch_size=8, max_tokens=40, progress=None
):
    """Writes a run's diagnostics into `out` (default `run_dir/diagnostics`).

    Args:
        run_dir: a run directory written by `keras_gated.train`.
        text: the sentence for the gate pictures (and the gradient batch if the run's corpus
            cannot be read); default: `max_tokens` tokens of the validation text.
        loss_at: "all" or "last", see `model_gradient_norms`.
        batch_size: B of the gradient batch (T is the run's seq_len).
        max_tokens: tokens shown in the gate heat maps.
        progress: optional tqdm bar, advanced `RUN_STAGES` times.

    Returns:
        the list of files written.
    """
    out = out or os.path.join(run_dir, "diagnostics")
    os.makedirs(out, exist_ok=True)
    path = lambda name: os.path.join(out, name)  # noqa: E731
    written, summary = [], {"run": os.path.abspath(run_dir), "loss_at": loss_at}

    _stage(progress, "loading the run")
    model, tokenizer, config = load_run(run_dir)
    ids = validation_ids(config, tokenizer)
    text_ids = None if text is None else tokenizer.encode(text)
    _advance(progress)

    _stage(progress, "gradient flow")
    inputs, targets = gradient_batch(
        ids if ids is not None else text_ids, batch_size, config.seq_len
    )
    trained = model_gradient_norms(model, inputs, targets, loss_at)
    init = model_gradient_norms(random_twin(model, config.seed), inputs, targets, loss_at)
    rows = [
        {
            "layer": layer,
            "state": state,
            "t": t,
            "trained": float(n),
            "random_init": float(init[layer][state][t]),
        }
        for layer, states in trained.items()
        for state, norms in states.items()
        for t, n in enumerate(norms)
    ]
    tables.write_csv(path("gradient_flow.csv"), rows)
    written += [
        plots.plot_gradient_flow(trained, init, path("gradient_flow.png"), loss_at),
        path("gradient_flow.csv"),
    ]
    summary["gradient_batch"] = list(inputs.shape)
    summary["gradient_flow"] = {
        layer: {
            state: {
                "first_step": float(n[0]),
                "last_step": float(n[-1]),
                "random_init_first_step": float(init[layer][state][0]),
                "random_init_last_step": float(init[layer][state][-1]),
            }
            for state, n in states.items()
        }
        for layer, states in trained.items()
    }
    _advance(progress)

    _stage(progress, "gate activity")
    sentence = (
        text_ids[:max_tokens] if text_ids is not None else sentence_ids(ids, tokenizer, max_tokens)
    )
    labels = token_labels(tokenizer, sentence)
    summary["sentence"] = labels
    activity = gate_activity(model, sentence[None, :]) if len(sentence) else {}
    for layer, gates in activity.items():
        title = f"{layer}: gate activations over the sentence"
        written.append(
            plots.plot_gate_heatmaps(
                {g: v[0] for g, v in gates.items()}, labels, path(f"gates_{layer}.png"), title
            )
        )
    if activity:
        saturation = gate_saturation(activity)
        rows = [
            {"layer": layer, "gate": gate, **s}
            for layer, gates in saturation.items()
            for gate, s in gates.items()
        ]
        tables.write_csv(path("gate_saturation.csv"), rows)
        written += [
            plots.plot_saturation(saturation, path("gate_saturation.png")),
            path("gate_saturation.csv"),
        ]
        summary["gate_saturation"] = saturation
    else:
        summary["gate_saturation"] = f"no gated layers in a {config.cell!r} model"
    _advance(progress)

    _stage(progress, "training curves")
    if os.path.exists(os.path.join(run_dir, "log.csv")):
        log, grad_norms = read_training_log(run_dir), read_grad_norms(run_dir)
        written.append(
            plots.plot_training_curves(
                log, grad_norms, path("training_curves.png"), config.clipnorm
            )
        )
        tables.write_csv(path("training_curves.csv"), _curve_rows(log, grad_norms))
        written.append(path("training_curves.csv"))
        summary["grad_norm_logged"] = grad_norms is not None
    _advance(progress)

    _stage(progress, "summary")
    write_json(path("summary.json"), summary)
    written.append(path("summary.json"))
    _advance(progress)
    return written


def _curve_rows(log, grad_norms):
    norms = (
        {}
        if grad_norms is None
        else {
            int(e): (g, m)
            for e, g, m in zip(
                grad_norms["epoch"],
                grad_norms["grad_norm"],
                grad_norms.get("grad_norm_max", grad_norms["grad_norm"]),
            )
        }
    )
    rows = []
    for i, epoch in enumerate(log["epoch"]):
        row = {k: float(v[i]) for k, v in log.items() if k != "epoch"}
        g, m = norms.get(int(epoch), (np.nan, np.nan))
        rows.append({"epoch": int(epoch), **row, "grad_norm": float(g), "grad_norm_max": float(m)})
    return rows
