"""Product of experts with a N(0, I) prior expert (MVAE, Wu & Goodman 2018)."""
from __future__ import annotations

from polyvae.core.experts import ExpertStack, product_of_experts
from polyvae.core.fusion import FusedPosterior, Fusion
from polyvae.core.hookspecs import hookimpl


class ProductOfExperts(Fusion):
    name = "poe"
    description = "product of Gaussian experts with a N(0, I) prior expert (MVAE)"

    def fuse(self, experts: ExpertStack) -> FusedPosterior:
        g = product_of_experts(experts, prior_expert=True)
        weights = g.mu.new_ones(1, g.mu.shape[0])
        return FusedPosterior(g.mu[None], g.logvar[None], weights)


@hookimpl
def polyvae_register_fusions(register):
    register(ProductOfExperts)
