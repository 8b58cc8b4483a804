"""The text modality: character-level, vocabulary fitted on the training data."""
from __future__ import annotations

from polyvae.core.hookspecs import hookimpl

from .modality import TextModality


@hookimpl
def polyvae_register_modalities(register):
    register(TextModality)
