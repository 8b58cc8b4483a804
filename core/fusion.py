"""What a fusion plugin returns: q(z | present modalities) as a Gaussian mixture.

A product of experts is a mixture with one component; a mixture of experts has one
component per modality; a mixture of products has one per subset. Sampling is
stratified (one z per component, weighted by the component's weight), which is the
estimator MMVAE and MoPoE use, and with one component it is plain reparameterisation.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import torch

from .experts import (ExpertStack, at_least_float32, gaussian_log_prob, kl_to_standard_normal,
                      standard_normal_like, standard_normal_log_prob)


@dataclass
class FusedPosterior:
    """Mixture of C diagonal Gaussians per example.

    ``mu``/``logvar``: ``(C, B, D)``; ``weights``: ``(C, B)``, summing to 1 over C for every
    row (components that do not exist for a row have weight 0).
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    weights: torch.Tensor

    @property
    def num_components(self) -> int:
        return self.mu.shape[0]

    def rsample_stratified(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One reparameterised sample per component: ``(C, B, D)``."""
        return self.mu + torch.exp(0.5 * self.logvar) * standard_normal_like(self.mu, generator)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One sample per example from the mixture (component chosen by weight): ``(B, D)``."""
        choice = torch.multinomial(self.weights.T.float().clamp_min(0) + 1e-12, 1,
                                   generator=generator).squeeze(1)       # (B,)
        rows = torch.arange(self.mu.shape[1], device=self.mu.device)
        z = self.rsample_stratified(generator)
        return z[choice, rows]

    def mean(self) -> torch.Tensor:
        """Mixture mean ``(B, D)``: the point estimate used for features and generation."""
        return (self.weights[..., None] * self.mu).sum(0)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) of the mixture; ``z`` ``(..., B, D)`` broadcasts against components."""
        comp = gaussian_log_prob(z[..., None, :, :], self.mu, self.logvar)     # (..., C, B)
        logw = torch.log(self.weights.clamp_min(0))
        return torch.logsumexp(comp + logw, dim=-2)

    def kl_per_component(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || N(0, I)) for each stratified sample ``(C, B)``.

        Exact for a single Gaussian; for a mixture the one-sample Monte-Carlo estimate
        ``log q(z_c) - log p(z_c)`` at the stratified samples ``z`` (C, B, D).
        """
        if self.num_components == 1:
            return kl_to_standard_normal(self.mu, self.logvar)
        assert z is not None, "a mixture's KL needs the stratified samples"
        return self.log_prob(z) - standard_normal_log_prob(z)


class Fusion(abc.ABC):
    """Combines the experts of the present modalities into q(z | subset).

    A fusion plugin registers a subclass through ``polyvae_register_fusions``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def fuse(self, experts: ExpertStack) -> FusedPosterior:
        """The posterior for every row from the experts marked present in ``experts``.

        Must be vectorised over rows and experts, and must treat an expert whose mask is
        False exactly as if it did not exist. A row with no present expert gets the prior.
        """


def uniform_weights(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Weights ``(C, B)`` uniform over the True entries of ``mask`` per column (0/0 -> 0), in
    ``dtype`` but never narrower than float32."""
    counts = mask.sum(0, keepdim=True).clamp_min(1)
    return mask.to(at_least_float32(dtype)) / counts


def prior_posterior(batch: int, dim: int, device=None, dtype=torch.float32) -> FusedPosterior:
    """N(0, I) as a one-component posterior: what rows with nothing given get."""
    z = torch.zeros(1, batch, dim, device=device, dtype=dtype)
    return FusedPosterior(z, z.clone(), torch.ones(1, batch, device=device, dtype=dtype))


