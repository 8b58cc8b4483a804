"""Recordings in and out of a run's sound modality: windows, voice latents, conversion.

A user's recording may be longer than the run's clips. It is read whole (up to
``MAX_SECONDS``, and the result says when it was cut), cut into consecutive clip-long
windows, and the quiet windows are dropped; a voice latent is the mean over the windows, and
a conversion rebuilds the recording window by window with another voice latent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from polyvae.core.batch import Batch, partial_batch
from polyvae.core.errors import BadInput, UsageError
from polyvae.core.run import LoadedRun
from polyvae.core.sound import SoundModality

#: the longest stretch of a recording that is used (a longer one is cut, and the result says so)
MAX_SECONDS = 600.0
#: windows quieter than this share of the loudest window's RMS are silence
QUIET_SHARE = 0.1


@dataclass
class Recording:
    """A recording as the run sees it: the waveform and its preprocessed windows."""

    path: Path
    wave: np.ndarray                          # (samples,) at the run's sample rate
    sample_rate: int
    windows: torch.Tensor                     # (W, *shape) preprocessed
    starts: list[int]                         # first sample of each kept window
    seconds: float = 0.0                      # the file's own duration
    notes: list[str] = field(default_factory=list)


def read_recording(run: LoadedRun, modality: str, path: str | Path) -> Recording:
    """Read ``path`` with the run's audio settings; a :class:`BadInput` names the file."""
    path = Path(path)
    mod = sound_modality(run, modality)
    try:
        wave, seconds = mod.read_signal(path, MAX_SECONDS)
    except BadInput as err:
        raise err.located(file=path, modality=modality) from None
    windows, starts = clip_windows(wave, mod.clip_samples, mod.as_clip)
    x = mod.preprocess(windows)
    if not bool(torch.isfinite(x).all()):
        raise BadInput("non-finite values after preprocessing", file=path, modality=modality)
    notes = [f"{path}: only the first {MAX_SECONDS:g} s of its {seconds:.0f} s were used"] if seconds > MAX_SECONDS else []
    return Recording(path, wave, mod.sample_rate, x, starts, seconds, notes)


def sound_modality(run: LoadedRun, modality: str) -> SoundModality:
    """The run's ``modality``, which must be a sound (the voice commands need waveforms)."""
    mod = run.modalities[modality]
    if not isinstance(mod, SoundModality):
        raise UsageError(f"the {modality} modality is not a sound modality, so it has no voice")
    return mod


def clip_windows(wave: np.ndarray, size: int, as_clip=lambda w: w) -> tuple[list[np.ndarray], list[int]]:
    """Consecutive ``size``-sample windows (the last one, shorter, kept if it is at least a
    quarter full), dropping the quiet ones; each prepared by ``as_clip`` as training clips were."""
    starts = list(range(0, max(1, len(wave) - size // 4), size)) or [0]
    windows = [wave[s:s + size] for s in starts]            # the last one may be shorter
    rms = np.array([float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) for w in windows])
    keep = [i for i in range(len(windows)) if rms[i] >= QUIET_SHARE * rms.max()] or [int(rms.argmax())]
    return [as_clip(windows[i].astype(np.float32)) for i in keep], [starts[i] for i in keep]


def only_batch(run: LoadedRun, modality: str, x: torch.Tensor, device="cpu") -> Batch:
    """A batch in which only ``modality`` is present (the others are zeros, masked out)."""
    return partial_batch(run.config.data.tensors, {modality: x}).to(device)


@torch.no_grad()
def encode_voice(run: LoadedRun, modality: str, x: torch.Tensor, device="cpu") -> torch.Tensor:
    """Mean of q(w | x) for a batch of preprocessed clips ``(N, *shape)`` -> ``(N, P)``."""
    return run.model.encode(only_batch(run, modality, x, device)).private_mean(modality).float()


@torch.no_grad()
def convert(run: LoadedRun, modality: str, x: torch.Tensor, w: torch.Tensor, device="cpu") -> torch.Tensor:
    """Clips ``x`` ``(N, *shape)`` rebuilt with the voice latents ``w`` ``(N, P)``: what is said
    and (for a modality that keeps it) its timing from ``x``, the voice from ``w``."""
    batch = only_batch(run, modality, x, device)
    return run.model.reconstruct(batch, private={modality: w.to(device)})[modality]


@torch.no_grad()
def decode_audio(run: LoadedRun, modality: str, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spectrograms ``(N, *shape)`` from shared latents ``(N, D)`` and voice latents ``(N, P)``."""
    return run.model.decode(z, [modality], {modality: w.to(z.device, z.dtype)})[modality]


def render(run: LoadedRun, modality: str, x: torch.Tensor, paths: list[Path]) -> None:
    """Write each spectrogram of ``x`` to its path (batched)."""
    run.modalities[modality].render_batch(x.cpu(), paths)


def reencode_files(run: LoadedRun, modality: str, paths: list[Path], device="cpu") -> torch.Tensor:
    """Voice latents ``(N, P)`` of written audio files, read back as any input would be."""
    mod = run.modalities[modality]
    x = mod.preprocess([mod.read(p.name, p.parent) for p in paths])
    return encode_voice(run, modality, x, device)
