"""Token encoders (GRU or CNN) and an autoregressive GRU decoder conditioned on z, whose
decoding never repeats a run of tokens (the loops of an undertrained decoder)."""
from __future__ import annotations

import torch
from torch import nn

from .vocabulary import BOS, EOS, PAD


class CNNTextEncoder(nn.Module):
    """Embeddings -> two 1-D convolutions -> masked max and mean pooling -> (mu, logvar)."""

    def __init__(self, vocab: int, out_dim: int, embed: int = 64, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=PAD)
        self.conv = nn.Sequential(nn.Conv1d(embed, hidden, 3, padding=1), nn.SiLU(),
                                  nn.Conv1d(hidden, hidden, 3, padding=1), nn.SiLU())
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2 * out_dim))

    def forward(self, ids: torch.Tensor):
        mask = (ids != PAD).unsqueeze(1).float()                     # (B, 1, L)
        h = self.conv(self.embed(ids).transpose(1, 2)) * mask         # (B, H, L)
        mean = h.sum(2) / mask.sum(2).clamp_min(1.0)
        # max with indices: its backward scatters to the argmax (amax compares values again,
        # which torch.compile may recompute with different rounding and match nothing: NaN)
        peak = h.masked_fill(mask == 0, -1e4).max(2).values
        mu, logvar = self.head(torch.cat([mean, peak], dim=1)).chunk(2, dim=-1)
        return mu, logvar


class GRUTextEncoder(nn.Module):
    """Embeddings -> bidirectional GRU (packed by length) -> final states -> (mu, logvar)."""

    def __init__(self, vocab: int, out_dim: int, embed: int = 64, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=PAD)
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 2 * out_dim)

    def forward(self, ids: torch.Tensor):
        lengths = (ids != PAD).sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, last = self.gru(packed)                                    # (2, B, H)
        mu, logvar = self.head(torch.cat([last[0], last[1]], dim=1)).chunk(2, dim=-1)
        return mu, logvar


class TextDecoder(nn.Module):
    """GRU language model whose initial state and every input step see the latent ``h``.

    Decoding is greedy, from ``min_length`` tokens (no text ends before the shortest training
    text does) up to the end symbol or ``length`` tokens; with ``no_repeat_ngram`` n (>= 2), a
    token that would say a run of n tokens a second time in the same text is passed over for
    the next most likely one (the end symbol never is). Neither is a weight: they do not change
    what the decoder learns or saves.
    """

    def __init__(self, vocab: int, input_dim: int, length: int, embed: int = 64, hidden: int = 128,
                 no_repeat_ngram: int = 0, min_length: int = 1):
        super().__init__()
        self.length = length
        self.no_repeat_ngram = no_repeat_ngram
        self.min_length = min_length
        self.embed = nn.Embedding(vocab, embed, padding_idx=PAD)
        self.init = nn.Linear(input_dim, hidden)
        self.cond = nn.Linear(input_dim, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits ``(N, L, V)`` for targets ``x``; greedy ids when ``x`` is None."""
        if x is None:
            return self.greedy(h)
        start = torch.full((x.shape[0], 1), BOS, dtype=torch.long, device=x.device)
        inputs = torch.cat([start, x[:, :-1]], dim=1)
        state = torch.tanh(self.init(h)).unsqueeze(0)
        steps = self.embed(inputs) + self.cond(h).unsqueeze(1)
        out, _ = self.gru(steps, state)
        return self.out(out)

    def step_logits(self, token: torch.Tensor, cond: torch.Tensor, state: torch.Tensor):
        """Next-token logits ``(N, V)`` after ``token`` ``(N,)``, and the new GRU state."""
        out, state = self.gru((self.embed(token) + cond).unsqueeze(1), state)
        return self.out(out[:, 0]), state

    @torch.no_grad()
    def greedy(self, h: torch.Tensor) -> torch.Tensor:
        """Most likely tokens one at a time: ``(N, L)`` ids, PAD after EOS."""
        n = h.shape[0]
        state = torch.tanh(self.init(h)).unsqueeze(0)
        cond = self.cond(h)
        token = torch.full((n,), BOS, dtype=torch.long, device=h.device)
        done = torch.zeros(n, dtype=torch.bool, device=h.device)
        ids = torch.full((n, self.length), PAD, dtype=torch.long, device=h.device)
        blocker = RepeatBlocker(n, self.no_repeat_ngram) if self.no_repeat_ngram >= 2 else None
        never = torch.tensor([PAD, BOS], device=h.device)
        never_yet = torch.tensor([PAD, BOS, EOS], device=h.device)
        for t in range(self.length):
            logits, state = self.step_logits(token, cond, state)
            # padding and the start symbol are never a target, so never said
            logits = logits.index_fill(1, never if t >= self.min_length else never_yet, float("-inf"))
            if blocker is not None:
                logits = blocker.block(logits, done)
            token = logits.argmax(-1)
            ids[:, t] = torch.where(done, torch.full_like(token, PAD), token)
            if blocker is not None:
                blocker.said(token, done)
            done |= token == EOS
            if bool(done.all()):
                break
        return ids


class RepeatBlocker:
    """Bans, row by row, each token that would complete a run of ``n`` tokens already said in
    that row (overlapping runs count: after "a a", "a" is banned for n = 2)."""

    def __init__(self, rows: int, n: int):
        self.n = n
        self.history: list[list[int]] = [[] for _ in range(rows)]
        #: per row: the n - 1 tokens before -> the tokens that followed them
        self.followers: list[dict[tuple[int, ...], set[int]]] = [{} for _ in range(rows)]

    def block(self, logits: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        rows, banned = [], []
        finished = done.tolist()
        for r, (past, follows) in enumerate(zip(self.history, self.followers)):
            if len(past) >= self.n - 1 and not finished[r]:
                for token in follows.get(tuple(past[len(past) - self.n + 1:]), ()):
                    if token != EOS:
                        rows.append(r)
                        banned.append(token)
        if not rows:
            return logits
        logits = logits.clone()
        logits[torch.tensor(rows), torch.tensor(banned)] = float("-inf")
        return logits

    def said(self, token: torch.Tensor, done: torch.Tensor) -> None:
        for r, (t, finished) in enumerate(zip(token.tolist(), done.tolist())):
            if finished:
                continue
            past = self.history[r]
            if len(past) >= self.n - 1:
                self.followers[r].setdefault(tuple(past[len(past) - self.n + 1:]), set()).add(t)
            past.append(t)
