"""The audio modality: any file soundfile reads, log-mel spectrograms, Griffin-Lim rendering."""
from __future__ import annotations

from polyvae.core.hookspecs import hookimpl

from .modality import AudioModality


@hookimpl
def polyvae_register_modalities(register):
    register(AudioModality)
