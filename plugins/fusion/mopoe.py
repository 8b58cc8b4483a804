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

All subsets are fused at once as two matrix products with the subset-membership matrix
``A`` ``(C, M)``: with ``P_m = present_m * exp(-logvar_m)``, a subset's precision is
``T_s = 1 + (A @ P)_s`` (the 1 is the prior expert) and its mean ``(A @ (P * mu))_s / T_s``.
No expert is copied per subset and there is no Python loop over subsets or rows. To keep
the very confident and the very vague apart without overflow, the precisions are scaled by
the largest one of each (row, dimension) first (the log-sum-exp trick), and the products
run in float32 or wider even under autocast.
"""
from __future__ import annotations

import math

import torch

from polyvae.core.errors import UsageError
from polyvae.core.experts import LOGVAR_MAX, LOGVAR_MIN, ExpertStack
from polyvae.core.fusion import FusedPosterior, Fusion, uniform_weights
from polyvae.core.hookspecs import hookimpl

from .moe import weight_dtype

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
        M, B, D = experts.mu.shape
        if M > MAX_MODALITIES:
            raise UsageError(f"mopoe fusion needs 2^M - 1 components; {M} modalities is too many "
                             f"(at most {MAX_MODALITIES}); use poe or moe")
        subsets = all_subsets(M, experts.mu.device)                     # (C, M)
        C = subsets.shape[0]
        present = experts.present                                       # (M, B)
        mu, logvar = subset_products(subsets, experts)
        contained = (~subsets[:, :, None] | present[None]).all(1)       # (C, B): s within present
        contained[0] |= ~present.any(0)   # nothing given: component 0 is the prior expert alone
        weights = uniform_weights(contained).to(weight_dtype(mu.dtype))
        return FusedPosterior(mu, logvar, weights)


def subset_products(subsets: torch.Tensor, experts: ExpertStack) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and log-variance ``(C, B, D)`` of the product, with a N(0, I) prior expert, of the
    present experts in each subset (bool ``(C, M)``)."""
    M, B, D = experts.mu.shape
    dtype = weight_dtype(experts.mu.dtype)
    with torch.autocast(experts.mu.device.type, enabled=False):
        present = experts.present[..., None]                            # (M, B, 1)
        log_precision = torch.where(present, -experts.logvar.to(dtype).clamp(LOGVAR_MIN, LOGVAR_MAX),
                                    torch.full((), -math.inf, dtype=dtype, device=present.device))
        # the result does not depend on the shift, so no gradient needs to flow through it
        shift = log_precision.amax(0).clamp_min(0.0).detach()           # (B, D); prior: 0
        precision = torch.exp(log_precision - shift)                    # (M, B, D); absent: 0
        weighted_mu = precision * experts.mu.to(dtype).masked_fill(~present, 0.0)
        member = subsets.to(dtype)                                      # (C, M)
        total = torch.exp(-shift) + (member @ precision.reshape(M, B * D)).view(-1, B, D)
        mean = (member @ weighted_mu.reshape(M, B * D)).view(-1, B, D) / total
        return mean, -(shift + torch.log(total))


@hookimpl
def polyvae_register_fusions(register):
    register(MixtureOfProductsOfExperts)
