"""``--model ae``, ``sparse-ae`` and ``denoising-ae``: fully connected autoencoders.

The data is flattened to ``(B, D)``; encoder ``D -> hidden... -> latent`` and decoder
``latent -> ...hidden -> D`` mirror each other. The loss is the reconstruction error (squared
error, mean over elements then over present rows) plus, for the variants, their own term.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.errors import UsageError
from polyvae.core.modality import Modality
from polyvae.core.models import LossOutput

from .common import ACTIVATIONS, ClassicAutoencoder, check_choice, check_range, masked_mean, mlp, psnr, row_mse

UNIT_CHOICES = tuple(ACTIVATIONS)


@dataclass
class DenseOptions:
    """``config.extra`` of ``ae`` (and the base of the variants' options)."""

    #: widths of the hidden layers between data and code; default: [hidden_dim] of the run
    hidden: list[int] | None = None
    #: activation between hidden layers
    activation: str = "silu"
    #: activation of the code (latent) layer
    code_activation: str = "linear"
    #: activation of the reconstruction: "linear" (any data) or "sigmoid" (data in [0, 1])
    output: str = "linear"

    def __post_init__(self):
        for key in ("activation", "code_activation", "output"):
            check_choice(self.model_name(), key, getattr(self, key), UNIT_CHOICES)
        for width in self.hidden or []:
            check_range(self.model_name(), "hidden", width, 1, 1_000_000)

    @staticmethod
    def model_name() -> str:
        return "ae"


class DenseAutoencoder(ClassicAutoencoder):
    """The vanilla autoencoder: deterministic code, squared-error reconstruction."""

    name = "ae"
    description = "fully connected autoencoder on squared error"
    options_class = DenseOptions

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, **context):
        super().__init__(modalities, config, **context)
        o = self.options
        hidden = [config.hidden_dim] if o.hidden is None else list(o.hidden)
        sizes = [self.n_features, *hidden, config.latent_dim]
        self.encoder = mlp(sizes, o.activation, o.code_activation)
        self.decoder = mlp(sizes[::-1], o.activation, o.output)

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.unflatten(self.decoder(z))

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        x, present = self.inputs(batch)
        recon = masked_mean(row_mse(self.reconstruct_x(x), x), present)
        return LossOutput(recon, {"recon": recon.detach()})


# ---- sparse -------------------------------------------------------------------------------
@dataclass
class SparseOptions(DenseOptions):
    """``config.extra`` of ``sparse-ae``: the code is sigmoid so activations are in (0, 1)."""

    code_activation: str = "sigmoid"
    #: "kl": sum_j KL(rho || rho_hat_j); "l1": sum_j |rho - rho_hat_j|
    sparsity: str = "kl"
    #: target average activation of each code unit
    rho: float = 0.05
    #: weight of the sparsity term against the reconstruction error (a per-element mean, so
    #: the balance does not depend on the data size); raise it for sparser, blurrier codes
    sparsity_weight: float = 0.003

    def __post_init__(self):
        super().__post_init__()
        check_choice("sparse-ae", "sparsity", self.sparsity, ("kl", "l1"))
        check_range("sparse-ae", "rho", self.rho, 0.0, 1.0, low_open=True, high_open=True)
        check_range("sparse-ae", "sparsity_weight", self.sparsity_weight, 0.0, 1e6)
        if self.code_activation != "sigmoid":
            check_choice("sparse-ae", "code_activation", self.code_activation, ("sigmoid",))

    @staticmethod
    def model_name() -> str:
        return "sparse-ae"


def sparsity_penalty(rho_hat: torch.Tensor, rho: float, form: str) -> torch.Tensor:
    """``sum_j KL(rho || rho_hat_j)`` (form "kl") or ``sum_j |rho - rho_hat_j|`` (form "l1")."""
    if form == "l1":
        return (rho - rho_hat).abs().sum()
    q = rho_hat.clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()


