"""Convolutional encoder and decoder for square images of side divisible by 4."""
from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """(B, C, S, S) in [0, 1] -> (mu, logvar) of size ``out_dim``."""

    def __init__(self, channels: int, size: int, out_dim: int, width: int = 32, hidden: int = 256):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU(),
        )
        flat = 2 * width * (size // 4) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * out_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(x * 2.0 - 1.0)).chunk(2, dim=-1)
        return mu, logvar


class ImageDecoder(nn.Module):
    """(N, input_dim) -> per-pixel logits (Bernoulli) or means (Gaussian), (N, C, S, S)."""

    def __init__(self, channels: int, size: int, input_dim: int, width: int = 32, hidden: int = 256,
                 gaussian: bool = False):
        super().__init__()
        self.width, self.side = width, size // 4
        # Gaussian pixels get one learned noise level: (mean, log_sigma) instead of logits.
        self.log_sigma = nn.Parameter(torch.tensor(-2.0)) if gaussian else None
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(),
                                nn.Linear(hidden, 2 * width * self.side ** 2), nn.SiLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),
        )

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        out = self.deconv(self.fc(h).view(-1, 2 * self.width, self.side, self.side))
        if self.log_sigma is None:
            return out
        return torch.sigmoid(out), self.log_sigma
