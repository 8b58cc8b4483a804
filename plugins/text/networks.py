"""Character encoders (GRU or CNN) and an autoregressive GRU decoder conditioned on z."""
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
    """GRU language model whose initial state and every input step see the latent ``h``."""

    def __init__(self, vocab: int, input_dim: int, length: int, embed: int = 64, hidden: int = 128):
        super().__init__()
        self.length = length
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

    @torch.no_grad()
    def greedy(self, h: torch.Tensor) -> torch.Tensor:
        """Most likely characters one at a time: ``(N, L)`` ids, PAD after EOS."""
        n = h.shape[0]
        state = torch.tanh(self.init(h)).unsqueeze(0)
        cond = self.cond(h)
        token = torch.full((n,), BOS, dtype=torch.long, device=h.device)
        done = torch.zeros(n, dtype=torch.bool, device=h.device)
        ids = torch.full((n, self.length), PAD, dtype=torch.long, device=h.device)
        for t in range(self.length):
            out, state = self.gru((self.embed(token) + cond).unsqueeze(1), state)
            token = self.out(out[:, 0]).argmax(-1)
            ids[:, t] = torch.where(done, torch.full_like(token, PAD), token)
            done |= token == EOS
            if bool(done.all()):
                break
        return ids
