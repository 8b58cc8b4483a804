"""Reading one audio file into a fixed-length mono clip at the run's sample rate.

Any file libsndfile decodes (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...), any rate and channel
count. Only the part of the file the clip uses is decoded (plus a little margin so the
resampler has context at the cut), so a long recording costs no more than a short one.
Every way a file can be unusable is a :class:`BadInput` with a one-line reason.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from polyvae.core.errors import BadInput

#: sample rates outside this range are refused as absurd (a broken header, or not audio)
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
#: peak below this (-80 dBFS) counts as silence
SILENCE_PEAK = 1e-4
LENGTH_POLICIES = ("pad-trim", "center-crop")
_WAV_DATA_SIZE = re.compile(r"data : (\d+) \(should be (\d+)\)")
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


@dataclass(frozen=True)
class LoadingConfig:
    """How a file becomes a clip: rate, length, length policy, peak normalisation."""

    sample_rate: int = 16000
    duration: float = 1.0
    length_policy: str = "pad-trim"
    peak_normalize: bool = True
    peak: float = 0.95
    #: False: a file shorter than ``duration`` keeps its own length (the caller pads it)
    pad: bool = True

    @property
    def num_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))


def read_clip(path: Path, config: LoadingConfig) -> np.ndarray:
    """``path`` -> float32 mono clip of ``config.num_samples`` samples at ``config.sample_rate``
    (see :func:`read_clip_and_duration`)."""
    return read_clip_and_duration(path, config)[0]


def read_clip_and_duration(path: Path, config: LoadingConfig) -> tuple[np.ndarray, float]:
    """``path`` -> (float32 mono clip of ``config.num_samples`` samples at
    ``config.sample_rate``, the file's own duration in seconds).

    ``pad-trim`` keeps the first ``duration`` seconds and zero-pads a shorter file at the
    end; ``center-crop`` keeps the middle ``duration`` seconds and pads a shorter file
    equally on both sides. With ``peak_normalize`` the clip is scaled to a peak of
    ``config.peak`` (recordings differ in level; the model should not have to care).
    """
    path = Path(path)
    if not path.exists():
        raise BadInput("audio file not found")
    if path.is_dir():
        raise BadInput("is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise BadInput("empty file (0 bytes)")
    try:
        handle = sf.SoundFile(str(path))
    except sf.LibsndfileError as exc:
        raise BadInput(f"not a readable audio file (soundfile: {_reason(exc)})") from None
    except (RuntimeError, ValueError, OSError, TypeError) as exc:
        raise BadInput(f"not a readable audio file ({_reason(exc)})") from None
    with handle as f:
        rate, frames = int(f.samplerate), int(f.frames)
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise BadInput(f"absurd sample rate {rate} Hz (accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
        if frames <= 0:
            raise BadInput("no audio in the file (0 frames)")
        _check_wav_complete(f.extra_info)
        start, stop, offset = _source_span(frames, rate, config)
        try:
            f.seek(start)
            data = f.read(stop - start, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError, TypeError) as exc:
            raise BadInput(f"truncated or corrupt audio file (soundfile: {_reason(exc)})") from None
    if data.shape[0] < stop - start:
        raise BadInput(f"truncated or corrupt audio file: header promises {frames} frames, "
                       f"decoding stopped at {start + data.shape[0]}")
    return _finish(data.mean(axis=1), rate, frames, offset, config), frames / rate


def clip_from_samples(samples: np.ndarray, rate: int, config: LoadingConfig) -> np.ndarray:
    """An in-memory recording (mono, or ``(T, channels)``) at ``rate`` -> the clip
    :func:`read_clip` would make of a file holding it."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1 or data.size == 0:
        raise BadInput(f"audio samples must be a non-empty 1-D array (or samples x channels), "
                       f"got shape {np.shape(samples)}")
    if not MIN_SAMPLE_RATE <= int(rate) <= MAX_SAMPLE_RATE:
        raise BadInput(f"absurd sample rate {rate} Hz (accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    start, stop, offset = _source_span(data.size, int(rate), config)
    return _finish(data[start:stop], int(rate), data.size, offset, config)


def _finish(mono: np.ndarray, rate: int, frames: int, offset: int, config: LoadingConfig) -> np.ndarray:
    """Decoded mono span -> checked, resampled, cut or padded, peak-normalised clip."""
    if not np.isfinite(mono).all():
        raise BadInput("audio contains NaN or infinite samples")
    clip = _fit_length(_resample(mono, rate, config.sample_rate), offset * config.sample_rate / rate,
                       frames * config.sample_rate / rate, config)
    peak = float(np.abs(clip).max()) if clip.size else 0.0
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * math.log10(peak):.0f}"
        where = "the clip" if frames / rate <= config.duration else (
            f"the {config.duration:g} s used ({config.length_policy})")
        raise BadInput(f"silent audio: peak {level} dBFS in {where}; silence cannot be modelled")
    if config.peak_normalize:
        clip = clip * (config.peak / peak)
    return clip.astype(np.float32)


def _source_span(frames: int, rate: int, config: LoadingConfig) -> tuple[int, int, int]:
    """Frames ``[start, stop)`` to decode, and where the wanted span begins inside them."""
    need = int(math.ceil(config.duration * rate))
    margin = max(64, rate // 50)                       # 20 ms of resampler context
    if frames <= need:
        return 0, frames, 0
    begin = 0 if config.length_policy == "pad-trim" else (frames - need) // 2
    start = max(0, begin - margin)
    stop = min(frames, begin + need + margin)
    return start, stop, begin - start


def _resample(mono: np.ndarray, rate: int, target: int) -> np.ndarray:
    """High-quality resampling with soxr (what librosa uses, called directly: librosa's first
    call costs seconds of JIT); torchaudio's windowed-sinc resampler where soxr is missing."""
    if rate == target:
        return mono
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr comes with librosa
        import torch
        import torchaudio.functional as AF

        return AF.resample(torch.from_numpy(mono), rate, target).numpy()
    return soxr.resample(mono, rate, target, quality="HQ").astype(np.float32, copy=False)


def _fit_length(signal: np.ndarray, offset: float, total: float, config: LoadingConfig) -> np.ndarray:
    """Cut ``num_samples`` from ``offset`` (both at the target rate); pad a short file."""
    n = config.num_samples
    begin = int(round(offset))
    if total >= n:
        out = signal[begin:begin + n]
        return np.pad(out, (0, n - out.shape[0]))        # rounding can leave a sample short
    signal = signal[:n]
    if not config.pad:
        return signal
    missing = n - signal.shape[0]
    before = missing // 2 if config.length_policy == "center-crop" else 0
    return np.pad(signal, (before, missing - before))


def _check_wav_complete(info: str) -> None:
    """A WAV whose data chunk declares more bytes than the file holds was cut short.

    libsndfile quietly reads what is there; streaming writers that leave the size at 0 or
    0xFFFFFFFF are not flagged.
    """
    match = _WAV_DATA_SIZE.search(info or "")
    if match:
        declared, actual = int(match.group(1)), int(match.group(2))
        if declared > actual and declared not in _STREAMING_SIZES:
            raise BadInput(f"truncated audio file: the WAV header declares {declared} data bytes, "
                           f"only {actual} are present")


def _reason(exc: BaseException) -> str:
    """libsndfile's own words, without the path it repeats (the caller names the file)."""
    text = getattr(exc, "error_string", None) or str(exc)
    return " ".join(str(text).split())
