"""Exact validation and test perplexity of a run, on the corpus it was trained on."""

from keras_gated.training import run_dir
from keras_gated.training.data import fitting_batch_size, load_split_ids
from keras_gated.training.metrics import perplexity

EVAL_SPLITS = ("valid", "test")


def split_perplexities(model, ids, config, splits=EVAL_SPLITS):
    """{split: (perplexity, predicted tokens)} with up to `config.batch_size` streams each."""
    results = {}
    for split in splits:
        batch = fitting_batch_size(ids, config.batch_size, config.seq_len, (split,), verbose=False)
        results[split] = perplexity(model, ids[split], batch, config.seq_len)
    return results


def evaluate_run(run):
    """{split: (perplexity, predicted tokens)} of a run's best model, read with its own
    vocabulary; refuses a corpus that changed since training (see `training.data`)."""
    model, tokenizer, config = run_dir.load_run(run)
    _, fingerprint = run_dir.load_config(run)
    _, ids, _ = load_split_ids(config, tokenizer, fingerprint)
    return split_perplexities(model, ids, config)
