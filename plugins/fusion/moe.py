"""Mixture of experts (MMVAE, Shi et al. 2019): q(z | X) = mean of the present experts.

Each modality's expert is one mixture component, weighted uniformly over the experts
present in the row. A missing expert keeps its slot (so every row has ``C = M``
components) with weight 0, and its parameters are replaced by N(0, I) so that every
component is finite whatever the encoder produced for the zero-filled input. A row with
no present expert gets the prior: component 0 becomes N(0, I) with weight 1.

Training uses the stratified estimator of MMVAE: one reparameterised sample per
component (:meth:`FusedPosterior.rsample_stratified`), each term weighted by its
component's weight.
"""
from __future__ import annotations

import torch

from polyvae.core.experts import LOGVAR_MAX, LOGVAR_MIN, ExpertStack
from polyvae.core.fusion import FusedPosterior, Fusion, uniform_weights
from polyvae.core.hookspecs import hookimpl


class MixtureOfExperts(Fusion):
    name = "moe"
    description = "mixture of the present Gaussian experts, uniform weights (MMVAE)"

    def fuse(self, experts: ExpertStack) -> FusedPosterior:
        present = experts.present                                         # (M, B)
        keep = present[..., None]
        mu = torch.where(keep, experts.mu, torch.zeros_like(experts.mu))
        logvar = torch.where(keep, experts.logvar.clamp(LOGVAR_MIN, LOGVAR_MAX),
                             torch.zeros_like(experts.logvar))
        valid = present.clone()
        valid[0] |= ~present.any(0)        # nothing given: component 0 (now N(0, I)) is the prior
        weights = uniform_weights(valid, mu.dtype)
        return FusedPosterior(mu, logvar, weights)


@hookimpl
def polyvae_register_fusions(register):
    register(MixtureOfExperts)
