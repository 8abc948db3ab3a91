"""Tokenizers on random Unicode, and vocab.json files with hostile content.

Each round trip tested is one the module docstring of `keras_gated.data.tokenizers` states;
everything else must simply not crash. Text is surrogate-free (a corpus is read as UTF-8).
"""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_gated.data.tokenizers import (
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    load_tokenizer,
    tokenizer_to_config,
)
from keras_gated.data.vocabulary import UNK
from tests.fuzz.conftest import tiers

# The characters that break text handling: line ends of every kind, a BOM, controls, joiners,
# combining marks, right-to-left text, a character outside the BMP, and the literal "<unk>".
AWKWARD = [
    "\r\n",
    "\r",
    "\n",
    "\n\n",
    "\ufeff",
    "\x00",
    "\x1b",
    "\x85",
    "\u2028",
    "\t",
    "\u200d",
    "\u0301",
    "İ",
    "ß",
    "ﬁ",
    "שָׁלוֹם",
    "مرحبا",
    "日本語",
    "😀",
    "\U0001f3f3\ufe0f",
    " ",
    "  ",
    "<unk>",
    "<UNK>",
    "<eol>",
    "'",
    "’",
    "don't",
    "'tis",
    "th'",
    '"',
    "--",
    ",",
    "(",
    ")",
    "&c.",
    "…",
]
TEXT = st.lists(
    st.sampled_from(AWKWARD) | st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    max_size=12,
).map("".join)
LONG_LINE = st.integers(1000, 20_000).map(lambda n: ("abc, déf " * n)[:n])
ANY_TEXT = TEXT | LONG_LINE
# Text of words (letters and digits that stay so when lowercased) and whitespace only.
WORD_CHARS = st.characters(categories=["L", "N"]).filter(lambda c: c.lower().isalnum())
WORDISH = st.lists(
    st.text(WORD_CHARS, min_size=1, max_size=6)
    | st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n ", "\x1f", "\u2028"]),
    max_size=15,
).map("".join)
WORD_OPTIONS = st.fixed_dictionaries(
    {
        "lowercase": st.booleans(),
        "punctuation": st.booleans(),
        "eol_token": st.sampled_from(["<eol>", None, "</s>"]),
    }
)


def no_whitespace(text):
    return "".join(text.split())


@pytest.mark.parametrize("budget", tiers(60, 3000))
def test_char_round_trip_is_exact_over_the_fitted_characters(budget):
    @budget
    @given(fit=ANY_TEXT, text=ANY_TEXT)
    def check(fit, text):
        tokenizer = CharTokenizer().fit(fit)
        ids = tokenizer.encode(text)
        assert ids.shape == (len(text),) and ids.dtype == np.int32
        if set(text) <= set(fit):
            assert tokenizer.decode(ids) == text
        # A character outside the vocabulary decodes as "<unk>" (id 0); the rest exactly.
        assert tokenizer.decode(ids) == "".join(c if c in fit else UNK for c in text)

    check()


@pytest.mark.parametrize("budget", tiers(60, 3000))
def test_word_round_trip_changes_only_case_and_whitespace(budget):
    @budget
    @given(text=ANY_TEXT, options=WORD_OPTIONS)
    def check(text, options):
        tokenizer = WordTokenizer(**options)
        round_trip = tokenizer.detokenize(tokenizer.tokenize(text))
        want = text.lower() if options["lowercase"] else text
        if options["punctuation"]:  # every visible character kept, in order
            assert no_whitespace(round_trip) == no_whitespace(want)
        else:
            assert set(no_whitespace(round_trip)) <= set(no_whitespace(want))
        newlines = want.count("\n") if options["eol_token"] else 0
        assert round_trip.count("\n") == newlines

    check()


@pytest.mark.parametrize("budget", tiers(60, 3000))
def test_word_round_trip_of_words_is_the_normalised_text(budget):
    @budget
    @given(text=WORDISH)
    def check(text):
        tokenizer = WordTokenizer()
        lines = text.lower().split("\n")  # each line's whitespace runs one space, ends stripped
        assert tokenizer.detokenize(tokenizer.tokenize(text)) == "\n".join(
            " ".join(line.split()) for line in lines
        )

    check()


@pytest.mark.parametrize("budget", tiers(60, 2000))
def test_word_encoding_is_stable(budget):
    @budget
    @given(
        fit=ANY_TEXT, text=ANY_TEXT, options=WORD_OPTIONS, max_vocab=st.none() | st.integers(2, 8)
    )
    def check(fit, text, options, max_vocab):
        tokenizer = WordTokenizer(max_vocab=max_vocab, **options).fit(fit)
        ids = tokenizer.encode(text)
        assert ids.dtype == np.int32 and ((ids >= 0) & (ids < tokenizer.vocab_size)).all()
        np.testing.assert_array_equal(tokenizer.encode(tokenizer.decode(ids)), ids)

    check()


