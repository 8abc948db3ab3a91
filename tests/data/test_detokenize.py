"""Detokenization: punctuation re-attached as the tokenizer split it; prompt + continuation."""

import re

import numpy as np
import pytest

from keras_gated.data import CharTokenizer, WordTokenizer, load_corpus

# Lines of the built-in corpus whose own spacing departs from the typographic convention
# (";they", "&c .", quotes inside quotes): about 0.26% of 187k lines.
IRREGULAR_LINES = 0.005


@pytest.mark.parametrize(
    "text,expected",
    [
        ("to be , or not to be", "to be, or not to be"),
        ("( and by opposing end them ) ?", "(and by opposing end them)?"),
        ('cry " havoc ! " and let slip', 'cry "havoc!" and let slip'),
        ("stock - fishes . - - but th ' austereness", "stock-fishes.--but th' austereness"),
        ("officers , & c . ]", "officers, &c.]"),
        ("'tis o'er", "'tis o'er"),
    ],
)
def test_punctuation_is_reattached(text, expected):
    tokenizer = WordTokenizer()
    assert tokenizer.detokenize(text.split(" ")) == expected
    assert tokenizer.tokenize(expected) == text.split(" ")


def test_built_in_corpus_round_trips_to_its_normalised_text():
    """detokenize(tokenize(t)) == t lowercased with one space per whitespace run, for all
    lines but the source's own irregularities, and loses no token anywhere."""
    corpus = load_corpus("shakespeare", verbose=False)
    text = "\n".join(corpus.text(split) for split in ("train", "valid", "test"))
    tokenizer = WordTokenizer()
    tokens = tokenizer.tokenize(text)
    lines = tokenizer.detokenize(tokens).split("\n")
    normalised = [" ".join(line.split()) for line in text.lower().split("\n")]
    assert len(lines) == len(normalised)
    differing = sum(a != b for a, b in zip(lines, normalised))
    assert differing < IRREGULAR_LINES * len(lines)
    assert tokenizer.tokenize("\n".join(lines)) == tokens


def test_continuation_carries_the_space_that_joins_it():
    tokenizer = WordTokenizer().fit("to be, or not to be: that is the question")
    prompt = tokenizer.encode("to be")
    assert tokenizer.decode(tokenizer.encode(", or not"), after=prompt) == ", or not"
    assert tokenizer.decode(tokenizer.encode("or not"), after=prompt) == " or not"
    assert tokenizer.decode([], after=prompt) == ""
    quote = WordTokenizer().fit('a "b" c')
    opened = quote.encode('a "')
    assert quote.decode(quote.encode('b " c'), after=opened) == 'b" c'  # the quote closes


@pytest.mark.parametrize("prompt,continuation", [("To b", "e, or"), ("x ", " y"), ("ab", "\nc")])
def test_characters_continue_the_prompt_exactly(prompt, continuation):
    tokenizer = CharTokenizer().fit(prompt + continuation)
    ids = tokenizer.encode(continuation)
    assert prompt + tokenizer.decode(ids, after=tokenizer.encode(prompt)) == prompt + continuation


def test_decode_after_equals_the_tail_of_decoding_both():
    rng = np.random.default_rng(0)
    tokenizer = WordTokenizer().fit('to be , or not " to " be ( that ) - is : the question .')
    for _ in range(50):
        ids = rng.integers(0, tokenizer.vocab_size, 12)
        whole = tokenizer.decode(ids)
        head = tokenizer.decode(ids[:5])
        assert head + tokenizer.decode(ids[5:], after=ids[:5]) == whole
        assert re.sub(r"\s", "", whole)  # never empty
