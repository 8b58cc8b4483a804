"""The hook implementations polyvae loads through the entry point ``vector``."""
from __future__ import annotations

from polyvae.core.hookspecs import hookimpl

from .average import AverageAutoencoder
from .modality import VectorModality


@hookimpl
def polyvae_register_modalities(register):
    register(VectorModality)


@hookimpl
def polyvae_register_models(register):
    register(AverageAutoencoder)
