"""The MVAE objective: ELBOs of sub-sampled subsets, KL annealing, likelihood balancing.

For every row and every sampled subset S of modalities that the row fully has, the term is

    ELBO_S = E_{q(z | x_S)} [ sum_{m present} lambda_m log p(x_m | z, w_m) ]
             - beta KL(q(z | x_S) || N(0, I)) - beta sum_{m present} KL(q(w_m | x_m) || N(0, I))

i.e. each subset's posterior must explain *all* of the row's observed modalities (a valid
lower bound on log p(x) for any q, as in MoPoE): ``reconstruct = "all"``, the default.
Wu & Goodman's MVAE reconstructs only the subset's own modalities (``reconstruct =
"subset"``: the sums over m run over the subset, a bound on log p(x_S)); it decodes fewer
rows, so it trains faster, but reconstructing the others too is what makes
single-modality posteriors generate the other modalities coherently. The sampled subsets
are the joint, each single modality and ``k`` random subsets of intermediate size. Rows
missing some modality contribute only the subsets they have, and reconstruct only what
they have.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .batch import Batch
from .config import ModelConfig
from .errors import UsageError
from .experts import ExpertStack, GaussianExpert
from .labels import LabelHead
from .modality import Modality

if TYPE_CHECKING:
    from .mvae import MultimodalVAE


#: which modalities a subset's ELBO reconstructs: every observed one, or the subset's own
RECONSTRUCT = ("all", "subset")


def check_reconstruct(value: str) -> str:
    if value not in RECONSTRUCT:
        raise UsageError(f"unknown reconstruct setting '{value}'; use {' or '.join(RECONSTRUCT)}")
    return value


class SubsetSampler:
    """Subsets for one step as a bool ``(S, M)``: joint, each unimodal, k random others."""

    def __init__(self, num_modalities: int, k_random: int):
        self.m = num_modalities
        self.k = k_random
        eye = torch.eye(num_modalities, dtype=torch.bool)
        joint = torch.ones(1, num_modalities, dtype=torch.bool)
        self.fixed = joint if num_modalities == 1 else torch.cat([joint, eye])

    def sample(self, device=None) -> torch.Tensor:
        if self.m < 3 or self.k <= 0:
            return self.fixed.to(device)
        sizes = torch.randint(2, self.m, (self.k,))
        ranks = torch.rand(self.k, self.m).argsort(1).argsort(1)        # random permutation ranks
        extra = ranks < sizes[:, None]
        return torch.cat([self.fixed, extra]).to(device)


def beta_at(config: ModelConfig, epoch: float) -> float:
    """KL weight after ``epoch`` (fractional) epochs: linear warm-up to ``config.beta``."""
    if config.kl_warmup_epochs <= 0:
        return config.beta
    return config.beta * min(1.0, max(epoch, 0.0) / config.kl_warmup_epochs)


def likelihood_weights(modalities: dict[str, Modality], config: ModelConfig) -> dict[str, float]:
    """lambda_m per modality.

    "balanced": ``reference_elements / elements_m`` so a 10-character text and a
    1024-pixel image weigh alike; "none": 1. User weights multiply either.
    """
    weights = {}
    for name, mod in modalities.items():
        base = 1.0
        if config.likelihood_weighting == "balanced":
            base = config.reference_elements / max(1, mod.num_elements())
        weights[name] = base * float(config.likelihood_weights.get(name, 1.0))
    return weights


def subset_elbo(model: "MultimodalVAE", batch: Batch, stack: ExpertStack, private: dict[str, GaussianExpert],
                subsets: torch.Tensor, beta: float | torch.Tensor, reconstruct: str = "all",
                sibling_of: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean over rows of the summed subset ELBOs, and logging terms.

    Vectorised: the S subsets are folded into the batch dimension, so the fusion runs once
    on ``(M, S*B, D)`` and each decoder runs once on the (component, subset, row) triples
    that reconstruct its modality; when that is all of them (paired data), with no
    gather or scatter at all. ``sibling_of[m]`` ``(B,)``, when given, says whose private
    latent each row's decoder of modality ``m`` gets (:func:`siblings`).
    """
    M, B, D = stack.mu.shape
    S = subsets.shape[0]
    present = stack.present                                             # (M, B)
    covered = (~subsets[:, :, None] | present[None]).all(1)             # (S, B): row has all of S
    in_subset = (subsets[:, :, None] & present[None]).permute(1, 0, 2)  # (M, S, B)
    folded = ExpertStack(stack.mu[:, None].expand(M, S, B, D).reshape(M, S * B, D),
                         stack.logvar[:, None].expand(M, S, B, D).reshape(M, S * B, D),
                         in_subset.reshape(M, S * B))
    post = model.fusion.fuse(folded)
    C = post.num_components
    z = post.rsample_stratified()                                       # (C, S*B, D)
    kl = post.kl_per_component(z).view(C, S, B)
    weights = post.weights.view(C, S, B)
    active = covered[None] & (weights > 0)                              # (C, S, B)
    targets = subsets if reconstruct == "subset" else torch.ones_like(subsets)   # (S, M)

    trunk = model.trunk(z.reshape(C * S * B, D))
    row_of = torch.arange(B, device=z.device).repeat(C * S)             # flat index -> row
    # paired rows and every modality reconstructed: decode all C*S*B triples, no gather and
    # no data-dependent shapes (the path torch.compile captures in one graph)
    dense = batch.complete and reconstruct == "all"
    ll = torch.zeros(C * S * B, device=z.device, dtype=torch.float32)
    terms: dict[str, torch.Tensor] = {}
    kl_private = torch.zeros(S, B, device=z.device)
    for i, m in enumerate(model.order):
        idx = None
        if not dense:
            decoded = (active & present[i][None, None] & targets[None, :, i, None]).reshape(-1)
            if not bool(decoded.all()):
                idx = decoded.nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
        rows = row_of if idx is None else row_of[idx]
        w = None
        if m in private:
            w = private[m].rsample()                                    # one draw per row, every subset
            if sibling_of is not None and m in sibling_of:
                w = w[sibling_of[m]]
            pays = present[i][None] & targets[:, i, None]                # (S, B)
            kl_private = kl_private + private[m].kl_to_standard_normal()[None] * pays
        h = trunk if idx is None else trunk[idx]
        log_lik = model.score(h, m, batch.data[m], w, rows)
        weighted = model.weights[m] * log_lik
        ll = ll + weighted if idx is None else ll.index_add(0, idx, weighted)
        terms[f"nll/{m}"] = -log_lik.detach().mean()

    per = ll.view(C, S, B) - beta * kl
    per = torch.where(active, weights * per, torch.zeros_like(per)).sum(0)   # (S, B)
    per = per - beta * kl_private
    elbo_rows = torch.where(covered, per, torch.zeros_like(per)).sum(0)      # (B,)
    counted = covered.sum().clamp_min(1)
    kl_subsets = torch.where(active, weights * kl, torch.zeros_like(kl)).sum(0)   # (S, B)
    terms["kl"] = (torch.where(covered, kl_subsets, torch.zeros_like(kl_subsets)).sum() / counted).detach()
    if private:
        terms["kl_private"] = kl_private[0].detach().mean()       # subset 0 is the joint
    terms["beta"] = torch.as_tensor(beta).detach()
    elbo = elbo_rows.mean()
    terms["elbo"] = elbo.detach()
    return elbo, terms


