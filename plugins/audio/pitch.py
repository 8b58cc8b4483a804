"""Fundamental frequency (F0) of batches of clips, in torch: YIN (de Cheveigné & Kawahara 2002).

For every frame (hop ``hop`` samples, window ``2 * max_lag``): the difference function
``d(tau) = sum_j (x_j - x_{j+tau})^2`` from autocorrelations (FFT), its cumulative-mean
normalisation ``d'(tau) = d(tau) * tau / sum_{k<=tau} d(k)``, the first lag whose ``d'`` dips
under ``threshold`` (else the global minimum), refined by a parabola through its neighbours.
A frame is voiced when that dip is under ``voicing`` and the frame is not near-silent (40 dB
under the clip's loudest frames). Batched over clips and frames, so a thousand clips take a
second on a CPU; the F0 contour conditions the speech decoder, which is forgiving of small
errors (octave errors are what the voicing test and the median smoothing keep rare).

:func:`harvest` is the other tracker (the speech model's default): WORLD's Harvest, slower but
with the voicing and fast movements that independent trackers agree with.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

#: frames this far under the clip's loudest (95th percentile) are never voiced, by either tracker (dB)
SILENCE_DB = 40.0


def yin(wave: torch.Tensor, sample_rate: int, hop: int, fmin: float = 60.0, fmax: float = 800.0,
        threshold: float = 0.15, voicing: float = 0.45, frames: int | None = None
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 in Hz ``(N, T)`` (0 where unvoiced) and the voiced mask ``(N, T)`` of waveforms ``(N, samples)``.

    Frame ``t`` is centred on sample ``t * hop`` (like a centred STFT); ``frames`` fixes T
    (default ``1 + samples // hop``).
    """
    wave = wave.float()
    n, samples = wave.shape
    min_lag = max(2, int(sample_rate / fmax))
    max_lag = min(int(math.ceil(sample_rate / fmin)), max(min_lag + 2, samples // 2))
    width = 2 * max_lag
    t_count = frames if frames is not None else 1 + samples // hop
    padded = F.pad(wave, (width // 2, width // 2 + t_count * hop))
    windows = padded.unfold(1, width, hop)[:, :t_count]                       # (N, T, W)
    windows = windows - windows.mean(-1, keepdim=True)
    # d(tau) = e(0..W-tau) + e(tau..W) - 2 r(tau), over the window's first half as the frame
    half = width - max_lag
    size = 1 << (width + half - 1).bit_length()            # linear, not circular, correlation; 2^k is fast
    spectrum = torch.fft.rfft(windows, n=size)
    head = torch.fft.rfft(windows[..., :half], n=size)
    r = torch.fft.irfft(spectrum * head.conj(), n=size)[..., :max_lag + 1]          # (N, T, L+1)
    energy = windows.pow(2).cumsum(-1)
    e0 = energy[..., half - 1:half]                                            # sum x_j^2, j < half
    lags = torch.arange(max_lag + 1, device=wave.device)
    shifted = energy[..., half - 1 + lags] - F.pad(energy, (1, 0))[..., lags]  # sum x_{j+tau}^2
    diff = (e0 + shifted - 2 * r).clamp_min(0.0)
    diff[..., 0] = 0.0
    cumulative = diff[..., 1:].cumsum(-1) / torch.arange(1, max_lag + 1, device=wave.device)
    cmnd = torch.ones_like(diff)
    cmnd[..., 1:] = diff[..., 1:] / cumulative.clamp_min(1e-12)
    search = cmnd[..., min_lag:]                                               # lags min_lag..max_lag
    below = search < threshold
    # first local minimum under the threshold: the first lag under it, then walk down the dip
    first = torch.where(below.any(-1), below.float().argmax(-1), search.argmin(-1))
    positions = torch.arange(search.shape[-1], device=wave.device)
    rising = F.pad(search[..., 1:] > search[..., :-1], (0, 1), value=True)     # the dip ends here
    stop = rising & (positions >= first[..., None])
    idx = torch.where(below.any(-1), stop.float().argmax(-1), first)
    lag = idx + min_lag
    # parabolic refinement of the dip
    lo = search.gather(-1, (idx - 1).clamp_min(0)[..., None])[..., 0]
    mid = search.gather(-1, idx[..., None])[..., 0]
    hi = search.gather(-1, (idx + 1).clamp_max(search.shape[-1] - 1)[..., None])[..., 0]
    denom = lo - 2 * mid + hi
    offset = torch.where(denom.abs() > 1e-9, 0.5 * (lo - hi) / denom, torch.zeros_like(denom)).clamp(-1, 1)
    period = lag.float() + offset
    f0 = sample_rate / period.clamp_min(1.0)
    level = 10 * torch.log10(windows.pow(2).mean(-1) + 1e-12)
    loud = torch.quantile(level, 0.95, dim=-1, keepdim=True)
    voiced = (mid < voicing) & (level > loud - SILENCE_DB) & (f0 >= fmin) & (f0 <= fmax)
    voiced = drop_outliers(f0, voiced)
    f0 = median_smooth(torch.where(voiced, f0, torch.zeros_like(f0)), voiced)
    return torch.where(voiced, f0, torch.zeros_like(f0)), voiced


def drop_outliers(f0: torch.Tensor, voiced: torch.Tensor, size: int = 15, ratio: float = 1.35,
                  shortest: int = 3) -> torch.Tensor:
    """The voiced mask without the frames that are likely tracking errors: those more than
    ``ratio`` (about 5 semitones) from the running median of their ``size`` voiced neighbours
    (octave and sub-octave jumps), then voiced runs shorter than ``shortest`` frames. On a
    monotone voice a few such frames would dominate the contour's shape."""
    log_f0 = torch.where(voiced, f0.clamp_min(1e-3).log(), torch.full_like(f0, float("nan")))
    pad = size // 2
    centre = torch.nanmedian(F.pad(log_f0, (pad, pad), value=float("nan")).unfold(-1, size, 1), dim=-1).values
    voiced = voiced & ((log_f0 - centre).abs() <= math.log(ratio))
    # a frame is kept when some run of ``shortest`` consecutive voiced frames contains it
    v = voiced.float()[:, None]
    if v.shape[-1] < shortest:
        return torch.zeros_like(voiced)
    starts = -F.max_pool1d(-v, shortest, 1)                                   # a run starts at t
    covered = F.max_pool1d(F.pad(starts, (shortest - 1, shortest - 1)), shortest, 1)
    return voiced & (covered[:, 0] > 0.5)


def median_smooth(f0: torch.Tensor, voiced: torch.Tensor, size: int = 5) -> torch.Tensor:
    """A running median of F0 over voiced neighbours (unvoiced frames stay as they are): removes
    isolated octave jumps without blurring the contour."""
    pad = size // 2
    values = F.pad(torch.where(voiced, f0, torch.full_like(f0, float("nan"))), (pad, pad), value=float("nan"))
    windows = values.unfold(-1, size, 1)
    smoothed = torch.nanmedian(windows, dim=-1).values
    return torch.where(voiced, smoothed, f0)


#: F0 search range of Harvest (Hz): low male speech to a soprano's high C and above
F0_FLOOR, F0_CEIL = 60.0, 1100.0
#: Harvest's contours of the last clips tracked in this process, by their samples' hash
HARVEST_MEMO_CLIPS = 4096
_HARVESTED: dict[tuple, np.ndarray] = {}
_MEMO_LOCK = threading.Lock()


def silence_unvoiced(wave: np.ndarray, f0: np.ndarray, hop: int) -> np.ndarray:
    """A copy of the F0 track ``f0`` of ``wave`` (frame ``t`` at sample ``t * hop``) with its
    near-silent frames (:data:`SILENCE_DB` under the clip's loudest) unvoiced (0), whatever
    periodicity a tracker found in the noise floor."""
    padded = np.pad(wave, (hop, hop))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * hop)[::hop][:len(f0)]
    level = 10 * np.log10(np.mean(windows ** 2, axis=-1) + 1e-12)
    out = np.array(f0, dtype=np.float64)
    out[:len(level)][level < np.quantile(level, 0.95) - SILENCE_DB] = 0.0
    return out


def harvest(waves: list[np.ndarray], sample_rate: int, hop: int, frames: int,
            threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 in Hz ``(N, frames)`` (0 where unvoiced) and the voiced mask of clips of any length,
    by WORLD's Harvest (Morise 2017, the ``pyworld`` package), frame ``t`` at sample ``t * hop``.

    Harvest finds voiced frames that YIN's threshold misses (onsets, creak, breathy ends) and
    follows fast pitch movement there: F0 contours that other trackers agree with. It costs
    about 0.2 s per second of audio, so clips are tracked in threads (pyworld releases the GIL).
    """
    import pyworld

    period_ms = 1000.0 * hop / sample_rate

    def track(wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, dtype=np.float64)
        key = (hashlib.blake2b(wave.tobytes(), digest_size=16).digest(), sample_rate, hop, frames)
        with _MEMO_LOCK:                           # fit() then preprocess() track the same clips
            if key in _HARVESTED:
                return _HARVESTED[key]
        out = np.zeros(frames, dtype=np.float64)
        if len(wave) < 2 * hop or not np.any(wave):
            return out
        f0, _ = pyworld.harvest(wave, sample_rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=period_ms)
        k = min(frames, len(f0))
        out[:k] = silence_unvoiced(wave, f0[:k], hop)
        with _MEMO_LOCK:
            if len(_HARVESTED) >= HARVEST_MEMO_CLIPS:
                _HARVESTED.pop(next(iter(_HARVESTED)))
            _HARVESTED[key] = out
        return out

    workers = max(1, min(len(waves), threads or os.cpu_count() or 1))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            tracks = list(pool.map(track, waves))
    else:
        tracks = [track(w) for w in waves]
    f0 = torch.from_numpy(np.stack(tracks)).float() if tracks else torch.zeros(0, frames)
    return f0, f0 > 0
