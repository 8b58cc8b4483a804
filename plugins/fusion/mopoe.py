"""Mixture of products of experts (MoPoE, Sutter et al. 2021).

There is one component per non-empty subset ``s`` of the M modalities (``C = 2^M - 1``,
in the order of :func:`all_subsets`), and component ``s`` is the product of the experts
in ``s`` with a N(0, I) prior expert (:func:`polyvae.core.experts.product_of_experts`).

Missing modalities. MoPoE's posterior for a row is the uniform mixture over the
non-empty subsets *of the modalities the row has*. A subset that contains a missing
modality fuses, after dropping it, to the same product as a smaller subset: a
duplicate. Those get weight 0, and only the subsets fully contained in the present set
are weighted (uniformly, ``1 / (2^k - 1)`` each for k present modalities). Weighting
every subset that meets the present set instead would give the same mixture (each
distinct product is repeated ``2^(M-k)`` times), but would spend a stratified sample and
a decoder pass on every duplicate. The duplicates are still computed (over the present
part of the subset), so every component is finite. A row with nothing present gets the
prior as its single weighted component.

All subsets are fused at once by :func:`polyvae.core.experts.subset_products`: two matrix
products with the subset-membership matrix, no expert copied per subset, no Python loop
over subsets or rows.
"""
from __future__ import annotations

import torch

from polyvae.core.errors import UsageError
from polyvae.core.experts import ExpertStack, subset_products
from polyvae.core.fusion import FusedPosterior, Fusion, uniform_weights
from polyvae.core.hookspecs import hookimpl

#: 2^12 - 1 = 4095 components per row is already far beyond what is useful
MAX_MODALITIES = 12


def all_subsets(num_modalities: int, device=None) -> torch.Tensor:
    """Bool ``(2^M - 1, M)``: row ``c`` is the subset whose bitmask is ``c + 1``."""
    codes = torch.arange(1, 2 ** num_modalities, device=device)
    bits = 2 ** torch.arange(num_modalities, device=device)
    return (codes[:, None] & bits[None, :]) != 0


class MixtureOfProductsOfExperts(Fusion):
    name = "mopoe"
    description = "mixture over subsets of products of experts with a prior expert (MoPoE)"

    def fuse(self, experts: ExpertStack) -> FusedPosterior:
        M = experts.num_experts
        if M > MAX_MODALITIES:
            raise UsageError(f"mopoe fusion needs 2^M - 1 components; {M} modalities is too many "
                             f"(at most {MAX_MODALITIES}); use poe or moe")
        subsets = all_subsets(M, experts.mu.device)                     # (C, M)
        present = experts.present                                       # (M, B)
        product = subset_products(experts, subsets, prior_expert=True)     # (C, B, D)
        contained = (~subsets[:, :, None] | present[None]).all(1)       # (C, B): s within present
        contained[0] |= ~present.any(0)   # nothing given: component 0 is the prior expert alone
        weights = uniform_weights(contained, product.mu.dtype)
        return FusedPosterior(product.mu, product.logvar, weights)


@hookimpl
def polyvae_register_fusions(register):
    register(MixtureOfProductsOfExperts)
