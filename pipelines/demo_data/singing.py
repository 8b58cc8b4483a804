"""The audio half of the demo data: synthetic singers singing the digits.

Source-filter synthesis in numpy, one clip at a time, vectorised over samples:

* source: a band-limited harmonic wave read from a per-note wavetable (made with one
  inverse FFT) at the phase of a time-varying f0 — melody, portamento, vibrato, jitter —
  plus aspiration noise pulsed with the glottal cycle (breathiness);
* filter: a Klatt-style cascade of five formant resonators per vowel (``scipy.signal.sosfilt``),
  the formants scaled by the singer's vocal-tract length; vowels crossfade between notes.

Each digit is a three-note phrase whose *intervals* and vowels are fixed, sung from the
singer's own tonic, so the content (digit) survives a change of voice and the voice
(register, formant scale, vibrato, breathiness, tilt, roughness) survives a change of
digit. Each clip varies a little in timing, tuning and loudness, from its own seeded rng.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import sosfilt

SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0

_TABLE_SIZE = 2048
_HARMONIC_CEILING = 0.45        # highest harmonic, as a share of the sample rate (Nyquist: 0.5)
_CONTROL_RATE = 100.0           # frames per second of the jitter / shimmer noise
_GLIDE = 0.04                   # seconds of portamento (and crossfade) between notes
_RING_OUT = 0.04                # seconds a note's formant filter rings past its last sample


@dataclass(frozen=True)
class Singer:
    """One synthetic voice.

    ``base_hz`` is the tonic (semitone 0) of every phrase; ``formant_scale`` multiplies an
    adult male's formants (a shorter vocal tract is > 1); ``tilt`` is the source's spectral
    slope (harmonic k has amplitude ``k ** -tilt``: 6 dB per octave per unit, darker when
    larger); ``jitter`` and ``shimmer`` are relative f0 and amplitude roughness (std).
    """

    name: str
    base_hz: float
    formant_scale: float
    vibrato_hz: float
    vibrato_cents: float
    breathiness: float
    tilt: float
    jitter: float
    shimmer: float


SINGERS: list[Singer] = [
    Singer("bass_boris", base_hz=87.0, formant_scale=0.84, vibrato_hz=4.6, vibrato_cents=55.0,
           breathiness=0.03, tilt=1.7, jitter=0.004, shimmer=0.04),
    Singer("baritone_bruno", base_hz=131.0, formant_scale=0.95, vibrato_hz=5.6, vibrato_cents=30.0,
           breathiness=0.05, tilt=1.3, jitter=0.003, shimmer=0.03),
    Singer("rough_rex", base_hz=110.0, formant_scale=1.00, vibrato_hz=0.0, vibrato_cents=0.0,
           breathiness=0.22, tilt=1.1, jitter=0.012, shimmer=0.18),
    Singer("tenor_tariq", base_hz=175.0, formant_scale=1.02, vibrato_hz=6.4, vibrato_cents=45.0,
           breathiness=0.03, tilt=0.9, jitter=0.003, shimmer=0.03),
    Singer("alto_alma", base_hz=196.0, formant_scale=1.12, vibrato_hz=5.0, vibrato_cents=25.0,
           breathiness=0.30, tilt=1.6, jitter=0.005, shimmer=0.05),
    Singer("mezzo_mira", base_hz=247.0, formant_scale=1.16, vibrato_hz=5.8, vibrato_cents=80.0,
           breathiness=0.06, tilt=1.2, jitter=0.004, shimmer=0.04),
    Singer("child_kai", base_hz=294.0, formant_scale=1.34, vibrato_hz=0.0, vibrato_cents=0.0,
           breathiness=0.12, tilt=1.0, jitter=0.006, shimmer=0.06),
    Singer("soprano_sofia", base_hz=392.0, formant_scale=1.22, vibrato_hz=6.1, vibrato_cents=60.0,
           breathiness=0.04, tilt=1.1, jitter=0.003, shimmer=0.03),
]

#: adult male formants (Hz): F1..F3 near Peterson & Barney's averages, F4 and F5 typical values
VOWEL_FORMANTS: dict[str, tuple[float, ...]] = {
    "i": (270.0, 2290.0, 3010.0, 3500.0, 4400.0),
    "e": (460.0, 1900.0, 2500.0, 3500.0, 4400.0),
    "a": (730.0, 1090.0, 2440.0, 3400.0, 4400.0),
    "o": (500.0, 850.0, 2400.0, 3400.0, 4400.0),
    "u": (300.0, 870.0, 2240.0, 3300.0, 4400.0),
}
_BANDWIDTHS = (70.0, 100.0, 140.0, 200.0, 260.0)


@dataclass(frozen=True)
class Phrase:
    """A digit's sung phrase: three notes in semitones above the tonic, and their vowels."""

    notes: tuple[int, int, int]
    vowels: str