class SparseAutoencoder(DenseAutoencoder):
    """Autoencoder whose code units are active (near 1) on only a share ``rho`` of the rows.

    ``rho_hat_j`` is unit j's mean activation over the batch's present rows.
    """

    name = "sparse-ae"
    description = "sparse autoencoder: sigmoid code, KL or L1 penalty towards average activation rho"
    options_class = SparseOptions

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        x, present = self.inputs(batch)
        code = self.encode_x(x)
        recon = masked_mean(row_mse(self.decode_z(code), x), present)
        weights = present.to(code.dtype)[:, None]
        count = weights.sum()
        rho_hat = (code * weights).sum(0) / count.clamp(min=1.0)
        o = self.options
        penalty = sparsity_penalty(rho_hat, o.rho, o.sparsity) * (count > 0).to(code.dtype)
        loss = recon + o.sparsity_weight * penalty
        return LossOutput(loss, {"recon": recon.detach(), "sparsity": penalty.detach(),
                                 "mean_activation": rho_hat.mean().detach()})

    @torch.no_grad()
    def mean_activation(self, batch: Batch) -> torch.Tensor:
        """Each code unit's average activation over the batch's present rows, ``(latent,)``."""
        x, present = self.inputs(batch)
        code = self.encode_x(x)[present]
        return code.mean(0) if code.shape[0] else torch.zeros(code.shape[1], device=code.device)


# ---- denoising ----------------------------------------------------------------------------
@dataclass
class DenoisingOptions(DenseOptions):
    """``config.extra`` of ``denoising-ae``."""

    #: "gaussian": add N(0, noise_level^2); "masking": set a share noise_level of the elements to 0
    noise: str = "gaussian"
    noise_level: float = 0.3
    #: clip the corrupted input to [low, high], e.g. [0, 1] for images saved to a file
    clip: list[float] | None = None

    def __post_init__(self):
        super().__post_init__()
        check_choice("denoising-ae", "noise", self.noise, ("gaussian", "masking"))
        high = 1.0 if self.noise == "masking" else 1e6
        check_range("denoising-ae", "noise_level", self.noise_level, 0.0, high)
        if self.clip is not None and (len(self.clip) != 2 or self.clip[0] >= self.clip[1]):
            raise UsageError(f"--model denoising-ae: option clip must be [low, high] with low < high, "
                             f"got {self.clip}")

    @staticmethod
    def model_name() -> str:
        return "denoising-ae"


def corrupt(x: torch.Tensor, noise: str, level: float, generator: torch.Generator | None = None,
            clip: list[float] | None = None) -> torch.Tensor:
    """``x`` with Gaussian noise of std ``level`` or a share ``level`` of elements zeroed."""
    if noise == "gaussian":
        out = x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    else:
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
        out = x * keep.to(x.dtype)
    return out.clamp(clip[0], clip[1]) if clip is not None else out


class DenoisingAutoencoder(DenseAutoencoder):
    """Trained to reconstruct the clean row from a corrupted copy; reconstructs inputs as given.

    In eval mode (validation loss) the corruption uses a fixed seed, so the numbers compare
    across epochs.
    """

    name = "denoising-ae"
    description = "denoising autoencoder: Gaussian or masking noise on the input, clean target"
    options_class = DenoisingOptions

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        o = self.options
        return corrupt(x, o.noise, o.noise_level, generator, o.clip)

    @torch.no_grad()
    def evaluation_figures(self, reference, rows, device, seed: int = 0) -> dict:
        """PSNR of corrupted and of denoised evaluated rows against the clean ones (``denoising``)."""
        m = self.modality_name
        clean = rows.data[m][rows.present[m]].to(device)
        generator = torch.Generator(device=device).manual_seed(seed)
        noisy = self.corrupt(clean.float(), generator)
        denoised = self.reconstruct_x(noisy)
        before, after = float(psnr(noisy, clean).mean()), float(psnr(denoised, clean).mean())
        return {"denoising": {"psnr_noisy_db": before, "psnr_denoised_db": after, "gain_db": after - before,
                              "noise": self.options.noise, "noise_level": self.options.noise_level}}

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        x, present = self.inputs(batch)
        generator = None if self.training else torch.Generator(device=x.device).manual_seed(0)
        noisy = self.corrupt(x, generator)
        recon = masked_mean(row_mse(self.reconstruct_x(noisy), x), present)
        noise = masked_mean(row_mse(noisy, x), present)
        return LossOutput(recon, {"recon": recon.detach(), "input_noise": noise.detach()})
