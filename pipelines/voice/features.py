"""What a voice sounds like, measured on the audio itself, in terms a person understands.

* pitch: ``librosa.pyin`` f0 of the voiced frames; the median (Hz) and the range (semitones
  between the 5th and 95th percentiles);
* brightness: the spectral centroid (Hz) of the voiced frames, median;
* breathiness: harmonics-to-noise ratio (dB) of the voiced frames from the normalised
  autocorrelation at the pitch period (Boersma 1993): ``10 log10(r / (1 - r))``; a breathy
  or rough voice has more noise between its harmonics, so a *lower* HNR;
* vibrato: the pitch contour in cents, cut into notes, each fitted with a line plus a
  sinusoid whose rate (4-8.5 Hz) all notes share: the rate (Hz) and the depth (cents,
  the sinusoid's amplitude). A wobble that is mostly noise (jitter) rather than a periodic
  swing counts as no vibrato.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

#: pyin's search range: below a low bass (C2) to above a high soprano (C6)
FMIN_HZ, FMAX_HZ = 65.0, 1050.0
HOP_SECONDS = 0.016
#: pyin's pitch grid in semitones: its Viterbi pass costs the square of the grid's size, and a
#: quarter semitone (instead of librosa's tenth) measured 3.8x faster with per-voice medians
#: within 0.2 semitone of the finer grid's (vibrato is read from a finer YIN contour anyway)
PYIN_RESOLUTION = 0.25
VIBRATO_BAND_HZ = (4.0, 8.5)
#: share of the pitch wobble (around straight lines) a sinusoid must explain to count as vibrato
VIBRATO_MIN_PERIODICITY = 0.35


@dataclass(frozen=True)
class VoiceFeatures:
    """Interpretable measurements of one recording (or the median over a singer's clips)."""

    median_pitch_hz: float
    pitch_range_semitones: float
    brightness_hz: float
    hnr_db: float
    vibrato_rate_hz: float
    vibrato_depth_cents: float
    voiced_fraction: float

    def to_json(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, float]) -> "VoiceFeatures":
        return cls(**{f.name: float(raw[f.name]) for f in fields(cls)})

    @classmethod
    def median_of(cls, items: list["VoiceFeatures"]) -> "VoiceFeatures":
        """Feature-wise median (NaN-aware) over several clips of one voice.

        Vibrato is a yes/no per clip first: with vibrato found in at least a third of the
        clips (one short clip may hold too little of it to show), rate and depth are the
        medians over those clips; otherwise none.
        """
        values = {}
        for f in fields(cls):
            column = np.array([getattr(i, f.name) for i in items], dtype=float)
            values[f.name] = float(np.nanmedian(column)) if np.isfinite(column).any() else float("nan")
        with_vibrato = [i for i in items if i.vibrato_depth_cents > 0]
        if items and len(with_vibrato) * 3 >= len(items):
            values["vibrato_rate_hz"] = float(np.median([i.vibrato_rate_hz for i in with_vibrato]))
            values["vibrato_depth_cents"] = float(np.median([i.vibrato_depth_cents for i in with_vibrato]))
        else:
            values["vibrato_rate_hz"] = values["vibrato_depth_cents"] = 0.0
        return cls(**values)


