"""Word and character tokenizers with a JSON file format.

Both tokenizers share one interface: ``fit(texts)`` builds a ``Vocabulary`` (``<unk>`` = 0,
then by decreasing frequency, ties in code-point order), ``tokenize(text)`` gives strings,
``encode(text)`` gives ids of shape (N,), ``decode(ids)`` gives text back.

Round trips:

- ``CharTokenizer``: ``decode(encode(t)) == t`` exactly when every character of ``t`` is in
  the vocabulary (no normalisation; ``"\\r"`` and ``"\\n"`` are characters like any other).
- ``WordTokenizer``: ``detokenize(tokenize(t))`` is ``t`` normalised: lowercased
  (``lowercase=True``), each line's whitespace runs made one space and its ends stripped, and
  punctuation spaced by typographic convention (``WordTokenizer.detokenize``), which is how
  the built-in corpus is written; ``decode(encode(t))`` is that with ``<unk>`` for words
  outside the vocabulary (and without punctuation if ``punctuation=False``). Encoding is
  stable: ``encode(decode(encode(t))) == encode(t)``.

``decode(ids, after=prompt_ids)`` is the text that continues the text of ``prompt_ids``: its
leading space, if any, included, so ``prompt + decode(new, after=encode(prompt))`` reads as
one text.

File format (``save``/``load``): UTF-8 JSON ``{"format": "keras_gated.tokenizer",
"version": 1, "class_name": ..., "config": get_config()}``; the config holds the
vocabulary, so a loaded tokenizer is ready to encode.
"""

from __future__ import annotations

import json
import numbers
import os
import pathlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from keras_gated.atomic import write_text
from keras_gated.data.vocabulary import UNK, UNK_ID, Vocabulary

FILE_FORMAT = "keras_gated.tokenizer"
FILE_VERSION = 1
# How detokenize spaces a one-character punctuation token (others are spaced like words):
OPENING = frozenset("([{“‘«¿¡&")  # no space after ("&" as in "&c.")
CLOSING = frozenset(".,;:!?)]}”’»%…'")  # no space before
JOINING = frozenset("-–—/_")  # no space on either side, as in "o'er-leaps" and "stay,--"
QUOTES = frozenset('"')  # opening and closing in turn
_APOSTROPHES = "'’"  # inside or leading a word, as in "don't", "o'er", "'tis"


