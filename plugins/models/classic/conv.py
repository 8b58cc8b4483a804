"""``--model conv-ae``: a convolutional autoencoder for 2-D data.

Images ``(C, H, W)`` and 2-D maps such as spectrograms ``(n_mels, frames)`` (seen as one
channel) go through stride-2 ``Conv2d`` layers, a linear bottleneck of ``latent_dim`` units,
and mirrored ``ConvTranspose2d`` layers. Sides that are not a multiple of ``2^layers`` are
zero-padded on the bottom/right before encoding and cropped after decoding, so the output
has exactly the input's shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.errors import UsageError
from polyvae.core.modality import Modality
from polyvae.core.models import LossOutput

from .common import (ACTIVATIONS, ClassicAutoencoder, activation, check_choice, check_range, masked_mean,
                     row_mse)


@dataclass
class ConvOptions:
    """``config.extra`` of ``conv-ae``."""

    #: output channels of each stride-2 convolution (each halves the height and width)
    channels: list[int] = field(default_factory=lambda: [32, 64])
    activation: str = "silu"
    #: "linear" (any data) or "sigmoid" (data in [0, 1]) decoder output
    output: str = "linear"

    def __post_init__(self):
        for key in ("activation", "output"):
            check_choice("conv-ae", key, getattr(self, key), tuple(ACTIVATIONS))
        if not self.channels:
            raise UsageError("--model conv-ae: option channels needs at least one layer")
        for c in self.channels:
            check_range("conv-ae", "channels", c, 1, 100_000)


class ConvAutoencoder(ClassicAutoencoder):
    """Conv2d encoder, linear code, ConvTranspose2d decoder (kernel 4, stride 2, padding 1)."""

    name = "conv-ae"
    description = "convolutional autoencoder (Conv2d / ConvTranspose2d) for images and spectrograms"
    options_class = ConvOptions

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, **context):
        super().__init__(modalities, config, **context)
        if len(self.shape) not in (2, 3):
            raise UsageError(f"--model conv-ae needs 2-D data ((H, W) or (C, H, W)); the "
                             f"'{self.modality_name}' modality gives rows of shape {tuple(self.shape)}: "
                             f"use --model ae for it")
        self.image_shape = self.shape if len(self.shape) == 3 else (1, *self.shape)
        c, h, w = self.image_shape
        o = self.options
        factor = 2 ** len(o.channels)
        self.padded = (math.ceil(h / factor) * factor, math.ceil(w / factor) * factor)
        self.code_grid = (o.channels[-1], self.padded[0] // factor, self.padded[1] // factor)
        flat = math.prod(self.code_grid)

        down: list[nn.Module] = []
        for c_in, c_out in zip([c, *o.channels[:-1]], o.channels):
            down += [nn.Conv2d(c_in, c_out, 4, 2, 1), activation(o.activation)]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, config.latent_dim))

        self.expand = nn.Sequential(nn.Linear(config.latent_dim, flat), activation(o.activation))
        up: list[nn.Module] = []
        outs = [*o.channels[::-1][1:], c]
        for i, (c_in, c_out) in enumerate(zip(o.channels[::-1], outs)):
            up.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
            up.append(activation(o.output if i == len(outs) - 1 else o.activation))
        self.decoder = nn.Sequential(*up)

    def _as_image(self, x: torch.Tensor) -> torch.Tensor:
        image = x.reshape(x.shape[0], *self.image_shape)
        h, w = self.image_shape[1:]
        return F.pad(image, (0, self.padded[1] - w, 0, self.padded[0] - h))

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._as_image(x))

    def decode_z(self, z: torch.Tensor) -> torch.Tensor:
        grid = self.decoder(self.expand(z).view(z.shape[0], *self.code_grid))
        h, w = self.image_shape[1:]
        return grid[:, :, :h, :w].reshape(z.shape[0], *self.shape)

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        x, present = self.inputs(batch)
        recon = masked_mean(row_mse(self.reconstruct_x(x), x), present)
        return LossOutput(recon, {"recon": recon.detach()})
