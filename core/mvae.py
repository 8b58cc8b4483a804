"""The multimodal VAE: per-modality Gaussian experts, a fusion, per-modality decoders.

One training step encodes every modality once, fuses the experts for every sub-sampled
subset in a single vectorised call (subsets are folded into the batch dimension), decodes
each modality only for the rows that have it, and sums the subset ELBOs.
"""
from __future__ import annotations

import torch
from torch import nn

from .batch import Batch
from .config import ModelConfig
from .experts import ExpertStack, GaussianExpert
from .fusion import FusedPosterior, Fusion
from .labels import LabelHead
from .modality import Modality
from .models import AutoencoderModel, LossOutput
from .objective import (SubsetSampler, beta_at, check_reconstruct, likelihood_weights, private_label_loss,
                        subset_elbo)


class SharedBackbone(nn.Module):
    """One decoder trunk shared by all modalities (``--shared-decoder``)."""

    def __init__(self, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.SiLU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.SiLU())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MultimodalVAE(AutoencoderModel):
    name = "mvae"
    uses_fusion = True
    uses_private_labels = True
    description = "multimodal VAE: Gaussian experts, fusion (poe|moe|mopoe), MVAE sub-sampling"

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, fusion: Fusion,
                 private_labels: dict[str, list[str]] | None = None):
        super().__init__(modalities, config)
        self.order = list(modalities)
        self.fusion = fusion
        d = config.latent_dim
        self.encoders = nn.ModuleDict({m: mod.build_encoder(d) for m, mod in modalities.items()})
        self.backbone = SharedBackbone(d, config.hidden_dim) if config.shared_decoder else None
        trunk = config.hidden_dim if config.shared_decoder else d
        self.decoders = nn.ModuleDict({m: mod.build_decoder(trunk + mod.private_dim)
                                       for m, mod in modalities.items()})
        self.weights = likelihood_weights(modalities, config)
        self.subsets = SubsetSampler(len(self.order), config.k_subsets)
        # a learnt centre per label value (e.g. per singer) in each private latent's space
        supervised = {m: names for m, names in (private_labels or {}).items()
                      if config.private_supervision > 0 and m in modalities and modalities[m].private_dim}
        self.label_heads = nn.ModuleDict({m: LabelHead(len(names), modalities[m].private_dim)
                                          for m, names in supervised.items()})
        check_reconstruct(config.reconstruct)

    # ---- encoding -----------------------------------------------------------------------
    def experts(self, batch: Batch) -> tuple[ExpertStack, dict[str, GaussianExpert]]:
        """Shared experts of every modality ``(M, B, D)`` and each modality's private expert."""
        d = self.latent_dim
        mus, logvars, present, private = [], [], [], {}
        for m in self.order:
            mu, logvar = self.encoders[m](batch.data[m])
            mus.append(mu[:, :d])
            logvars.append(logvar[:, :d])
            present.append(batch.present[m])
            if self.modalities[m].private_dim:
                private[m] = GaussianExpert(mu[:, d:], logvar[:, d:])
        return ExpertStack(torch.stack(mus), torch.stack(logvars), torch.stack(present)), private

    def posterior(self, batch: Batch) -> FusedPosterior:
        """q(z | modalities present in each row)."""
        stack, _ = self.experts(batch)
        return self.fusion.fuse(stack)

    def encode(self, batch: Batch) -> torch.Tensor:
        return self.posterior(batch).mean()

    # ---- decoding -----------------------------------------------------------------------
    def _trunk(self, z: torch.Tensor) -> torch.Tensor:
        return self.backbone(z) if self.backbone is not None else z

    def _decoder_input(self, trunk: torch.Tensor, m: str, private: torch.Tensor | None) -> torch.Tensor:
        p = self.modalities[m].private_dim
        if not p:
            return trunk
        if private is None:
            private = torch.zeros(trunk.shape[0], p, device=trunk.device, dtype=trunk.dtype)
        return torch.cat([trunk, private.to(trunk.dtype)], dim=-1)

    def decode(self, z: torch.Tensor, targets: list[str],
               private: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Data-space estimates of ``targets`` from shared latents ``z`` ``(N, D)``.

        ``private[m]`` ``(N, P)`` sets a modality's private latent (e.g. a singer's voice);
        without it the prior mean (zero) is used.
        """
        trunk = self._trunk(z)
        private = private or {}
        return {m: self.modalities[m].generate(self.decoders[m],
                                              self._decoder_input(trunk, m, private.get(m)))
                for m in targets}

    def reconstruct(self, batch: Batch) -> dict[str, torch.Tensor]:
        stack, private = self.experts(batch)
        z = self.fusion.fuse(stack).mean()
        present = [m for m in self.order if bool(batch.present[m].any())]
        return self.decode(z, present, {m: e.mu for m, e in private.items()})

    def generate(self, given: Batch, targets: list[str], generator: torch.Generator | None = None,
                 sample: bool = True, private: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
        stack, own_private = self.experts(given)
        post = self.fusion.fuse(stack)
        z = post.sample(generator) if sample else post.mean()
        chosen = {m: e.mu for m, e in own_private.items() if bool(given.present[m].all())}
        chosen.update(private or {})
        return self.decode(z, targets, chosen)

    # ---- training -----------------------------------------------------------------------
    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        subsets = self.subsets.sample(device=batch.present[self.order[0]].device)   # (S, M) bool
        beta = torch.tensor(beta_at(self.config, epoch), device=subsets.device)
        elbo, terms = self._elbo(batch, subsets, beta)
        return LossOutput(-elbo, terms)

    def _elbo(self, batch: Batch, subsets: torch.Tensor, beta: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encoders, fusion, decoders and the ELBO: tensors in, tensors out (what ``compile`` compiles)."""
        stack, private = self.experts(batch)
        elbo, terms = subset_elbo(self, batch, stack, private, subsets, beta=beta,
                                  reconstruct=self.config.reconstruct)
        if len(self.label_heads) and batch.labels:
            # not part of the ELBO: steers each private latent toward the user's labels
            penalty, label_terms = private_label_loss(private, batch.labels, dict(self.label_heads))
            elbo = elbo - self.config.private_supervision * penalty
            terms.update(label_terms)
        return elbo, terms

    def compile(self, *args, **kwargs) -> None:
        """``torch.compile`` the step's tensor work (:meth:`_elbo`), in place.

        Sampling the subsets and the KL weight stay outside, so a new weight every step
        (KL warm-up) does not recompile. On paired data with ``reconstruct = "all"`` the
        whole step is one graph; elsewhere the objective's gathers split it.
        """
        # fallback_random: draw the noise with torch's own generator, as eager does, so a
        # compiled run samples what an eager one with the same seed samples
        options = {"fallback_random": True, **kwargs.pop("options", {})}
        self._elbo = torch.compile(self._elbo, *args, options=options, **kwargs)
