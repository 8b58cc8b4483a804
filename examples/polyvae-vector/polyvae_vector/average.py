"""``--model average-ae``: a deterministic multimodal autoencoder, written only against
polyvae's public contracts (model and modality), as any third-party model would be.

Each modality's encoder (built by the modality plugin) gives a code; a row's code z is
the average of the codes of the modalities it has. Every present modality is decoded
from the joint code and from each single modality's code, so one modality alone can
generate the others. A small term pulls each modality's code toward the joint one.

    loss = sum_S sum_{m present} -log p(x_m | z_S) / elements_m  +  align * sum_m |c_m - z|^2

over S = the joint and each single modality. No KL: the code is a point, not a
distribution (:class:`~polyvae.core.models.PointPosterior`), so the model declares
``decode`` and ``cross-modal`` but neither ``prior`` nor ``likelihood``.
"""
from __future__ import annotations

import torch
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.models import CROSS_MODAL, DECODE, AutoencoderModel, Encoding, LossOutput, PointPosterior

from . import __version__

#: weight of the term pulling single-modality codes toward the joint code
ALIGN = 0.1


class AverageAutoencoder(AutoencoderModel):
    """Codes of the present modalities averaged; every modality decoded from any of them."""

    name = "average-ae"
    version = __version__
    description = "multimodal autoencoder: modality codes averaged, every modality decoded (example plugin)"
    capabilities = frozenset({DECODE, CROSS_MODAL})

    def __init__(self, modalities, config, **context):
        super().__init__(modalities, config, **context)
        d = config.latent_dim
        self.order = list(modalities)
        self.encoders = nn.ModuleDict({m: mod.build_encoder(d) for m, mod in modalities.items()})
        self.decoders = nn.ModuleDict({m: mod.build_decoder(d + mod.private_dim)
                                       for m, mod in modalities.items()})

    # ---- codes ----------------------------------------------------------------------------
    def codes(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Each modality's code ``(M, B, D)`` (the mean its encoder gives) and presence ``(M, B)``."""
        d = self.latent_dim
        codes = torch.stack([self.encoders[m](batch.data[m])[0][:, :d] for m in self.order])
        present = torch.stack([batch.present[m] for m in self.order])
        return codes, present

    @staticmethod
    def average(codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of the codes where ``mask`` ``(M, B)`` is set; 0 for rows with none."""
        weights = mask.to(codes.dtype)[..., None]
        return (codes * weights).sum(0) / weights.sum(0).clamp_min(1.0)

    def encode(self, batch: Batch) -> Encoding:
        codes, present = self.codes(batch)
        return Encoding(PointPosterior(self.average(codes, present)))

    # ---- decoding ---------------------------------------------------------------------------
    def _input(self, z: torch.Tensor, m: str) -> torch.Tensor:
        p = self.modalities[m].private_dim
        return z if not p else torch.cat([z, z.new_zeros(z.shape[0], p)], dim=-1)

    def decode(self, z, targets, private=None):
        return {m: self.modalities[m].generate(self.decoders[m], self._input(z, m)) for m in targets}

    def reconstruct(self, batch: Batch, private=None):
        present = [m for m in self.order if bool(batch.present[m].any())]
        return self.decode(self.encode(batch).mean(), present)

    def generate(self, given, targets, generator=None, sample=True, private=None):
        return self.decode(self.encode(given).mean(), targets)

    # ---- training ---------------------------------------------------------------------------
    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        codes, present = self.codes(batch)
        joint = self.average(codes, present)
        sources = [joint] + [codes[i] for i in range(len(self.order))]
        source_rows = [present.any(0)] + [present[i] for i in range(len(self.order))]
        loss = torch.zeros((), device=joint.device)
        terms: dict[str, torch.Tensor] = {}
        for i, m in enumerate(self.order):
            mod, x, have = self.modalities[m], batch.data[m], present[i]
            for z, rows in zip(sources, source_rows):
                keep = (have & rows).float()
                params = self.decoders[m](self._input(z, m), x)
                nll = -mod.log_likelihood(params, x) / max(1, mod.num_elements())
                loss = loss + (nll * keep).sum() / keep.sum().clamp_min(1.0)
                if z is joint:
                    terms[f"nll/{m}"] = ((nll * keep).sum() / keep.sum().clamp_min(1.0)).detach()
        align = ((codes - joint[None]).pow(2).sum(-1) * present.float()).sum() / present.sum().clamp_min(1)
        terms["align"] = align.detach()
        return LossOutput(loss + ALIGN * align, terms)

    # ---- what only this model can tell ------------------------------------------------------
    @torch.no_grad()
    def evaluation_figures(self, reference, rows, device, seed: int = 0) -> dict:
        """``code_agreement``: mean cosine similarity between each pair of modality codes of
        the evaluated rows that have both (1: every modality puts a row in the same place)."""
        codes, present = self.codes(rows.batch(slice(0, len(rows))).to(device))
        out = {}
        for i, a in enumerate(self.order):
            for j, b in enumerate(self.order[i + 1:], i + 1):
                both = present[i] & present[j]
                if bool(both.any()):
                    cos = torch.nn.functional.cosine_similarity(codes[i][both], codes[j][both], dim=-1)
                    out[f"{a}-{b}"] = round(float(cos.mean()), 4)
        return {"code_agreement": out} if out else {}
