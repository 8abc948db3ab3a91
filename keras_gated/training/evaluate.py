"""Exact validation and test perplexity of a run, on the corpus it was trained on."""

import math

from keras_gated.training import run_dir
from keras_gated.training.data import fitting_batch_size, load_split_ids
from keras_gated.training.metrics import perplexity
from keras_gated.training.workers import sum_over_workers, workers

EVAL_SPLITS = ("valid", "test")


def split_perplexities(model, ids, config, splits=EVAL_SPLITS, strategy=None):
    """{split: (perplexity, predicted tokens)} with up to `config.batch_size` streams each.

    With a `strategy` of W workers, worker w scores rows [w B / W, (w+1) B / W) of the B
    streams and the totals are summed over the workers: every row is scored once.
    """
    w, n = workers(strategy)
    results = {}
    for split in splits:
        batch = fitting_batch_size(ids, config.batch_size, config.seq_len, (split,), verbose=False)
        first, last = w * batch // n, (w + 1) * batch // n
        length = len(ids[split]) // batch  # L, each row's tokens
        total = count = 0.0
        if last > first:
            value, count = perplexity(
                model, ids[split][first * length : last * length], last - first, config.seq_len
            )
            total = math.log(value) * count
        total, count = sum_over_workers(strategy, [total, count])
        results[split] = (math.exp(total / count), int(count))
    return results


def evaluate_run(run):
    """{split: (perplexity, predicted tokens)} of a run's best model, read with its own
    vocabulary; refuses a corpus that changed since training (see `training.data`)."""
    model, tokenizer, config = run_dir.load_run(run)
    _, fingerprint = run_dir.load_config(run)
    _, ids, _ = load_split_ids(config, tokenizer, fingerprint)
    return split_perplexities(model, ids, config)
