"""Importance-weighted estimate of log p(x) for multimodal VAEs (Burda et al. 2016).

    log p(x) >= E[ log (1/K) sum_k p(x | z_k, w_k) p(z_k) p(w_k) / (q(z_k | x) q(w_k | x)) ]

with z_k drawn from the fused posterior of all present modalities and w_k from each
modality's private posterior. Likelihoods are the raw (unweighted) ones, so the figure is
in nats per row and comparable across runs and fusions.
"""
from __future__ import annotations

import math

import torch

from polyvae.core.dataset import TensorData
from polyvae.core.experts import standard_normal_log_prob


@torch.no_grad()
def iwae_log_likelihood(model, data: TensorData, k: int = 32, batch_size: int = 64,
                        device="cpu", seed: int = 0) -> float:
    """Mean over rows of the K-sample importance-weighted bound on log p(x_present)."""
    if not hasattr(model, "fusion"):
        raise TypeError("the importance-weighted estimate needs a multimodal VAE")
    torch.manual_seed(seed)
    total, rows = 0.0, 0
    for start in range(0, len(data), batch_size):
        batch = data.batch(slice(start, start + batch_size)).to(device)
        b = batch.size
        repeated = batch.select(torch.arange(b, device=device).repeat(k))      # (K*B) rows
        stack, private = model.experts(repeated)
        post = model.fusion.fuse(stack)
        z = post.sample()
        log_w = standard_normal_log_prob(z) - post.log_prob(z)
        trunk = model._trunk(z)
        for i, m in enumerate(model.order):
            have = repeated.present[m]
            w = None
            if m in private:
                w = private[m].rsample()
                log_w = log_w + torch.where(have, standard_normal_log_prob(w) - private[m].log_prob(w),
                                            torch.zeros_like(log_w))
            x = repeated.data[m]
            params = model.decoders[m](model._decoder_input(trunk, m, w), x)
            ll = model.modalities[m].log_likelihood(params, x).float()
            log_w = log_w + torch.where(have, ll, torch.zeros_like(ll))
        bound = torch.logsumexp(log_w.view(k, b), dim=0) - math.log(k)
        total += float(bound.sum())
        rows += b
    return total / max(rows, 1)
