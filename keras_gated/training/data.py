"""Data preparation for a run: the corpus, its fingerprint, token ids and the batch size.

A run records a fingerprint of the corpus it was trained on: per document of each split its
name, size in characters and SHA-256. Resuming or evaluating on a corpus whose fingerprint
differs is refused with what changed, since the saved vocabulary's ids would no longer mean
what the model learned.

A split must hold at least one sequence, `seq_len + 1` tokens. A split smaller than
`batch_size` such sequences trains and evaluates with fewer parallel streams (a notice says so).
"""

import hashlib
import sys

from keras_gated.data import CharTokenizer, WordTokenizer, load_corpus
from keras_gated.data.corpus import SPLIT_NAMES


def corpus_fingerprint(corpus):
    """{"source", "documents": [[split, name, characters, sha256], ...]} of a `Corpus`."""
    documents = [
        [split, doc.name, len(doc.text), hashlib.sha256(doc.text.encode("utf-8")).hexdigest()]
        for split in SPLIT_NAMES
        for doc in getattr(corpus, split)
    ]
    return {"source": corpus.source, "documents": documents}


def fingerprint_changes(saved, now):
    """A sentence saying how corpus fingerprint `now` differs from `saved`; "" if it does not."""
    if saved is None or saved == now:
        return ""
    before = {name: (split, chars, digest) for split, name, chars, digest in saved["documents"]}
    after = {name: (split, chars, digest) for split, name, chars, digest in now["documents"]}
    changes = [f"{name} is gone" for name in sorted(before.keys() - after.keys())]
    changes += [f"{name} is new" for name in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        (s0, c0, d0), (s1, c1, d1) = before[name], after[name]
        if c0 != c1:
            changes.append(f"{name} has {c1:,} characters, was {c0:,}")
        elif d0 != d1:
            changes.append(f"{name} has the same size but other text")
        if s0 != s1:
            changes.append(f"{name} moved from {s0} to {s1}")
    if saved["source"] != now["source"]:
        changes.insert(0, f"the source is {now['source']!r}, was {saved['source']!r}")
    shown = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
    return shown


def new_tokenizer(config):
    """The unfitted tokenizer `config.level` names."""
    if config.level == "char":
        return CharTokenizer()
    return WordTokenizer(max_vocab=config.max_vocab)


def load_split_ids(config, tokenizer=None, fingerprint=None, verbose=False):
    """Reads `config.corpus` and encodes its splits.

    Args:
        tokenizer: the run's saved tokenizer; None fits a new one on the training split.
        fingerprint: the run's recorded corpus fingerprint; None skips the check.

    Returns:
        (tokenizer, {split: (N,) int32 ids}, the corpus fingerprint).

    Raises:
        ValueError: the corpus differs from `fingerprint` (the message says how).
    """
    corpus = load_corpus(config.corpus, seed=config.seed, verbose=verbose)
    now = corpus_fingerprint(corpus)
    changes = fingerprint_changes(fingerprint, now)
    if changes:
        raise ValueError(
            f"the corpus {config.corpus!r} changed since this run was trained "
            f"({changes}): its token ids no longer match the model; restore it, "
            "or train a new run"
        )
    if tokenizer is None:
        tokenizer = new_tokenizer(config).fit(corpus.text("train"))
    ids = {split: tokenizer.encode(corpus.text(split)) for split in SPLIT_NAMES}
    return tokenizer, ids, now


def fitting_batch_size(ids, batch_size, seq_len, splits=SPLIT_NAMES, verbose=True):
    """The most streams, up to `batch_size`, each holding a sequence of every split.

    Args:
        ids: {split: (N,) ids}.

    Raises:
        ValueError: a split holds fewer than `seq_len + 1` tokens; says how much text it needs.
    """
    need = seq_len + 1
    for split in splits:
        if len(ids[split]) < need:
            raise ValueError(
                f"the {split} split has {len(ids[split])} tokens, but one sequence needs "
                f"seq_len + 1 = {need}: give each split at least {need} tokens (the corpus "
                f"about {need * 10:,} tokens, as validation and test get 10% each), or a "
                "smaller --seq-len"
            )
    fits = min(batch_size, *(len(ids[split]) // need for split in splits))
    if fits < batch_size and verbose:
        smallest = min(splits, key=lambda split: len(ids[split]))
        print(
            f"notice: the {smallest} split has {len(ids[smallest])} tokens, fewer than "
            f"batch_size x (seq_len + 1) = {batch_size * need}; using batch_size {fits}",
            file=sys.stderr,
        )
    return fits
