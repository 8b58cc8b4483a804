"""Text cells as character ids; the vocabulary is fitted on training texts and saved with the run."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from polyvae.core.errors import BadInput, DataWarning, UsageError
from polyvae.core.modality import Modality, with_defaults

from .networks import CNNTextEncoder, GRUTextEncoder, TextDecoder
from .repetition import LOOPING_SHARE, loop_in, looping_share, shorten
from .vocabulary import PAD, Vocabulary

OPTIONS = {"max_length": 64, "encoder": "cnn", "embed": 64, "hidden": 128, "private_dim": 0}


class TextModality(Modality):
    """``text``: the cell holds the text itself; character-level, autoregressive decoder."""

    name = "text"
    extension = "txt"
    cell_is_path = False
    discrete = True
    version = "1"
    description = "character-level text in the manifest cell; CNN or GRU encoder, GRU decoder"

    def __init__(self, **options: Any):
        merged = with_defaults("text", options, OPTIONS)
        if merged["encoder"] not in ("cnn", "gru"):
            raise UsageError(f"text encoder must be cnn or gru, got {merged['encoder']}")
        super().__init__(**merged)
        self.vocab: Vocabulary | None = None
        self.length = 0
        self.mean_length = 0.0
        self._notes: list[str] = []

    def read(self, cell: str, base_dir: Path) -> str:
        text = cell.strip()
        if not text:
            raise BadInput("empty text (only whitespace)")
        if any(ord(c) < 32 and c not in "\t\n" for c in text):
            raise BadInput("text contains control characters")
        return text

    def fit(self, raws: list[str]) -> None:
        self.vocab = Vocabulary.fit(raws)
        longest = max(len(t) for t in raws)
        self.length = min(int(self.options["max_length"]), longest + 1)
        self.mean_length = sum(min(len(t) + 1, self.length) for t in raws) / len(raws)
        cut = sum(len(t) + 1 > self.length for t in raws)      # + 1: the end-of-text mark
        self._notes = [f"text: {cut} of {len(raws)} training texts are cut to {self.length - 1} "
                       f"characters (longest {longest}; max_length {self.length} counts the end "
                       f"mark); set [modality_options.text] max_length to keep more."] if cut else []

    def notes(self) -> list[str]:
        return list(self._notes)

    def preprocess(self, raws: list[str]) -> torch.Tensor:
        """Character ids; characters the vocabulary lacks become ``<unk>``, with a warning naming them."""
        unknown = self._vocab().unknown(raws, self.length)
        if unknown:
            named = ", ".join(repr(c) for c in sorted(unknown, key=lambda c: (-unknown[c], c))[:12])
            more = f" and {len(unknown) - 12} more" if len(unknown) > 12 else ""
            texts = sum(1 for t in raws if set(t[: self.length - 1]) - self._vocab().index.keys())
            warnings.warn(DataWarning(
                f"text: characters not seen in training are read as <unk> (unknown): {named}{more} "
                f"(in {texts} of {len(raws)} text{'s' if len(raws) != 1 else ''})"), stacklevel=2)
        return self._vocab().encode(raws, self.length)

    def state(self) -> dict[str, Any]:
        return {"chars": self._vocab().chars, "length": self.length, "mean_length": self.mean_length}

    def load_state(self, state: dict[str, Any]) -> None:
        if state:
            self.vocab = Vocabulary(list(state["chars"]))
            self.length = int(state["length"])
            self.mean_length = float(state["mean_length"])

    def num_elements(self) -> int:
        return max(1, round(self.mean_length))

    def data_shape(self) -> tuple[int, ...]:
        return (self.length,)

    def _vocab(self) -> Vocabulary:
        if self.vocab is None:
            raise UsageError("text modality used before fit(): no vocabulary")
        return self.vocab

    def build_encoder(self, latent_dim: int) -> torch.nn.Module:
        cls = CNNTextEncoder if self.options["encoder"] == "cnn" else GRUTextEncoder
        return cls(len(self._vocab()), latent_dim + self.private_dim, self.options["embed"],
                   self.options["hidden"])

    def build_decoder(self, input_dim: int) -> torch.nn.Module:
        return TextDecoder(len(self._vocab()), input_dim, self.length, self.options["embed"],
                           self.options["hidden"])

    def log_likelihood(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Sum of log-probabilities of every character up to and including the end symbol."""
        nll = F.cross_entropy(params.float().transpose(1, 2), x, ignore_index=PAD, reduction="none")
        return -nll.sum(1)

    def generate(self, decoder: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        return decoder(h)

    def to_text(self, ids: torch.Tensor) -> str:
        return self._vocab().decode(ids)

    def to_values(self, xs: torch.Tensor) -> list[str]:
        return [self.to_text(x) for x in xs]

    def render(self, x: torch.Tensor, path: Path) -> None:
        Path(path).write_text(self.to_text(x) + "\n", encoding="utf-8")

    def symptoms(self, decoded: torch.Tensor, real: torch.Tensor, what: str) -> list:
        """Decoded texts that loop ("The triangle triangle triangle") far more often than
        the real ones do, or that are nearly all the same text."""
        from polyvae.core.verdict import Symptom

        texts, truth = self.to_values(decoded), self.to_values(real)
        found = []
        share, real_share = looping_share(texts), looping_share(truth)
        if share >= LOOPING_SHARE and share > 2 * real_share + 0.1:
            example = next(t for t in texts if loop_in(t) is not None)
            looping = sum(loop_in(t) is not None for t in texts)
            found.append(Symptom("repeats", self.name, f"text {what} repeat themselves: {looping} of "
                                 f"{len(texts)} loop (e.g. '{shorten(example)}'; real texts: "
                                 f"{real_share:.0%})", share, share))
        distinct, real_distinct = len(set(texts)), len(set(truth))
        if len(texts) >= 4 and real_distinct >= 4 and distinct <= 0.25 * real_distinct:
            found.append(Symptom("identical", self.name, f"text {what} are nearly all alike: {distinct} "
                                 f"different among {len(texts)} (the real rows have {real_distinct})",
                                 distinct / real_distinct, 1 - distinct / real_distinct))
        return found

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Share of positions (up to the target's end) where the characters differ."""
        mask = y != PAD
        return ((x != y) & mask).sum(1).float() / mask.sum(1).clamp_min(1).float()
