"""Model plugins for ``--model``: the multimodal VAE and the classic autoencoders."""
from __future__ import annotations

from polyvae.core.hookspecs import hookimpl
from polyvae.core.mvae import MultimodalVAE

from .classic import CLASSIC_MODELS


@hookimpl
def polyvae_register_models(register):
    register(MultimodalVAE)
    for model in CLASSIC_MODELS:
        register(model)
