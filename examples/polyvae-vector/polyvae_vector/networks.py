"""MLP encoder and decoder for standardised vectors."""
from __future__ import annotations

import torch
from torch import nn

#: bounds of the learned per-feature log-variance (std from 0.011 to 12 standard deviations)
LOGVAR_MIN = -9.0
LOGVAR_MAX = 5.0


def mlp(in_dim: int, hidden: int, layers: int) -> tuple[nn.Sequential, int]:
    """``layers`` Linear+SiLU blocks of width ``hidden``; returns the stack and its output size."""
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*blocks), width


class VectorEncoder(nn.Module):
    """``(B, dim)`` -> ``(mu, logvar)``, each ``(B, out_dim)``."""

    def __init__(self, dim: int, out_dim: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.body, width = mlp(dim, hidden, layers)
        self.head = nn.Linear(width, 2 * out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=-1)
        return mu, logvar


class VectorDecoder(nn.Module):
    """``(N, input_dim)`` -> ``(mean, logvar)`` of a diagonal Gaussian, each ``(N, dim)``.

    The log-variance is one learned number per feature, not a function of the latent:
    it says how well each feature can be predicted at all, and keeps the likelihood from
    collapsing onto single examples.
    """

    def __init__(self, input_dim: int, dim: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.body, width = mlp(input_dim, hidden, layers)
        self.mean = nn.Linear(width, dim)
        self.logvar = nn.Parameter(torch.zeros(dim))    # data are standardised: variance 1

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean(self.body(h))
        logvar = self.logvar.clamp(LOGVAR_MIN, LOGVAR_MAX).to(mean.dtype).expand_as(mean)
        return mean, logvar
