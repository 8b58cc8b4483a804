"""One MLP architecture, built for polyvae and for MultiVae, on sklearn's digits + words.

Not a benchmark itself: ``bench_mvae_throughput.py`` and ``bench_flops.py`` use it.

Both libraries get literally the same ``nn.Module`` classes (MultiVae's ``Encoder_VAE_MLP``
layout: input -> 512 -> 512, then a 512 -> D head for the mean and one for the log-variance;
the decoder mirrors it: D -> 512 -> 512 -> output logits), the same latent size, the same
likelihoods (Bernoulli pixels, categorical characters) and the same per-modality likelihood
weights. What differs is only each library's MVAE: fusion, subset handling and objective.

polyvae side: :class:`MLPImage` and :class:`MLPText` are the built-in image and text
modalities (same reading, preprocessing and likelihoods) with these MLPs instead of their
conv/GRU networks; they register under the names ``image`` and ``text`` in a registry
built without the built-in image/text plugins (:func:`polyvae_registry`).

MultiVae side (``pip install multivae==1.0.3``; only the benchmarks import it): its
``MVAE`` with the same modules wrapped in pythae's ``BaseEncoder``/``BaseDecoder``, text
as one-hot ``(L, V)`` floats, ``decoders_dist`` bernoulli/categorical and ``rescale_factors``
set to polyvae's likelihood weights.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.hookspecs import hookimpl
from polyvae.core.mvae import MultimodalVAE
from polyvae.core.objective import likelihood_weights
from polyvae.plugins.fusion.poe import ProductOfExperts
from polyvae.plugins.image.modality import ImageModality
from polyvae.plugins.text.modality import TextModality
from polyvae.plugins.text.vocabulary import EOS, PAD

HIDDEN = 512


class MLPEncoder(nn.Module):
    """``x`` (flattened; ids are one-hot encoded first when ``vocab``) -> (mu, logvar)."""

    def __init__(self, in_features: int, latent_dim: int, vocab: int = 0):
        super().__init__()
        self.vocab = vocab
        self.body = nn.Sequential(nn.Linear(in_features, HIDDEN), nn.ReLU(),
                                  nn.Linear(HIDDEN, HIDDEN), nn.ReLU())
        self.mu = nn.Linear(HIDDEN, latent_dim)
        self.logvar = nn.Linear(HIDDEN, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.vocab:
            x = F.one_hot(x, self.vocab).to(self.mu.weight.dtype)
        h = self.body(x.flatten(1))
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """``z`` -> logits of shape ``out_shape`` per row: D -> 512 -> 512 -> prod(out_shape)."""

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...]):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, math.prod(out_shape)))

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class MLPTextDecoder(MLPDecoder):
    """Character logits ``(N, L, V)``; without a target, the argmax ids (PAD after the first EOS)."""

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        logits = super().forward(z)
        if x is not None:
            return logits
        ids = logits.argmax(-1)
        ended = (ids == EOS).long().cumsum(1) - (ids == EOS).long() > 0
        return ids.masked_fill(ended, PAD)


# ---- polyvae ------------------------------------------------------------------------------
class MLPImage(ImageModality):
    """The built-in image modality (8x8 grayscale here) with the MLP networks."""

    def build_encoder(self, latent_dim: int) -> nn.Module:
        return MLPEncoder(math.prod(self.data_shape()), latent_dim + self.private_dim)

    def build_decoder(self, input_dim: int) -> nn.Module:
        return MLPDecoder(input_dim, self.data_shape())


class MLPText(TextModality):
    """The built-in text modality with the MLP networks over one-hot characters."""

    def build_encoder(self, latent_dim: int) -> nn.Module:
        vocab = len(self._vocab())
        return MLPEncoder(self.length * vocab, latent_dim + self.private_dim, vocab=vocab)

    def build_decoder(self, input_dim: int) -> nn.Module:
        return MLPTextDecoder(input_dim, (self.length, len(self._vocab())))


class _MLPPlugin:
    @staticmethod
    @hookimpl
    def polyvae_register_modalities(register):
        register(MLPImage)
        register(MLPText)


def polyvae_registry():
    """A registry whose ``image``/``text`` are the MLP modalities (for ``polyvae.core.training.train``)."""
    from polyvae.core.plugins import build_registry

    defaults = ("polyvae.plugins.fusion.poe", "polyvae.plugins.models")
    return build_registry([_MLPPlugin()], entry_points=False, defaults=defaults)


def polyvae_mvae(words: list[str], latent_dim: int, kl_warmup_epochs: int,
                 reconstruct: str = "all") -> MultimodalVAE:
    """polyvae's MVAE (PoE fusion) with the MLP modalities, fitted on ``words``.

    ``reconstruct="all"`` is polyvae's default objective (every subset reconstructs every
    modality); ``"subset"`` is Wu & Goodman's, the one MultiVae's MVAE implements.
    """
    image = MLPImage(size=8, channels=1)
    text = MLPText()
    text.fit(words)
    config = ModelConfig(modalities=["image", "text"], latent_dim=latent_dim,
                         kl_warmup_epochs=kl_warmup_epochs, reconstruct=reconstruct)
    return MultimodalVAE({"image": image, "text": text}, config, fusion=ProductOfExperts())


def polyvae_tensors(model: MultimodalVAE, images: torch.Tensor, words: list[str]) -> dict[str, torch.Tensor]:
    """Preprocessed tensors: images ``(N, 1, 8, 8)`` floats, text ``(N, L)`` ids."""
    return {"image": images[:, None].float(), "text": model.modalities["text"].preprocess(words)}


def polyvae_batch(tensors: dict[str, torch.Tensor], idx: torch.Tensor) -> Batch:
    data = {m: t[idx] for m, t in tensors.items()}
    present = {m: torch.ones(len(idx), dtype=torch.bool, device=idx.device) for m in tensors}
    return Batch(data, present, idx, complete=True)


def polyvae_step(model: MultimodalVAE, tensors: dict[str, torch.Tensor], optimizer, bf16: bool,
                 epoch: float = 10.0):
    """``step(idx)``: forward (bf16 autocast if asked) + backward + optimizer step on rows ``idx``."""
    device_type = next(model.parameters()).device.type

    def step(idx: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            out = model(polyvae_batch(tensors, idx), epoch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        return out.loss.detach()

    return step


# ---- MultiVae -----------------------------------------------------------------------------
def multivae_mvae(polyvae_model: MultimodalVAE, latent_dim: int, warmup_epochs: int):
    """MultiVae 1.0.3's MVAE with the same modules, likelihoods and likelihood weights."""
    from multivae.models import MVAE, MVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, net: nn.Module):
            BaseEncoder.__init__(self)
            self.net = net

        def forward(self, x):
            mu, logvar = self.net(x)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self, net: nn.Module):
            BaseDecoder.__init__(self)
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    text = polyvae_model.modalities["text"]
    shape = {"image": (64,), "text": (text.length, len(text.vocab))}
    weights = likelihood_weights(polyvae_model.modalities, polyvae_model.config)
    config = MVAEConfig(n_modalities=2, latent_dim=latent_dim, input_dims=shape,
                        decoders_dist={"image": "bernoulli", "text": "categorical"},
                        uses_likelihood_rescaling=True, rescale_factors=dict(weights),
                        warmup=warmup_epochs)
    encoders = {"image": Encoder(MLPEncoder(64, latent_dim)),
                "text": Encoder(MLPEncoder(math.prod(shape["text"]), latent_dim))}
    decoders = {"image": Decoder(MLPDecoder(latent_dim, (64,))),
                "text": Decoder(MLPDecoder(latent_dim, shape["text"]))}
    return MVAE(config, encoders, decoders)


