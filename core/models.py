"""The contract every trainable model fulfils (``--model``), multimodal or classic.

The training loop only calls ``forward`` (so DistributedDataParallel sees every step) and
the pipelines only use ``encode``/``reconstruct``/``generate`` below; what a model does
inside is its own business.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from .batch import Batch
from .config import ModelConfig
from .errors import UsageError
from .modality import Modality


@dataclass
class LossOutput:
    """A training step's scalar loss to minimise and its named terms (detached, for logging)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class AutoencoderModel(nn.Module):
    """Base class of ``--model`` choices, registered through ``polyvae_register_models``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: classic models take exactly one modality
    single_modality: ClassVar[bool] = False
    #: False for models that update their own weights in ``forward`` (recirculation)
    uses_backprop: ClassVar[bool] = True

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig):
        super().__init__()
        if self.single_modality and len(modalities) != 1:
            raise UsageError(f"--model {self.name} takes exactly one modality, got "
                             f"{', '.join(modalities) or 'none'}; choose one with --modalities")
        self.modalities = modalities
        self.config = config

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        """Loss of one training batch; ``epoch`` is fractional progress (for annealing)."""
        raise NotImplementedError

    def encode(self, batch: Batch) -> torch.Tensor:
        """Latent features ``(B, latent_dim)`` of each row from its present modalities."""
        raise NotImplementedError

    def reconstruct(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Decoded data-space estimate of each modality for every row."""
        raise NotImplementedError

    def generate(self, given: Batch, targets: list[str], generator: torch.Generator | None = None,
                 sample: bool = True) -> dict[str, torch.Tensor]:
        """Targets decoded from the modalities present in ``given`` (the prior when none is)."""
        raise NotImplementedError

    def reconstruction_error(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-row error ``(B,)`` of each present modality (anomaly scores)."""
        recon = self.reconstruct(batch)
        return {m: self.modalities[m].distance(recon[m], batch.data[m]) for m in recon}
