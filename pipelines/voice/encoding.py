"""Recordings in and out of a run's audio modality: windows, voice latents, content latents.

A user's recording may be longer than the run's clips. It is read whole (up to
``MAX_SECONDS``), cut into consecutive clip-long windows, and the quiet windows are dropped;
a voice latent is the mean over the windows, content is decoded window by window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polyvae.core.batch import Batch
from polyvae.core.errors import BadInput, UsageError
from polyvae.core.run import LoadedRun

#: the longest stretch of a recording that is used
MAX_SECONDS = 30.0
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


def read_recording(run: LoadedRun, modality: str, path: str | Path) -> Recording:
    """Read ``path`` with the run's audio settings; a :class:`BadInput` names the file."""
    from polyvae.plugins.audio.loading import LoadingConfig, read_clip

    path = Path(path)
    mod = run.modalities[modality]
    opts = mod.opts
    try:
        import soundfile as sf
        seconds = sf.info(str(path)).duration if path.is_file() else opts.duration
    except Exception:
        seconds = opts.duration                # read_clip says what is wrong with the file
    length = min(max(seconds, opts.duration), MAX_SECONDS)
    config = LoadingConfig(opts.sample_rate, length, "pad-trim", opts.peak_normalize)
    try:
        wave = read_clip(path, config)
    except BadInput as err:
        raise err.located(file=path, modality=modality) from None
    if seconds < length:                       # keep only what the file holds (plus clip padding)
        wave = wave[:max(opts.num_samples, int(math.ceil(seconds * opts.sample_rate)))]
    windows, starts = clip_windows(wave, opts.num_samples, opts.peak_normalize)
    x = mod.preprocess(windows)
    if not bool(torch.isfinite(x).all()):
        raise BadInput("non-finite values after preprocessing", file=path, modality=modality)
    return Recording(path, wave, opts.sample_rate, x, starts)


def clip_windows(wave: np.ndarray, size: int, peak_normalize: bool = True,
                 peak: float = 0.95) -> tuple[list[np.ndarray], list[int]]:
    """Consecutive ``size``-sample windows (the last one zero-padded if it is at least a
    quarter full), dropping the quiet ones; each is peak-normalised as training clips were."""
    starts = list(range(0, max(1, len(wave) - size // 4), size)) or [0]
    windows = [np.pad(wave[s:s + size], (0, max(0, size - len(wave[s:s + size])))) for s in starts]
    rms = np.array([float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) for w in windows])
    keep = [i for i in range(len(windows)) if rms[i] >= QUIET_SHARE * rms.max()] or [int(rms.argmax())]
    out = []
    for i in keep:
        w = windows[i].astype(np.float32)
        top = float(np.abs(w).max())
        out.append(w * (peak / top) if peak_normalize and top > 0 else w)
    return out, [starts[i] for i in keep]


def only_batch(run: LoadedRun, modality: str, x: torch.Tensor, device="cpu") -> Batch:
    """A batch in which only ``modality`` is present (the others are zeros, masked out)."""
    n = x.shape[0]
    data, present = {}, {}
    for m in run.modalities:
        if m == modality:
            data[m], present[m] = x, torch.ones(n, dtype=torch.bool)
            continue
        spec = run.config.data.get("tensors", {}).get(m)
        if spec is None:
            raise UsageError(f"{run.path}: config.json does not record the tensor shape of '{m}'")
        data[m] = torch.zeros((n, *spec["shape"]), dtype=getattr(torch, spec["dtype"]))
        present[m] = torch.zeros(n, dtype=torch.bool)
    return Batch(data, present).to(device)


@torch.no_grad()
def encode_voice(model, modality: str, x: torch.Tensor, device="cpu") -> torch.Tensor:
    """Mean of q(w | x) for a batch of preprocessed clips ``(N, *shape)`` -> ``(N, P)``."""
    mu, _ = model.encoders[modality](x.to(device))
    return mu[:, model.latent_dim:].float()


@torch.no_grad()
def encode_content(run: LoadedRun, modality: str, x: torch.Tensor, device="cpu") -> torch.Tensor:
    """Mean of the shared posterior q(z | x) from ``modality`` alone ``(N, D)``: what is sung."""
    return run.model.posterior(only_batch(run, modality, x, device)).mean()


@torch.no_grad()
def decode_audio(run: LoadedRun, modality: str, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spectrograms ``(N, *shape)`` from shared latents ``(N, D)`` and voice latents ``(N, P)``."""
    return run.model.decode(z, [modality], {modality: w.to(z.device, z.dtype)})[modality]


def render(run: LoadedRun, modality: str, x: torch.Tensor, paths: list[Path]) -> None:
    """Write each spectrogram of ``x`` to its path (batched when the plugin can)."""
    mod = run.modalities[modality]
    if hasattr(mod, "render_batch"):
        mod.render_batch(x.cpu(), paths)
        return
    for xi, p in zip(x.cpu(), paths):
        mod.render(xi, p)


def reencode_files(run: LoadedRun, modality: str, paths: list[Path], device="cpu") -> torch.Tensor:
    """Voice latents ``(N, P)`` of written audio files, read back as any input would be."""
    mod = run.modalities[modality]
    x = mod.preprocess([mod.read(p.name, p.parent) for p in paths])
    return encode_voice(run.model, modality, x, device)
