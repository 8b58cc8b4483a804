"""How faithfully spectrograms survive the trip back to audio.

Spectral convergence ``||A - B||_F / ||A||_F`` on linear (not log) magnitudes: 0 is exact,
1 is as far off as silence. :func:`griffin_lim_convergence` measures the whole rendering
path (mel -> linear -> Griffin-Lim -> waveform -> mel again), which bounds how good any
rendered audio can sound whatever the model; ``polyvae evaluate`` reports it.
"""
from __future__ import annotations

import math

import torch


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """``||A - B||_F / ||A||_F`` of linear magnitudes; ``(N,)`` for batches ``(N, F, T)``, 0-d for ``(F, T)``.

    ``reference`` (A) is the target; a silent reference (zero norm) gives ``inf`` unless the
    estimate is silent too (0).
    """
    if reference.shape != estimate.shape:
        raise ValueError(f"shapes differ: {tuple(reference.shape)} vs {tuple(estimate.shape)}")
    single = reference.dim() == 2
    a = reference.float().reshape(1 if single else reference.shape[0], -1)
    b = estimate.float().to(a.device).reshape(a.shape)
    num = (a - b).norm(dim=1)
    den = a.norm(dim=1)
    out = torch.where(den > 0, num / den.clamp_min(1e-30),
                      torch.where(num > 0, torch.full_like(num, float("inf")), torch.zeros_like(num)))
    return out[0] if single else out


@torch.no_grad()
def griffin_lim_convergence(modality, x: torch.Tensor, n_iter: int | None = None,
                            batch_size: int = 64) -> torch.Tensor:
    """Spectral convergence ``(N,)`` of mel magnitudes after rendering normalised log-mels ``x``.

    ``modality`` is an :class:`~polyvae.plugins.audio.modality.AudioModality` (fitted);
    ``x`` ``(N, n_mels, frames)`` on any device. The waveform is not peak-normalised so
    levels compare.
    """
    out = []
    features = modality.features
    low = math.log(modality.opts.log_floor)
    for start in range(0, x.shape[0], batch_size):
        chunk = x[start:start + batch_size].float()
        wave = modality.spectrogram_to_audio(chunk, n_iter=n_iter)     # UsageError when not fitted
        # the same clamp spectrogram_to_audio applies, so only the rendering path is measured
        spec, inside = modality.spectrum(chunk)
        target = modality.normalizer.invert(torch.nan_to_num(spec)).clamp(low, 20.0)
        target = torch.where(inside[:, None] > 0.5, target, torch.full_like(target, low)).exp()
        out.append(spectral_convergence(target, features.mel_magnitude(wave)).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def griffin_lim_report(modality, x: torch.Tensor, n_iter: int | None = None) -> dict[str, float]:
    """JSON-ready summary of :func:`griffin_lim_convergence`: mean, median, worst, count."""
    sc = griffin_lim_convergence(modality, x, n_iter)
    if sc.numel() == 0:
        return {"count": 0}
    return {"spectral_convergence_mean": round(float(sc.mean()), 4),
            "spectral_convergence_median": round(float(sc.median()), 4),
            "spectral_convergence_max": round(float(sc.max()), 4),
            "count": int(sc.numel())}
