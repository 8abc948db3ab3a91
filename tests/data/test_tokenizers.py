"""Word and character tokenizers: vocabularies, round trips, JSON files."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_gated.data import (
    CharTokenizer,
    Vocabulary,
    WordTokenizer,
    load_tokenizer,
    tokenizer_from_config,
    tokenizer_to_config,
)

HAMLET = (
    "To be, or not to be: that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles (and by opposing end them)?\n"
)
SETTINGS = settings(max_examples=50, deadline=None)


# -- word tokenizer ------------------------------------------------------------------------
def test_word_tokenize_splits_punctuation_and_lines():
    tokens = WordTokenizer().tokenize("Fie, fie!\r\nDon't 'tis o'er th' sea_side\n")
    assert tokens == [
        "fie",
        ",",
        "fie",
        "!",
        "<eol>",
        "don't",
        "'tis",
        "o'er",
        "th",
        "'",
        "sea",
        "_",
        "side",
        "<eol>",
    ]


def test_word_tokenize_options():
    text = "Fie, FIE!\nno"
    assert WordTokenizer(lowercase=False).tokenize(text) == ["Fie", ",", "FIE", "!", "<eol>", "no"]
    assert WordTokenizer(punctuation=False).tokenize(text) == ["fie", "fie", "<eol>", "no"]
    assert WordTokenizer(eol_token=None).tokenize(text) == ["fie", ",", "fie", "!", "no"]
    assert WordTokenizer(eol_token="</s>").tokenize(text)[4] == "</s>"


def test_word_vocabulary_by_frequency_then_alphabet():
    tokenizer = WordTokenizer().fit(["b a c b a b", "y x\n"])
    assert tokenizer.vocabulary.tokens == ("<unk>", "<eol>", "b", "a", "c", "x", "y")
    assert len(tokenizer) == tokenizer.vocab_size == 7
    np.testing.assert_array_equal(tokenizer.encode("a b zzz\n"), [3, 2, 0, 1])
    assert tokenizer.encode("a").dtype == np.int32


def test_word_vocabulary_caps_map_rare_words_to_unk():
    text = "the the the the king king king queen queen fool"
    capped = WordTokenizer(max_vocab=4).fit(text)
    assert capped.vocabulary.tokens == ("<unk>", "<eol>", "the", "king")
    assert capped.decode(capped.encode("the queen, the fool")) == "the <unk> <unk> the <unk>"
    frequent = WordTokenizer(min_freq=2).fit(text)
    assert frequent.vocabulary.tokens == ("<unk>", "<eol>", "the", "king", "queen")
    assert frequent.encode("fool")[0] == 0
    with pytest.raises(ValueError, match="max_vocab"):
        WordTokenizer(max_vocab=1)
    with pytest.raises(ValueError, match="min_freq"):
        WordTokenizer(min_freq=0)


def test_word_round_trip_of_normalised_text():
    tokenizer = WordTokenizer().fit(HAMLET)
    assert tokenizer.decode(tokenizer.encode(HAMLET)) == HAMLET.lower()


def test_word_round_trip_normalises_whitespace():
    tokenizer = WordTokenizer(lowercase=False).fit(HAMLET)
    ragged = "To  be ,or\tnot\n\nto be :  that"
    assert tokenizer.decode(tokenizer.encode(ragged)) == "To be, or not\n\nto be: that"


def test_literal_unk_is_one_token():
    tokenizer = WordTokenizer().fit("a b")
    assert tokenizer.tokenize("(<unk>.") == ["(", "<unk>", "."]
    assert tokenizer.decode([0, 2, 0]) == "<unk> a <unk>"


@SETTINGS
@given(
    fit_text=st.text(max_size=200),
    text=st.text(max_size=200),
    lowercase=st.booleans(),
    punctuation=st.booleans(),
    eol=st.sampled_from(["<eol>", None]),
)
def test_word_encode_decode_encode_is_stable(fit_text, text, lowercase, punctuation, eol):
    tokenizer = WordTokenizer(lowercase, punctuation, eol).fit([fit_text, HAMLET])
    ids = tokenizer.encode(text)
    np.testing.assert_array_equal(tokenizer.encode(tokenizer.decode(ids)), ids)


# -- char tokenizer ------------------------------------------------------------------------
def test_char_vocabulary_and_unknowns():
    tokenizer = CharTokenizer().fit("abba\n")
    assert tokenizer.vocabulary.tokens == ("<unk>", "a", "b", "\n")
    np.testing.assert_array_equal(tokenizer.encode("ab\nz"), [1, 2, 3, 0])
    assert tokenizer.decode(tokenizer.encode("abz")) == "ab<unk>"
    assert tokenizer.encode("").shape == (0,) and tokenizer.decode([]) == ""


def test_char_round_trip_is_exact():
    tokenizer = CharTokenizer().fit(HAMLET)
    text = HAMLET + "\r\n\t  "
    tokenizer.fit(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text


lines = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), max_size=8)


@SETTINGS
@given(text=st.text(), line_list=lines)
def test_char_round_trips_arbitrary_unicode(text, line_list):
    text = text + "\n".join(line_list)  # empty lines included
    tokenizer = CharTokenizer().fit(text)
    ids = tokenizer.encode(text)
    assert ids.shape == (len(text),) and ids.dtype == np.int32
    assert (ids > 0).all()
    assert tokenizer.decode(ids) == text


# -- shared behaviour ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [WordTokenizer, CharTokenizer])
def test_unfitted_tokenizer_says_to_fit(cls):
    with pytest.raises(RuntimeError, match="fit"):
        cls().encode("a")


@pytest.mark.parametrize("cls", [WordTokenizer, CharTokenizer])
def test_decode_rejects_out_of_range_ids(cls):
    tokenizer = cls().fit("ab")
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode([0, len(tokenizer)])
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode(np.array([-1]))


def test_get_config_is_the_constructor_arguments():
    tokenizer = WordTokenizer(lowercase=False, max_vocab=9, min_freq=2).fit(HAMLET)
    config = tokenizer.get_config()
    rebuilt = WordTokenizer(**config)
    assert rebuilt.get_config() == config
    assert rebuilt.vocabulary == tokenizer.vocabulary
    char = CharTokenizer().fit(HAMLET)
    assert CharTokenizer(**char.get_config()).vocabulary == char.vocabulary
    assert tokenizer_from_config(tokenizer_to_config(char)).vocabulary == char.vocabulary


@pytest.mark.parametrize("cls", [WordTokenizer, CharTokenizer])
def test_save_load_round_trip(tmp_path, cls):
    tokenizer = cls().fit(HAMLET + "señor ☃\n")
    path = tmp_path / "vocab.json"
    tokenizer.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["class_name"] == cls.__name__
    assert saved["config"]["vocabulary"][0] == "<unk>"
    for loaded in (cls.load(path), load_tokenizer(path)):
        assert type(loaded) is cls
        assert loaded.get_config() == tokenizer.get_config()
        np.testing.assert_array_equal(loaded.encode(HAMLET), tokenizer.encode(HAMLET))
    assert os.listdir(tmp_path) == ["vocab.json"], "no temporary file left behind"


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "vocab.json"
    WordTokenizer().fit("good words").save(path)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        WordTokenizer().fit("other words entirely").save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["vocab.json"]


BAD_FILES = {
    "truncated.json": '{"format": "keras_gated.tokenizer", "version": 1, "class_na',
    "list.json": "[1, 2, 3]",
    "other.json": '{"format": "someone.else", "version": 1}',
    "version.json": '{"format": "keras_gated.tokenizer", "version": 99}',
    "class.json": '{"format": "keras_gated.tokenizer", "version": 1, "class_name": "BPE",'
    ' "config": {}}',
    "argument.json": '{"format": "keras_gated.tokenizer", "version": 1,'
    ' "class_name": "CharTokenizer", "config": {"colour": 1}}',
    "vocab.json": '{"format": "keras_gated.tokenizer", "version": 1,'
    ' "class_name": "CharTokenizer", "config": {"vocabulary": ["a", "<unk>"]}}',
    "long.json": '{"format": "keras_gated.tokenizer", "version": 1,'
    ' "class_name": "CharTokenizer", "config": {"vocabulary": ["<unk>", "ab"]}}',
    "eol.json": '{"format": "keras_gated.tokenizer", "version": 1,'
    ' "class_name": "WordTokenizer", "config": {"vocabulary": ["<unk>", "a"]}}',
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_vocabulary_file_names_it(tmp_path, name):
    path = tmp_path / name
    path.write_text(BAD_FILES[name], encoding="utf-8")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        load_tokenizer(path)


def test_non_utf8_vocabulary_file_names_it(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"format": "señor"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.json"):
        load_tokenizer(path)


def test_loading_the_wrong_kind_names_file(tmp_path):
    path = tmp_path / "chars.json"
    CharTokenizer().fit("abc").save(path)
    with pytest.raises(ValueError, match=r"chars\.json.*CharTokenizer, not a WordTokenizer"):
        WordTokenizer.load(path)


def test_vocabulary_rejects_bad_token_lists():
    with pytest.raises(ValueError, match="first token"):
        Vocabulary(["a"])
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["<unk>", "a", "a"])
    assert Vocabulary(["<unk>", "a"]).token_to_id("b") == 0
