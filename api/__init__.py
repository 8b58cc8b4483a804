"""polyvae: multimodal autoencoders for image, text and audio, with plugins.

The public Python API (the ``polyvae`` command line is built on it)::

    import polyvae
    run = polyvae.train("runs/mine", data="my/manifest.csv", modalities=["image", "text"], epochs=30)
    run = polyvae.load("runs/mine")                      # a polyvae.Run
    out = run.generate(given={"text": "seven"}, to=["image", "audio"], n=4)
    out["image"]          # list of PIL.Image.Image
    out["audio"]          # list of polyvae.Audio (samples: float32 array, sample_rate)
    z = run.encode("my/manifest.csv")                    # (rows, latent_dim) numpy array
    run.evaluate("my/manifest.csv")                      # the figures of `polyvae evaluate --json`
    run.interpolate("a.png", "b.png", steps=8)           # images, or voices between singers
    run.voice_match("me.wav")                            # closest singers and how the voice differs
    run.morph("me.wav", toward="anna", amount=0.5)       # -> polyvae.Audio
    run.report()                                         # path of the HTML page

See docs/api.md for a walk-through. Names are imported on first use, so ``import polyvae``
itself is quick.
"""
from __future__ import annotations

from importlib import import_module

from polyvae.core import __version__

#: public name -> module that defines it
_EXPORTS = {
    "train": "polyvae.pipelines.api", "load": "polyvae.pipelines.api", "Run": "polyvae.pipelines.api",
    "Generated": "polyvae.pipelines.api", "Interpolation": "polyvae.pipelines.api",
    "Morphed": "polyvae.pipelines.api", "demo_data": "polyvae.pipelines.api", "demo": "polyvae.pipelines.api",
    "voice_data": "polyvae.pipelines.api",
    "plugins": "polyvae.pipelines.api", "plugin_errors": "polyvae.pipelines.api",
    "Audio": "polyvae.core.sound", "RunConfig": "polyvae.core.config",
    "PolyvaeError": "polyvae.core.errors", "BadInput": "polyvae.core.errors", "BadManifest": "polyvae.core.errors",
    "UsageError": "polyvae.core.errors", "IncompatibleRun": "polyvae.core.errors",
    "TrainingDiverged": "polyvae.core.errors", "PolyvaeWarning": "polyvae.core.errors",
    "DataWarning": "polyvae.core.errors", "VerdictWarning": "polyvae.core.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'polyvae' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
