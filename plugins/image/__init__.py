"""The image modality: any format PIL reads, grayscale or RGB, conv encoder/decoder."""
from __future__ import annotations

from polyvae.core.hookspecs import hookimpl

from .modality import ImageModality


@hookimpl
def polyvae_register_modalities(register):
    register(ImageModality)
