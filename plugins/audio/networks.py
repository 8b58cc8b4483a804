"""Conv encoder and decoder over normalised log-mel spectrograms ``(B, n_mels, frames)``.

Mel bins are channels and ``depth`` stride-2 1-D convolutions halve the number of
frames, which must be divisible by ``2 ** depth`` (the modality pads frames accordingly).

The decoder's likelihood has a learned scale per mel bin (``scale="per-bin"``) or one for
the whole spectrogram (``"global"``); its log is kept smoothly inside ``LOG_SCALE_RANGE``
with a sigmoid so it can neither collapse (an unbounded likelihood) nor get stuck at a
hard clamp.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

#: bounds of the learned log-scale (normalised units: the data has unit variance per bin)
LOG_SCALE_RANGE = (-4.0, 1.0)


class SpectrogramParams(NamedTuple):
    """Likelihood parameters: ``mean`` ``(N, n_mels, frames)``, ``log_scale`` broadcastable to it."""

    mean: torch.Tensor
    log_scale: torch.Tensor


class SpectrogramEncoder(nn.Module):
    """``(B, n_mels, frames)`` -> ``(mu, logvar)``, each ``(B, out_dim)``.

    Mel bins are channels and the convolutions run along time: a sung note is a pattern
    across frequency that moves in time, and 1-D convolutions over frames see the whole
    spectrum at every step for a tenth of the cost of treating it as an image.
    """

    def __init__(self, n_mels: int, frames: int, out_dim: int, width: int = 128, hidden: int = 256,
                 depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        previous = n_mels
        for _ in range(depth):
            layers += [nn.Conv1d(previous, width, 4, 2, 1), nn.SiLU()]
            previous = width
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * (frames >> depth), hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * out_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(x)).chunk(2, dim=-1)
        return mu, logvar


class SpectrogramDecoder(nn.Module):
    """``(N, input_dim)`` -> :class:`SpectrogramParams` of a ``(N, n_mels, frames)`` spectrogram."""

    def __init__(self, n_mels: int, frames: int, input_dim: int, width: int = 128, hidden: int = 256,
                 depth: int = 2, scale: str = "per-bin"):
        super().__init__()
        self.start = (width, frames >> depth)
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(),
                                nn.Linear(hidden, width * self.start[1]), nn.SiLU())
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.ConvTranspose1d(width, width, 4, 2, 1), nn.SiLU()]
        layers.append(nn.ConvTranspose1d(width, n_mels, 4, 2, 1))
        self.deconv = nn.Sequential(*layers)
        lo, hi = LOG_SCALE_RANGE
        # Start at log-scale 0 (unit scale, the data's own spread): sigmoid(raw) = -lo / (hi - lo).
        start = torch.logit(torch.tensor(-lo / (hi - lo)))
        shape = (1, n_mels, 1) if scale == "per-bin" else (1, 1, 1)
        self.raw_log_scale = nn.Parameter(torch.full(shape, float(start)))

    def log_scale(self) -> torch.Tensor:
        lo, hi = LOG_SCALE_RANGE
        return lo + (hi - lo) * torch.sigmoid(self.raw_log_scale)

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> SpectrogramParams:
        mean = self.deconv(self.fc(h).view(-1, *self.start))
        return SpectrogramParams(mean, self.log_scale())