def measure(wave: np.ndarray, sample_rate: int) -> VoiceFeatures:
    """Measure a mono recording ``(samples,)``; a recording with no voiced frame gives NaN pitch."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    hop = max(1, int(round(HOP_SECONDS * sample_rate)))
    frame = _pow2_at_least(int(2.5 * sample_rate / FMIN_HZ))
    f0, voiced, _ = librosa.pyin(wave, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=sample_rate, frame_length=frame,
                                 hop_length=hop, center=True, resolution=PYIN_RESOLUTION)
    voiced = voiced & np.isfinite(f0)
    if not voiced.any():
        nan = float("nan")
        return VoiceFeatures(nan, nan, nan, nan, 0.0, 0.0, 0.0)
    pitch = f0[voiced]
    semis = 12.0 * np.log2(pitch)
    lo, hi = np.percentile(semis, [5, 95])
    centroid = librosa.feature.spectral_centroid(y=wave, sr=sample_rate, n_fft=frame, hop_length=hop,
                                                 center=True)[0]
    n = min(len(centroid), len(voiced))
    rate, depth = vibrato(fine_pitch(wave, sample_rate, hop, f0, voiced), voiced, sample_rate / hop)
    return VoiceFeatures(
        median_pitch_hz=float(np.median(pitch)),
        pitch_range_semitones=float(hi - lo),
        brightness_hz=float(np.median(centroid[:n][voiced[:n]])),
        hnr_db=harmonics_to_noise(wave, f0, voiced, sample_rate, hop),
        vibrato_rate_hz=rate,
        vibrato_depth_cents=depth,
        voiced_fraction=float(voiced.mean()),
    )


def _pow2_at_least(n: int) -> int:
    return 1 << max(6, math.ceil(math.log2(max(n, 2))))


def fine_pitch(wave: np.ndarray, sample_rate: int, hop: int, f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """A finer f0 contour for vibrato: YIN with parabolic interpolation and a frame only as
    long as the clip's lowest pitch needs (pyin's long frame and quantised, smoothed path
    flatten a fast wobble). Frames where YIN strays more than 3 semitones from pyin keep pyin."""
    import librosa

    low = float(np.min(f0[voiced]))
    high = float(np.max(f0[voiced]))
    fmin, fmax = max(FMIN_HZ * 0.8, low / 1.5), min(sample_rate / 4.0, high * 1.5)
    frame = _pow2_at_least(int(2.2 * sample_rate / fmin))
    fine = librosa.yin(wave, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame, hop_length=hop,
                       center=True)
    n = min(len(fine), len(f0))
    out = f0.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        close = np.abs(12.0 * np.log2(fine[:n] / f0[:n])) < 3.0
    keep = close & voiced[:n]
    out[:n][keep] = fine[:n][keep]
    return out


def harmonics_to_noise(wave: np.ndarray, f0: np.ndarray, voiced: np.ndarray, sample_rate: int,
                       hop: int) -> float:
    """Median HNR (dB) of voiced frames: normalised autocorrelation peak near the period."""
    values = []
    for i in np.flatnonzero(voiced):
        period = sample_rate / f0[i]
        length = int(3 * period)                    # three periods: short enough for a steady pitch
        centre = i * hop
        start = centre - length // 2
        if start < 0 or start + length + int(1.2 * period) + 2 > len(wave):
            continue
        window = np.hanning(length)
        seg = wave[start:start + length + int(1.2 * period) + 2]
        a = seg[:length] * window
        energy = float(a @ a)
        if energy <= 1e-12:
            continue
        best = 0.0
        for lag in range(max(1, int(0.8 * period)), int(1.2 * period) + 1):
            b = seg[lag:lag + length] * window
            r = float(a @ b) / math.sqrt(energy * float(b @ b) + 1e-20)
            best = max(best, r)
        best = min(max(best, 1e-4), 1 - 1e-4)
        values.append(10.0 * math.log10(best / (1.0 - best)))
    return float(np.median(values)) if values else float("nan")


def vibrato(f0: np.ndarray, voiced: np.ndarray, frame_rate: float) -> tuple[float, float]:
    """(rate Hz, depth cents) of the periodic pitch wobble; (0, 0) when there is none.

    The contour (cents) is cut into notes at the jumps of the melody; within every note a
    straight line plus one sinusoid is fitted by least squares, the frequency shared by all
    notes and searched over :data:`VIBRATO_BAND_HZ`. The chosen rate explains the most of
    what the lines leave; if that share is small (jitter is noise, not a swing) there is no
    vibrato; neither is a best rate at the edge of the band (a bent note, not a swing).
    Depth is the sinusoid's amplitude, averaged over the notes by length.
    """
    cents = 1200.0 * np.log2(np.where(voiced, f0, 1.0))
    notes = [c for c in _notes(cents, voiced, frame_rate) if len(c) >= int(0.12 * frame_rate)]
    if not notes:
        return 0.0, 0.0
    best = (0.0, 0.0, 0.0)                                     # explained share, rate, depth
    rates = np.arange(VIBRATO_BAND_HZ[0], VIBRATO_BAND_HZ[1] + 1e-9, 0.1)
    for rate in rates:
        line_ss = fit_ss = weighted_amp = frames = 0.0
        for c in notes:
            t = np.arange(len(c)) / frame_rate
            line = np.stack([np.ones_like(t), t], 1)
            full = np.concatenate([line, np.stack([np.cos(2 * np.pi * rate * t),
                                                   np.sin(2 * np.pi * rate * t)], 1)], 1)
            line_ss += float(np.sum((c - line @ np.linalg.lstsq(line, c, rcond=None)[0]) ** 2))
            coef = np.linalg.lstsq(full, c, rcond=None)[0]
            fit_ss += float(np.sum((c - full @ coef) ** 2))
            weighted_amp += float(np.hypot(coef[2], coef[3])) * len(c)
            frames += len(c)
        share = 1.0 - fit_ss / line_ss if line_ss > 0 else 0.0
        if share > best[0]:
            best = (share, float(rate), weighted_amp / frames)
    share, rate, depth = best
    at_edge = min(abs(rate - rates[0]), abs(rate - rates[-1])) < 0.05     # a slow trend or noise, not a peak
    if share < VIBRATO_MIN_PERIODICITY or depth < 5.0 or at_edge:
        return 0.0, 0.0
    return rate, depth


def _notes(cents: np.ndarray, voiced: np.ndarray, frame_rate: float) -> list[np.ndarray]:
    """Voiced stretches of the contour split where the melody jumps (> 80 cents between the
    medians of the neighbouring 0.1 s), with the glides at either end trimmed."""
    from scipy.ndimage import median_filter

    half = max(2, int(round(0.05 * frame_rate)))
    trim = max(1, int(round(0.03 * frame_rate)))
    out = []
    for run in _runs(voiced):
        c = cents[run]
        if len(c) < 2 * half + 1:
            continue
        smooth = median_filter(c, size=2 * half + 1, mode="nearest")
        jump = np.zeros(len(c), dtype=bool)
        jump[half:-half] = np.abs(smooth[2 * half:] - smooth[:-2 * half]) > 80.0
        bounds = np.flatnonzero(np.diff(jump.astype(int)) != 0) + 1
        for piece_index, piece in enumerate(np.split(np.arange(len(c)), bounds)):
            if len(piece) and not jump[piece[0]]:
                out.append(c[piece[trim:len(piece) - trim]])
    return out


def _runs(mask: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the consecutive True stretches of ``mask``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    return np.split(idx, breaks)
