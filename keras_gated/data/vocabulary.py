"""A fixed mapping between tokens and integer ids.

Id 0 is always the unknown token ``<unk>``; reserved tokens (such as ``<eol>``) follow it,
then the counted tokens by decreasing frequency, ties broken by code-point order so that
the same counts always give the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

UNK = "<unk>"
UNK_ID = 0


class Vocabulary:
    """An ordered list of distinct tokens; a token's id is its position.

    Args:
        tokens: the tokens in id order; ``tokens[0]`` must be ``"<unk>"``.

    Raises:
        ValueError: a token is repeated, is not a non-empty string, or ``tokens[0]`` is not
            ``"<unk>"``.
    """

    def __init__(self, tokens: Iterable[str]):
        self._tokens = tuple(tokens)
        if not self._tokens or self._tokens[UNK_ID] != UNK:
            raise ValueError(f"the first token must be {UNK!r}, got {self._tokens[:1]}")
        bad = [token for token in self._tokens if not isinstance(token, str) or not token]
        if bad:
            raise ValueError(f"tokens must be non-empty strings, got {bad[:3]}")
        self._ids = {token: i for i, token in enumerate(self._tokens)}
        if len(self._ids) != len(self._tokens):
            repeated = [token for token, n in Counter(self._tokens).items() if n > 1]
            raise ValueError(f"tokens must be distinct; repeated: {repeated[:3]}")

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        reserved: Iterable[str] = (),
        max_size: int | None = None,
        min_freq: int = 1,
    ) -> Vocabulary:
        """Builds ``[<unk>, *reserved, *counted]`` from token counts.

        Args:
            counts: token -> number of occurrences; reserved tokens in it are ignored.
            reserved: tokens placed right after ``<unk>`` whatever their counts.
            max_size: the most tokens in all, ``<unk>`` and reserved included; None: no cap.
            min_freq: tokens seen fewer times are left out (they encode as ``<unk>``).
        """
        head = [UNK, *(token for token in reserved if token != UNK)]
        if max_size is not None and max_size < len(head):
            raise ValueError(
                f"max_size must be >= {len(head)} (the reserved tokens), got {max_size}"
            )
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        kept = [(token, n) for token, n in counts.items() if n >= min_freq and token not in head]
        kept.sort(key=lambda item: (-item[1], item[0]))
        room = None if max_size is None else max_size - len(head)
        return cls(head + [token for token, _ in kept[:room]])

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, first={list(self._tokens[:5])})"

    def token_to_id(self, token: str) -> int:
        """Returns the id of ``token``, or 0 (``<unk>``) if it is not in the vocabulary."""
        return self._ids.get(token, UNK_ID)

    def id_to_token(self, token_id: int) -> str:
        """Returns the token with id ``token_id``.

        Raises:
            ValueError: ``token_id`` is outside ``[0, len(self))``.
        """
        if not 0 <= token_id < len(self._tokens):
            raise ValueError(f"token id {token_id} out of range [0, {len(self._tokens)})")
        return self._tokens[token_id]
