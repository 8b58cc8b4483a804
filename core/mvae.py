"""The multimodal VAE: per-modality Gaussian experts, a fusion, per-modality decoders.

One training step encodes every modality once, fuses the experts for every sub-sampled
subset in a single vectorised call (subsets are folded into the batch dimension), decodes
each modality only for the rows that have it, and sums the subset ELBOs.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .batch import Batch
from .config import ModelConfig
from .experts import ExpertStack, GaussianExpert, standard_normal_log_prob
from .fusion import Fusion
from .labels import LabelHead
from .modality import Modality, with_private
from .models import CROSS_MODAL, DECODE, LIKELIHOOD, PRIOR, AutoencoderModel, Encoding, LossOutput
from .objective import (SubsetSampler, beta_at, check_reconstruct, likelihood_weights, private_label_loss,
                        siblings, subset_elbo)


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
    needs_fusion = True
    capabilities = frozenset({DECODE, CROSS_MODAL, PRIOR, LIKELIHOOD})
    description = "multimodal VAE: Gaussian experts, fusion (poe|moe|mopoe), MVAE sub-sampling"

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, *, fusion: Fusion | None = None,
                 private_labels: dict[str, list[str]] | None = None):
        super().__init__(modalities, config, fusion=fusion, private_labels=private_labels)
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

    @property
    def private_dims(self) -> dict[str, int]:
        return {m: mod.private_dim for m, mod in self.modalities.items() if mod.private_dim}

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

    def encode(self, batch: Batch) -> Encoding:
        """q(z | modalities present in each row), fused, and each private posterior."""
        stack, private = self.experts(batch)
        return Encoding(self.fusion.fuse(stack), private)

    # ---- decoding and scoring: one path for the ELBO, the IWAE estimate and generation ---
    def trunk(self, z: torch.Tensor) -> torch.Tensor:
        """What every decoder reads of ``z``: the shared backbone's features, or z itself."""
        return self.backbone(z) if self.backbone is not None else z

    def decoder_input(self, h: torch.Tensor, m: str, private: torch.Tensor | None) -> torch.Tensor:
        """``h`` (trunk rows) with modality ``m``'s private latent appended (zeros: its prior mean)."""
        return with_private(h, private, self.modalities[m].private_dim)

    def score(self, h: torch.Tensor, m: str, x: torch.Tensor, private: torch.Tensor | None = None,
              rows: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_m[rows] | h, w_m[rows]) per row of ``h`` ``(N,)`` in float32, unweighted.

        ``h`` (N, ...) is from :meth:`trunk`; ``x`` (B, ...) and ``private`` (B, P) are per
        example of the batch and ``rows`` (N,) says which example each row of ``h`` scores (all
        of them, in order, when None): the modality can compute what does not depend on ``h``
        once per example (:meth:`~polyvae.core.modality.Modality.log_likelihood_rows`).
        """
        if rows is None:
            rows = torch.arange(h.shape[0], device=h.device)
        return self.modalities[m].log_likelihood_rows(self.decoders[m], h, x, rows, private).float()

    def render_from(self, h: torch.Tensor, m: str, private: torch.Tensor | None = None,
                    x: torch.Tensor | None = None) -> torch.Tensor:
        """The data-space estimate of modality ``m`` from trunk features ``h`` (with ``x``, the
        example it reconstructs, for a modality that keeps some of it, e.g. the timing of speech)."""
        inputs = self.decoder_input(h, m, private)
        if x is None:
            return self.modalities[m].generate(self.decoders[m], inputs)
        return self.modalities[m].reconstruct(self.decoders[m], inputs, x)

    def frame_codes(self, modality: str, x: torch.Tensor) -> torch.Tensor | None:
        return self.modalities[modality].frame_codes(self.decoders[modality], x)

    def decode(self, z: torch.Tensor, targets: list[str],
               private: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        h = self.trunk(z)
        private = private or {}
        return {m: self.render_from(h, m, private.get(m)) for m in targets}

    def reconstruct(self, batch: Batch, private: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        encoding = self.encode(batch)
        chosen = {m: e.mu for m, e in encoding.private.items()}
        chosen.update(private or {})
        h = self.trunk(encoding.mean())
        return {m: self.render_from(h, m, chosen.get(m), batch.data[m])
                for m in self.order if bool(batch.present[m].any())}

    def generate(self, given: Batch, targets: list[str], generator: torch.Generator | None = None,
                 sample: bool = True, private: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
        """Targets from the given modalities; a row's own private latent mean is used for each
        modality it was given (its prior mean otherwise) unless ``private`` sets it."""
        encoding = self.encode(given)
        z = encoding.shared.sample(generator) if sample else encoding.mean()
        chosen = {m: torch.where(given.present[m][:, None], e.mu, torch.zeros_like(e.mu))
                  for m, e in encoding.private.items() if bool(given.present[m].any())}
        chosen.update(private or {})
        return self.decode(z, targets, chosen)

    def log_likelihood(self, batch: Batch, k: int = 32) -> torch.Tensor:
        """Importance-weighted bound (Burda et al. 2016) on log p(x_present) per row ``(B,)``:

            log (1/K) sum_k p(x | z_k, w_k) p(z_k) p(w_k) / (q(z_k | x) q(w_k | x))

        with z_k from the fused posterior of the present modalities and w_k from each private
        posterior. Likelihoods are unweighted, so the figure is in nats per row and compares
        across runs and fusions.
        """
        b = batch.size
        repeated = batch.select(torch.arange(b, device=batch.present[self.order[0]].device).repeat(k))
        stack, private = self.experts(repeated)
        post = self.fusion.fuse(stack)
        z = post.sample()
        log_w = standard_normal_log_prob(z) - post.log_prob(z)
        h = self.trunk(z)
        for m in self.order:
            have = repeated.present[m]
            w = None
            if m in private:
                w = private[m].rsample()
                log_w = log_w + torch.where(have, standard_normal_log_prob(w) - private[m].log_prob(w),
                                            torch.zeros_like(log_w))
            ll = self.score(h, m, repeated.data[m], w)          # every row its own example
            log_w = log_w + torch.where(have, ll, torch.zeros_like(ll))
        return torch.logsumexp(log_w.view(k, b), dim=0) - math.log(k)

    # ---- training -----------------------------------------------------------------------
    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        subsets = self.subsets.sample(device=batch.present[self.order[0]].device)   # (S, M) bool
        beta = torch.tensor(beta_at(self.config, epoch), device=subsets.device)
        sibling_of = None
        if self.training and self.config.private_from_sibling:
            sibling_of = {m: siblings(ids) for m, ids in batch.labels.items() if m in self.private_dims}
        elbo, terms = self._elbo(batch, subsets, beta, sibling_of or None)
        return LossOutput(-elbo, terms)

    def _elbo(self, batch: Batch, subsets: torch.Tensor, beta: torch.Tensor,
              sibling_of: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encoders, fusion, decoders and the ELBO: tensors in, tensors out (what ``compile`` compiles)."""
        stack, private = self.experts(batch)
        elbo, terms = subset_elbo(self, batch, stack, private, subsets, beta=beta,
                                  reconstruct=self.config.reconstruct, sibling_of=sibling_of)
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
        if kwargs.get("backend", "inductor") == "inductor":
            # fallback_random: draw the noise with torch's own generator, as eager does, so a
            # compiled run samples what an eager one with the same seed samples
            kwargs["options"] = {"fallback_random": True, **kwargs.get("options", {})}
        self._elbo = torch.compile(self._elbo, *args, **kwargs)
