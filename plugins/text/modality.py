"""Text cells as token ids (words and characters, or characters only); the vocabulary is
fitted on training texts and saved with the run."""
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
from .vocabulary import PAD, Vocabulary, longest_repeat

#: tokens: "words" (a word the training texts hold at least twice is one token, the rest is
#: spelled by character) or "chars"; max_length counts tokens. no_repeat_ngram: decoding never
#: says the same run of this many tokens twice in one text ("auto": one more than the longest
#: run any training text repeats; 0: off)
OPTIONS = {"max_length": 64, "encoder": "cnn", "embed": 64, "hidden": 128, "private_dim": 0,
           "tokens": "words", "no_repeat_ngram": "auto"}


class TextModality(Modality):
    """``text``: the cell holds the text itself; words and characters (or characters only),
    autoregressive decoder that does not repeat itself."""

    name = "text"
    extension = "txt"
    cell_is_path = False
    discrete = True
    version = "1"
    description = "text in the manifest cell as words and characters; CNN or GRU encoder, GRU decoder"

    def __init__(self, **options: Any):
        merged = with_defaults("text", options, OPTIONS)
        if merged["encoder"] not in ("cnn", "gru"):
            raise UsageError(f"text encoder must be cnn or gru, got {merged['encoder']}")
        if merged["tokens"] not in ("words", "chars"):
            raise UsageError(f"text tokens must be words or chars, got {merged['tokens']}")
        blocked = merged["no_repeat_ngram"]
        if blocked != "auto" and (isinstance(blocked, bool) or not isinstance(blocked, int) or blocked < 0
                                  or blocked == 1):
            raise UsageError(f"text no_repeat_ngram must be auto, 0 (off) or a whole number from 2, got {blocked!r}")
        super().__init__(**merged)
        self.vocab: Vocabulary | None = None
        self.length = 0
        #: decoding never repeats a run of this many tokens (0: off, as in runs saved before it)
        self.no_repeat_ngram = 0
        #: decoding says at least this many tokens: the shortest training text's (an empty text
        #: is never one)
        self.min_length = 1
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
        self.vocab = Vocabulary.fit(raws, words=self.options["tokens"] == "words")
        sizes = [len(self.vocab.tokens(t)) for t in raws]
        longest = max(sizes)
        self.length = min(int(self.options["max_length"]), longest + 1)
        self.min_length = max(1, min(min(sizes), self.length - 1))
        self.mean_length = sum(min(n + 1, self.length) for n in sizes) / len(raws)
        cut = sum(n + 1 > self.length for n in sizes)      # + 1: the end-of-text mark
        unit = "tokens (words and characters)" if self.vocab.words else "characters"
        self._notes = [f"text: {cut} of {len(raws)} training texts are cut to {self.length - 1} "
                       f"{unit} (longest {longest}; max_length {self.length} counts the end "
                       f"mark); set [modality_options.text] max_length to keep more."] if cut else []
        blocked = self.options["no_repeat_ngram"]
        if blocked == "auto":
            # never block what a training text does: one token more than its longest repeated run
            ids = {tuple(self.vocab.ids(t, self.length)[:-1]) for t in raws}
            blocked = max(2, 1 + max(longest_repeat(list(i)) for i in ids))
        self.no_repeat_ngram = int(blocked)

    def notes(self) -> list[str]:
        return list(self._notes)

    def preprocess(self, raws: list[str]) -> torch.Tensor:
        """Token ids; characters the vocabulary lacks become ``<unk>``, with a warning naming them."""
        vocab = self._vocab()
        unknown = vocab.unknown(raws)
        if unknown:
            named = ", ".join(repr(c) for c in sorted(unknown, key=lambda c: (-unknown[c], c))[:12])
            more = f" and {len(unknown) - 12} more" if len(unknown) > 12 else ""
            texts = sum(1 for t in raws if vocab.unknown_in(t))
            warnings.warn(DataWarning(
                f"text: characters not seen in training are read as <unk> (unknown): {named}{more} "
                f"(in {texts} of {len(raws)} text{'s' if len(raws) != 1 else ''})"), stacklevel=2)
        cut = vocab.cut(raws, self.length)
        if cut:
            first = raws[cut[0]]
            kept = "".join(vocab.tokens(first)[: self.length - 1])
            warnings.warn(DataWarning(
                f"text: {len(cut)} of {len(raws)} text{'s are' if len(raws) != 1 else ' is'} longer than the "
                f"{self.length - 1} tokens this model reads; only the "
                f"beginning is used, e.g. {kept!r} of {first!r}"), stacklevel=2)
        return vocab.encode(raws, self.length)

    def state(self) -> dict[str, Any]:
        state = {"chars": self._vocab().chars, "length": self.length, "mean_length": self.mean_length,
                 "no_repeat_ngram": self.no_repeat_ngram, "min_length": self.min_length}
        if self._vocab().words:
            state["words"] = self._vocab().words
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """A state saved before words and repeat blocking (no such keys) loads as it was:
        characters, nothing blocked, at least one token said."""
        if state:
            self.vocab = Vocabulary(list(state["chars"]), list(state.get("words", [])))
            self.length = int(state["length"])
            self.mean_length = float(state["mean_length"])
            self.no_repeat_ngram = int(state.get("no_repeat_ngram", 0))
            self.min_length = int(state.get("min_length", 1))

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
                           self.options["hidden"], no_repeat_ngram=self.no_repeat_ngram,
                           min_length=self.min_length)

    def log_likelihood(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Sum of log-probabilities of every token up to and including the end symbol."""
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
        """Share of positions (up to the target's end) where the tokens differ."""
        mask = y != PAD
        return ((x != y) & mask).sum(1).float() / mask.sum(1).clamp_min(1).float()