@pytest.mark.parametrize("budget", tiers(60, 2000))
def test_decode_after_a_prompt_continues_its_text(budget):
    @budget
    @given(fit=ANY_TEXT, data=st.data(), word=st.booleans())
    def check(fit, data, word):
        tokenizer = (WordTokenizer() if word else CharTokenizer()).fit(fit)
        ids = st.lists(st.integers(0, tokenizer.vocab_size - 1), max_size=10)
        before, new = data.draw(ids), data.draw(ids)
        assert tokenizer.decode(before) + tokenizer.decode(new, after=before) == tokenizer.decode(
            before + new
        )

    check()


@pytest.mark.parametrize("budget", tiers(25, 1000))
def test_save_and_load_keep_any_fitted_tokenizer(budget, tmp_path):
    @budget
    @given(fit=ANY_TEXT, text=ANY_TEXT, options=WORD_OPTIONS, word=st.booleans())
    def check(fit, text, options, word):
        tokenizer = (WordTokenizer(**options) if word else CharTokenizer()).fit(fit)
        tokenizer.save(tmp_path / "vocab.json")
        loaded = Tokenizer.load(tmp_path / "vocab.json")
        assert type(loaded) is type(tokenizer)
        assert loaded.get_config() == tokenizer.get_config()
        np.testing.assert_array_equal(loaded.encode(text), tokenizer.encode(text))

    check()


# -- hostile vocab.json ---------------------------------------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from([UNK, "<eol>", "", "ab", 10**30, -1])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = [
    "format",
    "version",
    "class_name",
    "config",
    "vocabulary",
    "lowercase",
    "punctuation",
    "eol_token",
    "max_vocab",
    "min_freq",
]


def good_config(word):
    tokenizer = WordTokenizer() if word else CharTokenizer()
    return tokenizer_to_config(tokenizer.fit("to be, or not to be\n"))


@st.composite
def hostile_files(draw):
    """The bytes of a vocab.json: a good one with one field removed or replaced, or junk."""
    config = good_config(draw(st.booleans()))
    key = draw(st.sampled_from(FIELDS))
    where = config if key in config else config["config"]
    kind = draw(st.sampled_from(["replace", "remove", "vocabulary item", "raw"]))
    if kind == "replace":
        where[key] = draw(JSON)
    elif kind == "remove":
        where.pop(key, None)
    elif kind == "vocabulary item":
        vocabulary = config["config"]["vocabulary"]
        vocabulary[draw(st.integers(0, len(vocabulary) - 1))] = draw(JSON)
    else:
        return draw(
            st.sampled_from(
                [
                    b"",
                    b"\xff\xfe\x00{",
                    b"{",
                    b"null",
                    b"[]",
                    b'"text"',
                    b"NaN",
                    b"1" * 5000,
                    b"[" * 100_000 + b"]" * 100_000,  # nested past Python's recursion limit
                    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
                ]
            )
            | st.binary(max_size=40)
        )
    return json.dumps(config, ensure_ascii=draw(st.booleans())).encode()


@pytest.mark.parametrize("budget", tiers(80, 4000))
def test_a_hostile_vocab_file_is_refused_with_its_name_or_loads_a_working_tokenizer(
    budget, tmp_path
):
    path = tmp_path / "vocab.json"

    @budget
    @given(content=hostile_files(), text=ANY_TEXT)
    def check(content, text):
        path.write_bytes(content)
        try:
            tokenizer = load_tokenizer(path)
        except ValueError as error:
            assert str(error).startswith(f"{path}: "), error
            assert path.read_bytes() == content  # loading never rewrites the file
            return
        # What loads is a tokenizer one can use (or, unfitted, one that says to fit it).
        try:
            ids = tokenizer.encode(text)
        except RuntimeError as error:
            assert "no vocabulary yet" in str(error)
            return
        assert ((ids >= 0) & (ids < tokenizer.vocab_size)).all()
        assert isinstance(tokenizer.decode(ids), str)

    check()


def test_a_byte_order_mark_before_the_json_is_read(tmp_path):
    tokenizer = WordTokenizer().fit("a b c")
    tokenizer.save(tmp_path / "vocab.json")
    text = (tmp_path / "vocab.json").read_text(encoding="utf-8")
    (tmp_path / "vocab.json").write_text("\ufeff" + text, encoding="utf-8")  # as Notepad saves
    assert load_tokenizer(tmp_path / "vocab.json").get_config() == tokenizer.get_config()


@pytest.mark.parametrize(
    "arguments,needle",
    [
        ({"eol_token": 5}, "eol_token must be a non-empty string"),
        ({"eol_token": ["<eol>"]}, "eol_token must be a non-empty string"),
        ({"max_vocab": "10"}, "max_vocab must be an integer"),
        ({"max_vocab": 1e999}, "max_vocab must be an integer"),
        ({"min_freq": float("nan")}, "min_freq must be an integer"),
        ({"eol_token": "¶"}, "is a token of text"),  # "a¶b" would decode as "a\nb"
        ({"eol_token": "eol"}, "is a token of text"),
    ],
)
def test_word_tokenizer_arguments_of_the_wrong_type_are_named(arguments, needle):
    with pytest.raises(ValueError, match=needle):
        WordTokenizer(**arguments)