class Tokenizer:
    """Shared machinery; subclasses define ``tokenize``, ``detokenize`` and ``get_config``.

    Args:
        vocabulary: tokens in id order (as saved by ``get_config``); None: call ``fit``.
    """

    def __init__(self, vocabulary: Sequence[str] | None = None):
        self._vocabulary = None if vocabulary is None else Vocabulary(vocabulary)

    # -- to override -------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Splits ``text`` into tokens (strings); needs no vocabulary."""
        raise NotImplementedError

    def _reserved(self) -> tuple[str, ...]:
        """Tokens placed after ``<unk>`` whatever their counts."""
        return ()

    def _build(self, counts: Counter) -> Vocabulary:
        return Vocabulary.from_counts(counts, self._reserved())

    def detokenize(self, tokens: list[str]) -> str:
        """Joins tokens into text, the inverse of ``tokenize`` up to normalisation."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """Returns the constructor arguments, the fitted vocabulary included."""
        return {"vocabulary": None if self._vocabulary is None else list(self._vocabulary.tokens)}

    # -- shared --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict) -> Tokenizer:
        """Builds a tokenizer from ``get_config()`` output."""
        return cls(**config)

    @property
    def vocabulary(self) -> Vocabulary:
        """The fitted ``Vocabulary``.

        Raises:
            RuntimeError: neither ``fit`` nor a ``vocabulary`` argument has set one.
        """
        if self._vocabulary is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabulary yet; call fit(texts)")
        return self._vocabulary

    @property
    def vocab_size(self) -> int:
        """Number of ids V; ids lie in [0, V)."""
        return len(self.vocabulary)

    def __len__(self) -> int:
        return self.vocab_size

    def fit(self, texts: str | Iterable[str]) -> Tokenizer:
        """Builds the vocabulary from token counts over ``texts`` (a string or strings).

        Returns:
            ``self``, so that ``tok = WordTokenizer().fit(texts)`` works.
        """
        if isinstance(texts, str):
            texts = [texts]
        counts: Counter = Counter()
        for text in texts:
            counts.update(self.tokenize(text))
        self._vocabulary = self._build(counts)
        return self

    def encode(self, text: str) -> np.ndarray:
        """Returns the ids of ``text``'s tokens, shape (N,) int32; unknown tokens -> 0."""
        lookup = self.vocabulary.token_to_id
        return np.array([lookup(token) for token in self.tokenize(text)], dtype=np.int32)

    def decode(
        self, ids: Sequence[int] | np.ndarray, after: Sequence[int] | np.ndarray = ()
    ) -> str:
        """Returns the text for ``ids`` of shape (N,); id 0 decodes to ``"<unk>"``.

        Args:
            after: ids of the text that ``ids`` continue (a prompt); the result is what
                follows that text, e.g. ``", or"`` or ``" or"`` after ``"to be"``.

        Raises:
            ValueError: ``ids`` or ``after`` is not 1-D integers in [0, V).
        """
        before, both = self._tokens(after), self._tokens(ids)
        if not both:
            return ""
        if not before:
            return self.detokenize(both)
        return self.detokenize(before + both)[len(self.detokenize(before)) :]

    def _tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        ids = np.asarray(ids)
        if ids.size == 0:
            return []
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be a 1-D integer sequence, got {ids.dtype} {ids.shape}")
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(f"token id {ids[bad][0]} out of range [0, {self.vocab_size})")
        tokens = self.vocabulary.tokens
        return [tokens[i] for i in ids.tolist()]

    def save(self, path: str | os.PathLike) -> None:
        """Writes config and vocabulary as JSON to ``path`` atomically (`atomic.write_text`):
        an interrupted save never leaves a half-written file."""
        text = json.dumps(tokenizer_to_config(self), ensure_ascii=False, indent=1)
        write_text(path, text + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Reads a tokenizer saved by ``save``.

        Raises:
            ValueError: the file is not a tokenizer JSON, or holds another kind of
                tokenizer than ``cls``; the message names the file.
        """
        tokenizer = load_tokenizer(path)
        if cls is not Tokenizer and not isinstance(tokenizer, cls):
            raise ValueError(f"{path}: holds a {type(tokenizer).__name__}, not a {cls.__name__}")
        return tokenizer


class WordTokenizer(Tokenizer):
    """Splits text into words, punctuation marks and end-of-line tokens.

    A word is a run of letters and digits, with apostrophes inside it (``"don't"``) and
    at most one leading it (``"'tis"``; a trailing one, as in ``"th'"``, is punctuation); every
    other visible character is one punctuation token; each ``"\\n"`` (or ``"\\r\\n"``) is
    ``eol_token``; other whitespace separates tokens. The literal ``"<unk>"`` is one token.
    Ids: ``<unk>`` = 0, ``eol_token`` = 1, then words by frequency.

    Args:
        lowercase: lowercase the text before splitting it.
        punctuation: keep punctuation marks as tokens; False drops them.
        eol_token: token for a newline, one that text cannot hold (not a word or mark);
            None treats newlines as spaces.
        max_vocab: most tokens in the vocabulary, ``<unk>`` and ``eol_token`` included;
            None: no cap. Rarer words encode as ``<unk>``.
        min_freq: words seen fewer times in ``fit`` encode as ``<unk>``.
        vocabulary: tokens in id order from a fitted tokenizer; None: call ``fit``.
    """

    def __init__(
        self,
        lowercase: bool = True,
        punctuation: bool = True,
        eol_token: str | None = "<eol>",
        max_vocab: int | None = None,
        min_freq: int = 1,
        vocabulary: Sequence[str] | None = None,
    ):
        if eol_token is not None and (
            not isinstance(eol_token, str) or not eol_token or eol_token == UNK
        ):
            raise ValueError(
                f"eol_token must be a non-empty string other than {UNK!r}, got {eol_token!r}"
            )
        reserved = 1 if eol_token is None else 2
        if max_vocab is not None and not (_is_int(max_vocab) and max_vocab >= reserved):
            raise ValueError(
                f"max_vocab must be an integer >= {reserved} (the reserved tokens) or None, "
                f"got {max_vocab!r}"
            )
        if not (_is_int(min_freq) and min_freq >= 1):
            raise ValueError(f"min_freq must be an integer >= 1, got {min_freq!r}")
        super().__init__(vocabulary)
        if eol_token is not None and self._vocabulary is not None:
            if eol_token not in self._vocabulary:
                raise ValueError(f"vocabulary lacks eol_token {eol_token!r}")
        self.lowercase = lowercase
        self.punctuation = punctuation
        self.eol_token = eol_token
        self.max_vocab = max_vocab
        self.min_freq = min_freq
        eol = r"(?P<eol>\r?\n)|" if eol_token is not None else ""
        word = rf"[{_APOSTROPHES}]?[^\W_]+(?:[{_APOSTROPHES}][^\W_]+)*"
        unk = re.escape(UNK)
        self._pattern = re.compile(rf"{eol}(?P<unk>{unk})|(?P<word>{word})|(?P<punct>\S)")
        if eol_token not in (None, "\n", "\r\n") and self.tokenize(eol_token) == [eol_token]:
            raise ValueError(
                f"eol_token {eol_token!r} is a token of text, which would decode as "
                "a newline; choose one that text cannot hold, such as '<eol>'"
            )

    def get_config(self) -> dict:
        return {
            "lowercase": self.lowercase,
            "punctuation": self.punctuation,
            "eol_token": self.eol_token,
            "max_vocab": self.max_vocab,
            "min_freq": self.min_freq,
            **super().get_config(),
        }

    def tokenize(self, text: str) -> list[str]:
        """Returns the tokens of ``text``, e.g. ``"Fie, fie!\\n"`` -> fie , fie ! <eol>."""
        if self.lowercase:
            text = text.lower()
        tokens = []
        for match in self._pattern.finditer(text):
            kind = match.lastgroup
            if kind == "eol":
                tokens.append(self.eol_token)
            elif kind != "punct" or self.punctuation:
                tokens.append(match.group())
        return tokens

    def _reserved(self) -> tuple[str, ...]:
        return () if self.eol_token is None else (self.eol_token,)

    def _build(self, counts: Counter) -> Vocabulary:
        return Vocabulary.from_counts(counts, self._reserved(), self.max_vocab, self.min_freq)

    def detokenize(self, tokens: list[str]) -> str:
        """Joins tokens with single spaces, spacing punctuation by typographic convention.

        No space after an opening bracket (``OPENING``), before closing punctuation
        (``CLOSING``) or on either side of a dash, hyphen or slash (``JOINING``); a ``"``
        opens and closes in turn; ``eol_token`` is a newline. So ``to be , or not to be``
        reads ``"to be, or not to be"``.
        """
        pieces: list[str] = []
        previous = None  # the kind of the token before, None at a line start
        quote_open = False
        for token in tokens:
            if token == self.eol_token:
                pieces.append("\n")
                previous = None
                continue
            kind = _kind(token)
            if kind == "quote":
                kind, quote_open = ("close" if quote_open else "open"), not quote_open
            if previous not in (None, "open", "join") and kind not in ("close", "join"):
                pieces.append(" ")
            pieces.append(token)
            previous = kind
        return "".join(pieces)


class CharTokenizer(Tokenizer):
    """One token per Unicode code point; ids: ``<unk>`` = 0, then characters by frequency.

    Args:
        vocabulary: ``"<unk>"`` then single characters, in id order; None: call ``fit``.
    """

    def __init__(self, vocabulary: Sequence[str] | None = None):
        super().__init__(vocabulary)
        if self._vocabulary is not None:
            long = [token for token in self._vocabulary.tokens[1:] if len(token) != 1]
            if long:
                raise ValueError(f"a character vocabulary holds single characters, got {long[:3]}")
            self._index()

    def tokenize(self, text: str) -> list[str]:
        """Returns the characters of ``text``."""
        return list(text)

    def fit(self, texts: str | Iterable[str]) -> CharTokenizer:
        super().fit(texts)
        self._index()
        return self

    def encode(self, text: str) -> np.ndarray:
        """Returns the ids of ``text``'s characters, shape (len(text),) int32."""
        _ = self.vocabulary  # raises if unfitted
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if len(self._codes) == 0:
            return np.full(len(codes), UNK_ID, dtype=np.int32)
        where = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        known = self._codes[where] == codes
        return np.where(known, self._code_ids[where], UNK_ID).astype(np.int32)

    def _index(self) -> None:
        """Builds sorted code points and their ids for vectorised ``encode``."""
        chars = self._vocabulary.tokens[1:]
        codes = np.array([ord(char) for char in chars], dtype=np.uint32)
        order = np.argsort(codes)
        self._codes = codes[order]
        self._code_ids = (order + 1).astype(np.int32)

    def detokenize(self, tokens: list[str]) -> str:
        """Concatenates the characters."""
        return "".join(tokens)


TOKENIZERS = {cls.__name__: cls for cls in (WordTokenizer, CharTokenizer)}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _kind(token: str) -> str:
    """ "open", "close", "join" or "quote" for such punctuation, else "word"."""
    for kind, marks in (
        ("open", OPENING),
        ("close", CLOSING),
        ("join", JOINING),
        ("quote", QUOTES),
    ):
        if token in marks:
            return kind
    return "word"


def tokenizer_to_config(tokenizer: Tokenizer) -> dict:
    """Returns ``{"format", "version", "class_name", "config"}``: what ``save`` writes."""
    return {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "class_name": type(tokenizer).__name__,
        "config": tokenizer.get_config(),
    }


def tokenizer_from_config(config: dict) -> Tokenizer:
    """Rebuilds a tokenizer from ``tokenizer_to_config`` output.

    Raises:
        ValueError: ``config`` is not a tokenizer config of a known class and version.
    """
    if not isinstance(config, dict) or config.get("format") != FILE_FORMAT:
        raise ValueError(f"not a tokenizer config (expected format {FILE_FORMAT!r})")
    if config.get("version") != FILE_VERSION:
        raise ValueError(f"unsupported tokenizer version {config.get('version')!r:.100}")
    name = config.get("class_name")
    cls = TOKENIZERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown tokenizer class {name!r:.100}; known: {sorted(TOKENIZERS)}")
    arguments = config.get("config")
    if not isinstance(arguments, dict):
        raise ValueError("tokenizer config lacks a 'config' object")
    try:
        return cls.from_config(arguments)
    except TypeError as error:
        raise ValueError(f"bad {cls.__name__} config: {error}") from None


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Reads a tokenizer of any kind saved by ``Tokenizer.save``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not UTF-8 JSON (a byte-order mark is allowed) describing a
            tokenizer; names the file.
    """
    try:
        config = json.loads(pathlib.Path(path).read_text(encoding="utf-8-sig"))
        return tokenizer_from_config(config)
    except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError included
        raise ValueError(f"{path}: {error}") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deep to be a tokenizer") from None