#: indexed by digit; the interval pairs (n2 - n1, n3 - n2) are at least 3 semitones apart
DIGIT_PHRASES: tuple[Phrase, ...] = (
    Phrase((0, 0, 0), "iio"),    # zero: monotone
    Phrase((0, 4, 7), "uaa"),    # one: major arpeggio up
    Phrase((7, 4, 0), "uuu"),    # two: major arpeggio down
    Phrase((0, 7, 0), "iii"),    # three: up a fifth and back
    Phrase((7, 0, 7), "ooo"),    # four: down a fifth and back
    Phrase((0, 9, 5), "aai"),    # five: leap of a sixth, fall a third
    Phrase((0, 2, 9), "eii"),    # six: step, then leap
    Phrase((9, 7, 0), "eee"),    # seven: step down, then leap down a fifth
    Phrase((0, 5, 5), "eei"),    # eight: up a fourth, hold
    Phrase((0, 0, 12), "aii"),   # nine: hold, then the octave
)


def singer_by_name(name: str) -> Singer:
    """The singer called ``name`` (``KeyError`` listing the names when unknown)."""
    for singer in SINGERS:
        if singer.name == name:
            return singer
    raise KeyError(f"no demo singer '{name}'; known: {', '.join(s.name for s in SINGERS)}")


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _note_weights(t: np.ndarray, bounds: np.ndarray, glide: float) -> np.ndarray:
    """(3, n) weights that select each note, crossfading over ``glide`` s; columns sum to 1."""
    up1 = _smoothstep((t - bounds[1]) / glide + 0.5)
    up2 = _smoothstep((t - bounds[2]) / glide + 0.5)
    return np.stack([1.0 - up1, up1 - up2, up2])


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Zero-mean, unit-variance white noise (uniform: several times faster than normal)."""
    return (rng.random(n) - 0.5) * np.sqrt(12.0)


def _sin(x: np.ndarray) -> np.ndarray:
    """sin in float32: SIMD-vectorised in numpy, many times faster than float64; ample for audio."""
    return np.sin(x.astype(np.float32)).astype(np.float64)


def _control_noise(rng: np.random.Generator, n: int, seconds: float) -> np.ndarray:
    """Unit-variance noise at the control rate, linearly interpolated to ``n`` samples."""
    frames = int(seconds * _CONTROL_RATE) + 2
    knots = rng.standard_normal(frames)
    return np.interp(np.linspace(0.0, frames - 1, n), np.arange(frames), knots)


def _wavetable(n_harmonics: int, tilt: float) -> np.ndarray:
    """One period (plus a wrap-around sample) of sum_k k**-tilt sin(2 pi k x)."""
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=np.complex128)
    k = np.arange(1, n_harmonics + 1)
    spectrum[1:n_harmonics + 1] = -0.5j * _TABLE_SIZE * k ** -tilt
    table = np.fft.irfft(spectrum, _TABLE_SIZE)
    return np.append(table, table[0])


def _formant_sos(vowel: str, scale: float, sample_rate: int, f1_floor: float = 0.0) -> np.ndarray:
    """Cascade of unit-DC-gain two-pole resonators, one second-order section per formant.

    ``f1_floor`` raises F1 to at least that frequency: trained singers open the jaw on high
    notes so that F1 stays above f0 ("formant tuning") and the note keeps its loudness.
    """
    sections = []
    for number, (freq, bandwidth) in enumerate(zip(VOWEL_FORMANTS[vowel], _BANDWIDTHS)):
        freq = min(freq * scale, 0.45 * sample_rate)
        if number == 0:
            freq = max(freq, f1_floor)
        r = np.exp(-np.pi * bandwidth * scale / sample_rate)
        a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * freq / sample_rate), r * r
        sections.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.asarray(sections)


def _note_bounds(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Onset of each note and the end of the last: a short lead-in, jittered note lengths."""
    durations = 0.26 * rng.uniform(0.92, 1.04) * rng.uniform(0.92, 1.08, size=3)
    start = rng.uniform(0.03, 0.07)
    bounds = start + np.concatenate([[0.0], np.cumsum(durations)])
    latest_end = seconds - 0.05                     # room for the release
    if bounds[-1] > latest_end:
        bounds = start + (bounds - start) * (latest_end - start) / (bounds[-1] - start)
    return bounds


