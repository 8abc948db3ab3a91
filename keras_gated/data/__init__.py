"""Corpora, tokenizers and BPTT batching for language models.

Typical use::

    corpus = load_corpus("shakespeare")
    tokenizer = WordTokenizer(max_vocab=10_000).fit(doc.text for doc in corpus.train)
    train = bptt_batches(tokenizer.encode(corpus.text("train")), batch_size=20, seq_len=35)
"""

from keras_gated.data.batching import bptt_batches, num_batches
from keras_gated.data.corpus import Corpus, Document, load_corpus, read_text
from keras_gated.data.tokenizers import (
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_config,
    tokenizer_to_config,
)
from keras_gated.data.vocabulary import Vocabulary

__all__ = [
    "CharTokenizer",
    "Corpus",
    "Document",
    "Tokenizer",
    "Vocabulary",
    "WordTokenizer",
    "bptt_batches",
    "load_corpus",
    "load_tokenizer",
    "num_batches",
    "read_text",
    "tokenizer_from_config",
    "tokenizer_to_config",
]
