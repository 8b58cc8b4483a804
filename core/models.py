"""The contract every trainable model fulfils (``--model``), multimodal or classic.

The training loop only calls :meth:`AutoencoderModel.forward` (so DistributedDataParallel
sees every step). Everything else a pipeline does with a model goes through the methods
below, and what a model can do beyond encoding is *declared* in :attr:`capabilities`
(never probed with ``hasattr``):

``encode(batch) -> Encoding``
    the shared posterior q(z | present modalities) and each modality's private posterior
    by name (e.g. the audio modality's voice latent) — nobody slices latent columns by hand;
``decode(z, targets, private)`` (:data:`DECODE`)
    data-space estimates of the targets from shared latents and optional private latents;
``reconstruct(batch, private)``
    each present modality rebuilt from the row, optionally with another private latent
    (voice conversion: the source's timing and content, the target's voice);
``frame_codes(modality, x)``
    what is said in every frame of a modality's examples, as its decoder reads it (speech:
    the content code), None for a model or modality without; conversion matches frames by it;
``generate(given, targets, ...)``
    targets from whatever the batch holds (:data:`CROSS_MODAL`: another modality; with
    :data:`PRIOR`: from nothing);
``log_likelihood(batch, k)`` (:data:`LIKELIHOOD`)
    an importance-weighted estimate of log p(x) per row;
``evaluation_figures(reference, rows, ...)``
    figures only this model can give (``linear-ae``: its angle to PCA's subspace);
``training_batch_size(rows, requested)``, ``training_verdict(train, device)``
    the rows per step it trains on (``linear-ae``: all, for full-batch L-BFGS) and what it
    says about its own fit when training ends.

A model class is built as ``cls(modalities, config, fusion=..., private_labels=...)``:
``fusion`` is an instance of the run's fusion plugin when :attr:`needs_fusion` is set (None
otherwise), ``private_labels`` the label names fitted for private latents (e.g. singers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from .batch import Batch
from .config import ModelConfig
from .errors import UsageError
from .experts import GaussianExpert
from .modality import Modality

if TYPE_CHECKING:
    from .dataset import TensorData
    from .fusion import Fusion
    from .verdict import Finding

#: ``decode(z, targets, private)`` turns latents into data (interpolation, prior samples)
DECODE = "decode"
#: ``generate`` produces modalities that were not given (text -> image)
CROSS_MODAL = "cross-modal"
#: ``generate`` with nothing given samples the prior
PRIOR = "prior"
#: ``log_likelihood(batch, k)`` estimates log p(x)
LIKELIHOOD = "likelihood"
CAPABILITIES = (DECODE, CROSS_MODAL, PRIOR, LIKELIHOOD)


@dataclass
class LossOutput:
    """A training step's scalar loss to minimise and its named terms (detached, for logging)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Posterior(Protocol):
    """What an encoding's shared part offers: a point estimate and samples, ``(B, D)``."""

    def mean(self) -> torch.Tensor: ...

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor: ...


@dataclass
class PointPosterior:
    """A deterministic code (the classic autoencoders): its samples are the code itself."""

    z: torch.Tensor

    def mean(self) -> torch.Tensor:
        return self.z

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.z


@dataclass
class GaussianPosterior:
    """One diagonal Gaussian per row (a single-modality VAE)."""

    expert: GaussianExpert

    def mean(self) -> torch.Tensor:
        return self.expert.mu

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.expert.rsample(generator)


@dataclass
class Encoding:
    """What a model reads from a batch: the shared posterior and, by modality name, the
    private posterior of every modality that has one (rows that lack the modality get a
    meaningless value there: mask them with ``batch.present``)."""

    shared: Posterior
    private: dict[str, GaussianExpert] = field(default_factory=dict)

    def mean(self) -> torch.Tensor:
        """The shared latent means ``(B, D)``: features, dimensionality reduction."""
        return self.shared.mean()

    def private_mean(self, modality: str) -> torch.Tensor:
        """The private latent means ``(B, P)`` of ``modality``."""
        if modality not in self.private:
            raise UsageError(f"the '{modality}' modality has no private latent in this model")
        return self.private[modality].mu