def multivae_tensors(polyvae_tensors_: dict[str, torch.Tensor], vocab: int) -> dict[str, torch.Tensor]:
    """The same rows as MultiVae wants them: flat images, one-hot float text."""
    return {"image": polyvae_tensors_["image"].flatten(1),
            "text": F.one_hot(polyvae_tensors_["text"], vocab).float()}


def multivae_batch(tensors: dict[str, torch.Tensor], idx: torch.Tensor):
    from multivae.data.datasets.base import MultimodalBaseDataset

    return MultimodalBaseDataset(data={m: t[idx] for m, t in tensors.items()})


def multivae_generate(model, tensors: dict[str, torch.Tensor], given: str, target: str) -> torch.Tensor:
    """MultiVae's conditional generation (posterior mean), as logits of ``target``."""
    with torch.no_grad():
        inputs = SimpleNamespace(data={given: tensors[given]})
        mu, _ = model.compute_mu_log_var_subset(inputs, [given])
        return model.decoders[target](mu).reconstruction


def multivae_step(model, tensors: dict[str, torch.Tensor], optimizer, bf16: bool, epoch: int = 10):
    """The step of MultiVae's ``BaseTrainer`` (``zero_grad``, ``backward``, ``step``) on rows ``idx``."""
    device_type = next(model.parameters()).device.type

    def step(idx: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            out = model(multivae_batch(tensors, idx), epoch=epoch, batch_ratio=0.0)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        return out.loss.detach()

    return step
