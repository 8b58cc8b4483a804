"""Conv encoder and decoder over normalised log-mel spectrograms ``(B, n_mels, frames)``.

The spectrogram is treated as a one-channel image, mel bins as height and frames as
width; ``depth`` stride-2 convolutions halve both, so both must be divisible by
``2 ** depth`` (the modality checks this and pads frames accordingly).

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


def _channels(width: int, depth: int) -> list[int]:
    return [width * min(2 ** i, 4) for i in range(depth)]


class SpectrogramEncoder(nn.Module):
    """``(B, n_mels, frames)`` -> ``(mu, logvar)``, each ``(B, out_dim)``."""

    def __init__(self, n_mels: int, frames: int, out_dim: int, width: int = 32, hidden: int = 256,
                 depth: int = 3):
        super().__init__()
        chans = _channels(width, depth)
        layers: list[nn.Module] = []
        previous = 1
        for c in chans:
            layers += [nn.Conv2d(previous, c, 4, 2, 1), nn.SiLU()]
            previous = c
        self.conv = nn.Sequential(*layers)
        flat = chans[-1] * (n_mels >> depth) * (frames >> depth)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * out_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(x.unsqueeze(1))).chunk(2, dim=-1)
        return mu, logvar


class SpectrogramDecoder(nn.Module):
    """``(N, input_dim)`` -> :class:`SpectrogramParams` of a ``(N, n_mels, frames)`` spectrogram."""

    def __init__(self, n_mels: int, frames: int, input_dim: int, width: int = 32, hidden: int = 256,
                 depth: int = 3, scale: str = "per-bin"):
        super().__init__()
        chans = _channels(width, depth)[::-1]
        self.start = (chans[0], n_mels >> depth, frames >> depth)
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(),
                                nn.Linear(hidden, chans[0] * self.start[1] * self.start[2]), nn.SiLU())
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.SiLU()]
        layers.append(nn.ConvTranspose2d(chans[-1], 1, 4, 2, 1))
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
        features = self.fc(h).view(-1, *self.start)
        mean = self.deconv(features).squeeze(1)
        return SpectrogramParams(mean, self.log_scale())