def siblings(labels: torch.Tensor) -> torch.Tensor:
    """For each row ``(B,)`` of label ids (-1: none), a random other row of the batch with the
    same label, or the row itself when it has none."""
    b = labels.shape[0]
    same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    same = same & ~torch.eye(b, dtype=torch.bool, device=labels.device)
    score = torch.where(same, torch.rand(b, b, device=labels.device), torch.full((b, b), -1.0, device=labels.device))
    pick = score.argmax(1)
    return torch.where(same.any(1), pick, torch.arange(b, device=labels.device))


#: probability of its own label above which a row no longer pays the label term
LABEL_CONFIDENCE = 0.9


def private_label_loss(private: dict[str, GaussianExpert], labels: dict[str, torch.Tensor],
                       heads: dict[str, LabelHead]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of each row's label under its private latent mean, summed over modalities.

    Averaged over the rows with a label (``labels[m] >= 0``); a row pays its cross-entropy
    less ``log(1 / LABEL_CONFIDENCE)``, never below 0.
    """
    total = torch.zeros((), device=next(iter(heads.values())).centres.device)
    terms: dict[str, torch.Tensor] = {}
    for m, head in heads.items():
        if m not in labels or m not in private:
            continue
        ids = labels[m]
        known = ids >= 0
        logits = head.logits(private[m].mu.float())                                   # (B, K)
        # once a row names its label with LABEL_CONFIDENCE it is left alone: the term
        # separates voices the latent confuses without pulling apart those it tells apart
        ce = (F.cross_entropy(logits, ids.clamp_min(0), reduction="none") + math.log(LABEL_CONFIDENCE)).relu()
        loss = torch.where(known, ce, torch.zeros_like(ce)).sum() / known.sum().clamp_min(1)
        total = total + loss
        terms[f"label_ce/{m}"] = loss.detach()
    return total, terms
