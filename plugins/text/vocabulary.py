"""Character vocabulary with padding, start, end and unknown symbols."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


@dataclass
class Vocabulary:
    """Characters seen in training, after the four special symbols."""

    chars: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, texts: list[str]) -> "Vocabulary":
        return cls(sorted({c for t in texts for c in t}))

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, texts: list[str], length: int) -> torch.Tensor:
        """``(N, length)`` ids: characters, then EOS, then PAD; longer texts are cut."""
        ids = torch.full((len(texts), length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            codes = [self.index.get(c, UNK) for c in text[: length - 1]] + [EOS]
            ids[row, : len(codes)] = torch.tensor(codes)
        return ids

    def unknown(self, texts: list[str], length: int) -> dict[str, int]:
        """Characters of ``texts`` (within their first ``length - 1``, what :meth:`encode`
        keeps) that are not in the vocabulary, with the number of texts each is in."""
        found: dict[str, int] = {}
        for text in texts:
            for c in set(text[: length - 1]) - self.index.keys():
                found[c] = found.get(c, 0) + 1
        return found

    def decode(self, ids: torch.Tensor) -> str:
        """Characters up to the first EOS (specials other than UNK dropped)."""
        out = []
        for i in ids.tolist():
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.chars[i - len(SPECIALS)])
            elif i == UNK:
                out.append("\N{REPLACEMENT CHARACTER}")
        return "".join(out)