def sing_digit(singer: Singer, digit: int, rng: np.random.Generator,
               sample_rate: int = SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """One clip of ``singer`` singing ``digit``: float32 mono, peak 0.9, ``seconds`` long."""
    phrase = DIGIT_PHRASES[digit]
    n = int(round(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    bounds = _note_bounds(rng, seconds)
    weights = _note_weights(t, bounds, glide=_GLIDE)
    onsets = np.round(bounds * sample_rate).astype(np.int64)

    # pitch in semitones above the tonic: melody, tuning error, scoops, vibrato, jitter
    offset = rng.uniform(-0.3, 0.3)
    notes = np.asarray(phrase.notes, dtype=np.float64) + offset
    semitones = (notes + rng.normal(0.0, 0.1, size=3)) @ weights
    scoop = -0.4 * np.exp(-np.arange(int(0.15 * sample_rate)) / (0.025 * sample_rate))
    for onset in onsets[:3]:
        stop = min(n, onset + len(scoop))
        semitones[onset:stop] += scoop[:stop - onset]
    depth = singer.vibrato_cents / 100.0
    if depth > 0:
        rate = singer.vibrato_hz * rng.uniform(0.95, 1.05)
        ramp = _smoothstep((t - bounds[0]) / 0.25)
        semitones += depth * ramp * _sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    semitones += 17.3 * singer.jitter * _control_noise(rng, n, seconds)   # 17.3 = 12 / ln 2
    cycles = np.cumsum(singer.base_hz * np.exp(semitones * (np.log(2.0) / 12.0))) / sample_rate
    phase = cycles - np.floor(cycles)               # position in the glottal cycle, 0..1

    # loudness: attack, release, a dip at each note change, shimmer (per-note level below)
    amp = _smoothstep((t - bounds[0]) / 0.04) * _smoothstep((bounds[3] - t) / 0.08)
    for boundary in bounds[1:3]:
        amp *= 1.0 - 0.3 * np.exp(-(((t - boundary) / 0.02) ** 2))
    amp *= np.clip(1.0 + singer.shimmer * _control_noise(rng, n, seconds), 0.0, None)

    # aspiration: noise pulsed with the glottal cycle, lifted toward high frequencies
    pulse = 0.6 + 0.4 * _sin(2 * np.pi * phase + np.pi / 2)
    breath = singer.breathiness * pulse * np.diff(_white(rng, n + 1)) / np.sqrt(2.0)

    # each note on its own stretch of samples (its crossfades plus the filter's ring-out):
    # harmonics band-limited for its highest f0, through its vowel with F1 tuned above f0,
    # then brought to the note's level (a closed vowel would otherwise be ~12 dB quieter)
    levels = rng.uniform(0.75, 1.0, size=3)
    position = phase * _TABLE_SIZE
    index = np.minimum(position.astype(np.int64), _TABLE_SIZE - 1)
    frac = position - index
    out = np.zeros(n)
    half_glide, ring = int(_GLIDE * sample_rate / 2), int(_RING_OUT * sample_rate)
    for k, vowel in enumerate(phrase.vowels):
        first = onsets[0] if k == 0 else onsets[k] - half_glide
        last = onsets[3] if k == 2 else onsets[k + 1] + half_glide
        span = slice(max(0, first), min(n, last))
        top_hz = singer.base_hz * 2.0 ** ((notes[k] + depth + 1.0) / 12.0)
        table = _wavetable(max(1, int(_HARMONIC_CEILING * sample_rate // top_hz)), singer.tilt)
        voiced = table[index[span]] + frac[span] * np.diff(table)[index[span]]
        excitation = np.zeros(min(n, span.stop + ring) - span.start)
        excitation[:span.stop - span.start] = (voiced + breath[span]) * weights[k, span] * amp[span]
        f1_floor = 1.1 * singer.base_hz * 2.0 ** (notes[k] / 12.0)
        sos = _formant_sos(vowel, singer.formant_scale, sample_rate, f1_floor=f1_floor)
        sung = sosfilt(sos, excitation)
        held = sung[:span.stop - span.start][weights[k, span] > 0.5]
        sung *= levels[k] / max(float(np.sqrt(np.mean(held ** 2))) if held.size else 0.0, 1e-12)
        out[span.start:span.start + len(sung)] += sung

    # lip radiation: a gentle high-frequency lift; some aspiration bypasses the tract
    out[1:] -= 0.7 * out[:-1].copy()
    out += 0.25 * breath * amp
    peak = np.max(np.abs(out))
    if not np.isfinite(peak) or peak <= 0:
        raise RuntimeError(f"synthesis of digit {digit} by {singer.name} produced no signal")
    return (out * (0.9 / peak)).astype(np.float32)
