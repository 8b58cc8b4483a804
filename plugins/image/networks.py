"""Convolutional encoders and decoders for square images.

Two architectures, chosen by the ``arch`` the run saves with the image state:

* ``plain`` (runs saved before residual blocks): two stride-2 convolutions each way, for a
  side divisible by 4;
* ``residual``: stride-2 convolutions down to a grid of side ``size / 4`` (32 px) or
  ``size / 8`` (64 px), with a bottleneck residual block at every grid but the finest, where
  convolutions are cheap (32 px: one block each way, at 8 x 8; 64 px: two, at 16 x 16 and
  8 x 8); the decoder mirrors the encoder.
"""
from __future__ import annotations

import torch
from torch import nn


class _ConvEncoder(nn.Module):
    """``conv`` (set by the subclass), then a fully connected ``head`` from its flattened
    ``flat`` features to (mu, logvar) of size ``out_dim``; pixels scaled to [-1, 1] first."""

    def _set_head(self, flat: int, hidden: int, out_dim: int) -> None:
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * out_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(x * 2.0 - 1.0)).chunk(2, dim=-1)
        return mu, logvar


class _ConvDecoder(nn.Module):
    """``fc`` to a ``grid``-channel ``side`` x ``side`` map, then ``deconv`` (set by the
    subclass); logits, or (means, log_sigma) with Gaussian pixels (one learned noise level)."""

    def _set_noise(self, gaussian: bool) -> None:
        self.log_sigma = nn.Parameter(torch.tensor(-2.0)) if gaussian else None

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        out = self.deconv(self.fc(h).view(-1, self.grid, self.side, self.side))
        if self.log_sigma is None:
            return out
        return torch.sigmoid(out), self.log_sigma


class ImageEncoder(_ConvEncoder):
    """(B, C, S, S) in [0, 1] -> (mu, logvar) of size ``out_dim``."""

    def __init__(self, channels: int, size: int, out_dim: int, width: int = 32, hidden: int = 256):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU(),
        )
        self._set_head(2 * width * (size // 4) ** 2, hidden, out_dim)


class ImageDecoder(_ConvDecoder):
    """(N, input_dim) -> per-pixel logits (Bernoulli) or means (Gaussian), (N, C, S, S)."""

    def __init__(self, channels: int, size: int, input_dim: int, width: int = 32, hidden: int = 256,
                 gaussian: bool = False):
        super().__init__()
        self.grid, self.side = 2 * width, size // 4
        self._set_noise(gaussian)
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(),
                                nn.Linear(hidden, 2 * width * self.side ** 2), nn.SiLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),
        )


# ---- residual -------------------------------------------------------------------------------
def downsamplings(size: int) -> int:
    """Stride-2 stages of the residual networks: 2 up to 32 px, 3 above when the side allows
    (64 px: an 8 x 8 grid)."""
    return 3 if size > 32 and size % 8 == 0 else 2


def stage_widths(width: int, stages: int) -> list[int]:
    """Channels after each stride-2 stage, finest first: ``width`` doubling to at most 2 x width."""
    return [min(2 * width, width * 2 ** max(0, k - stages + 2)) for k in range(stages)]


class ResidualBlock(nn.Module):
    """x + conv1x1(SiLU(conv3x3(SiLU(conv1x1(SiLU(x)))))), through half the channels (a
    bottleneck: a fifth of the work of two full 3x3 convolutions). The last convolution
    starts at zero, so every block starts as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(8, channels // 2)
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(channels, inner, 1), nn.SiLU(),
                                  nn.Conv2d(inner, inner, 3, 1, 1), nn.SiLU(), nn.Conv2d(inner, channels, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualImageEncoder(_ConvEncoder):
    """(B, C, S, S) in [0, 1] -> (mu, logvar): stride-2 convolutions, a residual block after
    each but the first (the one at full resolution, where a block costs the most), a fully
    connected head."""

    def __init__(self, channels: int, size: int, out_dim: int, width: int = 32, hidden: int = 256):
        super().__init__()
        stages = downsamplings(size)
        widths = stage_widths(width, stages)
        layers: list[nn.Module] = []
        before = channels
        for k, w in enumerate(widths):
            layers += [nn.Conv2d(before, w, 4, 2, 1)]
            layers += [ResidualBlock(w)] if k >= 1 else [nn.SiLU()]
            before = w
        self.conv = nn.Sequential(*layers, nn.SiLU())
        self._set_head(widths[-1] * (size // 2 ** stages) ** 2, hidden, out_dim)


class ResidualImageDecoder(_ConvDecoder):
    """(N, input_dim) -> logits or (means, log_sigma), (N, C, S, S): a fully connected layer to
    the coarsest grid, then transposed stride-2 convolutions, a residual block before each but
    the last."""

    def __init__(self, channels: int, size: int, input_dim: int, width: int = 32, hidden: int = 256,
                 gaussian: bool = False):
        super().__init__()
        stages = downsamplings(size)
        widths = stage_widths(width, stages)[::-1]             # coarsest first
        self.grid, self.side = widths[0], size // 2 ** stages
        self._set_noise(gaussian)
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(),
                                nn.Linear(hidden, widths[0] * self.side ** 2))
        layers: list[nn.Module] = []
        for k, w in enumerate(widths):
            after = widths[k + 1] if k + 1 < stages else channels
            if k < stages - 1:
                layers.append(ResidualBlock(w))
            layers += [nn.SiLU(), nn.ConvTranspose2d(w, after, 4, 2, 1)]
        self.deconv = nn.Sequential(*layers)