class AutoencoderModel(nn.Module):
    """Base class of ``--model`` choices, registered through ``polyvae_register_models``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: classic models take exactly one modality
    single_modality: ClassVar[bool] = False
    #: False for models that update their own weights in ``forward`` (recirculation)
    uses_backprop: ClassVar[bool] = True
    #: True when the model combines experts with the run's fusion plugin (``--fusion``)
    needs_fusion: ClassVar[bool] = False
    #: what the model can do beyond encoding and reconstructing (see the module docstring)
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, *,
                 fusion: "Fusion | None" = None, private_labels: dict[str, list[str]] | None = None):
        super().__init__()
        if self.single_modality and len(modalities) != 1:
            raise UsageError(f"--model {self.name} takes exactly one modality, got "
                             f"{', '.join(modalities) or 'none'}; choose one with --modalities")
        if self.needs_fusion and fusion is None:
            raise UsageError(f"--model {self.name} needs a fusion (--fusion)")
        self.modalities = modalities
        self.config = config

    @property
    def latent_dim(self) -> int:
        """Width of the shared latent (what :meth:`encode` means and :meth:`decode` takes)."""
        return self.config.latent_dim

    @property
    def private_dims(self) -> dict[str, int]:
        """Width of each modality's private latent, for the modalities that have one."""
        return {}

    def supports(self, capability: str) -> bool:
        """Whether :attr:`capabilities` declares ``capability``."""
        return capability in self.capabilities

    def require(self, capability: str, what: str) -> None:
        """A :class:`UsageError` saying this model cannot do ``what`` unless it declares ``capability``."""
        if not self.supports(capability):
            raise UsageError(f"--model {self.name} cannot {what}")

    # ---- the contract -------------------------------------------------------------------
    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        """Loss of one training batch; ``epoch`` is fractional progress (for annealing)."""
        raise NotImplementedError

    def encode(self, batch: Batch) -> Encoding:
        """The shared posterior of each row from its present modalities, and private posteriors."""
        raise NotImplementedError

    def features(self, batch: Batch) -> torch.Tensor:
        """Latent means ``(B, latent_dim)`` of each row: ``encode(batch).mean()``."""
        return self.encode(batch).mean()

    def decode(self, z: torch.Tensor, targets: list[str],
               private: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Data-space estimates of ``targets`` from shared latents ``z`` ``(N, D)``; ``private[m]``
        ``(N, P)`` sets a modality's private latent (its prior mean when absent). Needs :data:`DECODE`."""
        self.require(DECODE, "decode latents")
        raise NotImplementedError

    def reconstruct(self, batch: Batch, private: dict[str, torch.Tensor] | None = None
                    ) -> dict[str, torch.Tensor]:
        """Decoded data-space estimate of each present modality for every row; ``private[m]``
        ``(B, P)`` replaces that modality's own private latent (a voice converted to another
        singer's, what is said kept)."""
        raise NotImplementedError

    def frame_codes(self, modality: str, x: torch.Tensor) -> torch.Tensor | None:
        """What is said in every frame of ``modality``'s examples ``x`` ``(N, *shape)``,
        ``(N, T, K)``, as the model's decoder of that modality reads it
        (:meth:`~polyvae.core.modality.Modality.frame_codes`). Default: None."""
        return None

    def generate(self, given: Batch, targets: list[str], generator: torch.Generator | None = None,
                 sample: bool = True, private: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
        """Targets decoded from the modalities present in ``given`` (the prior when none is,
        for models with :data:`PRIOR`); ``private`` as in :meth:`decode`."""
        raise NotImplementedError

    def reconstruction_error(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-row error ``(B,)`` of each present modality (anomaly scores)."""
        recon = self.reconstruct(batch)
        return {m: self.modalities[m].distance(recon[m], batch.data[m]) for m in recon}

    def log_likelihood(self, batch: Batch, k: int = 32) -> torch.Tensor:
        """Importance-weighted estimate of log p(x_present) per row ``(B,)`` with ``k``
        samples (noise from the global torch generator). Needs :data:`LIKELIHOOD`."""
        self.require(LIKELIHOOD, "estimate log-likelihoods")
        raise NotImplementedError

    def training_batch_size(self, rows: int, requested: int) -> int:
        """Rows per training step (all processes together) on ``rows`` training rows, when
        ``--batch-size`` asks for ``requested``. Called once before the optimiser is made, so
        a model may still settle :attr:`uses_backprop` here. Default: ``requested``
        (``linear-ae``: every row, for its full-batch L-BFGS, when they fit)."""
        return requested

    def training_verdict(self, train: "TensorData", device: torch.device) -> list["Finding"]:
        """What only this model can tell, after training, about how well it fits its
        training rows ``train``: findings added to the run's verdict (``linear-ae``: its
        angle to PCA's subspace). Default: none."""
        return []

    def evaluation_figures(self, reference: "TensorData", rows: "TensorData", device: torch.device,
                           seed: int = 0) -> dict[str, Any]:
        """Figures only this model can give, added to ``polyvae evaluate``'s report under their
        keys; ``reference`` are real rows to fit on, ``rows`` the evaluated ones. Default: none."""
        return {}
