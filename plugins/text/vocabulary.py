"""Text as ids: characters, or whole words with characters for the rest.

A text is cut into *pieces*: a run of word characters with the one space before it (" red"),
or any other single character (punctuation, a second space, a line break). With words, each
piece seen at least :data:`WORD_MIN_COUNT` times in training is one token; any other piece is
spelled out character by character, so a word the vocabulary lacks is still written (only a
character it never saw becomes ``<unk>``). Joining the tokens gives the text back exactly.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import torch

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

#: a word with at most one space before it, or any single other character
_PIECE = re.compile(r" ?\w+|.", re.DOTALL)
#: a word piece becomes a token of its own when training texts hold it this often
WORD_MIN_COUNT = 2
#: at most this many word tokens (the most frequent)
MAX_WORDS = 5000


@dataclass
class Vocabulary:
    """Characters seen in training, then word tokens (empty: character-level), after the
    four special symbols."""

    chars: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        self.word_index = {w: i + len(SPECIALS) + len(self.chars) for i, w in enumerate(self.words)}
        self.strings = list(SPECIALS) + list(self.chars) + list(self.words)
        self.lookup = {**self.index, **self.word_index}     # words are longer than one character

    @classmethod
    def fit(cls, texts: list[str], words: bool = False) -> "Vocabulary":
        chars = sorted({c for t in texts for c in t})
        if not words:
            return cls(chars)
        # a piece of one character is a character token already
        counts = Counter(p for t in texts for p in _PIECE.findall(t) if len(p) > 1)
        frequent = sorted((w for w, k in counts.items() if k >= WORD_MIN_COUNT),
                          key=lambda w: (-counts[w], w))[:MAX_WORDS]
        return cls(chars, sorted(frequent))

    def __len__(self) -> int:
        return len(self.strings)

    def tokens(self, text: str) -> list[str]:
        """The text as token strings: known word pieces whole, everything else by character."""
        if not self.words:
            return list(text)
        out: list[str] = []
        for piece in _PIECE.findall(text):
            if piece in self.word_index:
                out.append(piece)
            else:
                out.extend(piece)
        return out

    def ids(self, text: str, length: int) -> list[int]:
        """Token ids of ``text``'s first ``length - 1`` tokens, then EOS."""
        return [self.lookup.get(t, UNK) for t in self.tokens(text)[: length - 1]] + [EOS]

    def encode(self, texts: list[str], length: int) -> torch.Tensor:
        """``(N, length)`` ids: tokens, then EOS, then PAD; longer texts are cut."""
        ids = torch.full((len(texts), length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            codes = self.ids(text, length)
            ids[row, : len(codes)] = torch.tensor(codes)
        return ids

    def unknown(self, texts: list[str]) -> dict[str, int]:
        """Characters of ``texts`` that are not in the vocabulary, with the number of texts
        each is in."""
        found: dict[str, int] = {}
        for text in texts:
            for c in self.unknown_in(text):
                found[c] = found.get(c, 0) + 1
        return found

    def unknown_in(self, text: str) -> set[str]:
        """Characters of ``text`` not in the vocabulary."""
        return {t for t in self.tokens(text) if t not in self.lookup}

    def cut(self, texts: list[str], length: int) -> list[int]:
        """Positions of the texts longer than the ``length - 1`` tokens :meth:`encode` keeps."""
        return [i for i, t in enumerate(texts) if len(self.tokens(t)) > length - 1]

    def decode(self, ids: torch.Tensor) -> str:
        """The text up to the first EOS (specials other than UNK dropped)."""
        out = []
        for i in ids.tolist():
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.strings[i])
            elif i == UNK:
                out.append("\N{REPLACEMENT CHARACTER}")
        return "".join(out)


def longest_repeat(ids: list[int]) -> int:
    """Length of the longest run of tokens found twice in ``ids`` (overlaps count): 0 when no
    token repeats. "banana" as characters: 3 ("ana")."""
    n = 0
    while True:
        grams = [tuple(ids[i:i + n + 1]) for i in range(len(ids) - n)]
        if len(set(grams)) == len(grams):
            return n
        n += 1
