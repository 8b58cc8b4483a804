"""The ``audio`` modality: fixed-length mono clips as normalised log-mel spectrograms.

Likelihood choice: the decoder predicts the mean of each normalised log-mel value and
the model learns one scale per mel bin (``likelihood_scale="per-bin"``, default) or one
overall; the density is Gaussian (default) or Laplace (``likelihood="laplace"``, more
forgiving of the occasional loud transient). In log-mel space a Gaussian is a log-normal
on the magnitude, so errors count in ratios (dB), as hearing does.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf
import torch

from polyvae.core.errors import BadInput, UsageError
from polyvae.core.manifest import SPEAKER_COLUMN
from polyvae.core.sound import Audio, SoundModality

from .loading import (LENGTH_POLICIES, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, LoadingConfig, clip_from_samples,
                      read_clip_and_duration)
from .networks import SpectrogramDecoder, SpectrogramEncoder, SpectrogramParams
from .spectrogram import MelFeatures, Normalizer, SpectrogramConfig
from .voice import ContentVoiceEncoder, VoiceConditionedDecoder, VoiceEncoder

LOG_2PI = math.log(2.0 * math.pi)


_LOADING, _FEATURES = LoadingConfig(), SpectrogramConfig()


@dataclass(frozen=True)
class AudioOptions:
    """Every option of the audio modality (``modality_options["audio"]`` in a run config)."""

    # defaults come from the loading and feature configs, so they are written in one place
    sample_rate: int = _LOADING.sample_rate
    duration: float = _LOADING.duration
    length_policy: str = _LOADING.length_policy
    peak_normalize: bool = _LOADING.peak_normalize
    n_fft: int = _FEATURES.n_fft
    hop_length: int = _FEATURES.hop_length
    n_mels: int = _FEATURES.n_mels
    f_min: float = _FEATURES.f_min
    f_max: float | None = _FEATURES.f_max
    log_floor: float = _FEATURES.log_floor
    normalization: str = "per-bin"
    likelihood: str = "gaussian"
    likelihood_scale: str = "per-bin"
    width: int = 128
    hidden: int = 256
    depth: int = 2
    #: size of the private voice latent (0: no voice latent; the encoder is content only)
    private_dim: int = 8
    griffin_lim_iters: int = _FEATURES.griffin_lim_iters
    inverse_mel_iters: int = _FEATURES.inverse_mel_iters

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> "AudioOptions":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(options) - set(known)
        if unknown:
            raise UsageError(f"unknown audio option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        try:
            values = {k: _coerce(known[k].type, v) for k, v in options.items()}
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad audio option value: {exc}") from None
        opts = cls(**values)
        opts.validate()
        return opts

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise UsageError(f"audio option {what}")

        need(MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE,
             f"sample_rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}")
        need(0 < self.duration <= 600, f"duration must be in (0, 600] seconds, got {self.duration}")
        need(self.length_policy in LENGTH_POLICIES,
             f"length_policy must be one of {', '.join(LENGTH_POLICIES)}, got {self.length_policy!r}")
        need(16 <= self.n_fft <= self.num_samples, f"n_fft must be 16..samples per clip "
             f"({self.num_samples}), got {self.n_fft}")
        need(1 <= self.hop_length <= self.n_fft, f"hop_length must be 1..n_fft, got {self.hop_length}")
        need(1 <= self.depth <= 6, f"depth must be 1..6, got {self.depth}")
        need(8 <= self.n_mels <= self.n_fft // 2 + 1,
             f"n_mels must be 8..n_fft/2+1 ({self.n_fft // 2 + 1}), got {self.n_mels}")
        top = self.f_max if self.f_max is not None else self.sample_rate / 2
        need(0 <= self.f_min < top <= self.sample_rate / 2,
             f"needs 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, f_max={self.f_max}")
        need(self.log_floor > 0, f"log_floor must be positive, got {self.log_floor}")
        need(self.normalization in ("per-bin", "global"),
             f"normalization must be per-bin or global, got {self.normalization!r}")
        need(self.likelihood in ("gaussian", "laplace"),
             f"likelihood must be gaussian or laplace, got {self.likelihood!r}")
        need(self.likelihood_scale in ("per-bin", "global"),
             f"likelihood_scale must be per-bin or global, got {self.likelihood_scale!r}")
        need(self.width >= 1 and self.hidden >= 1, "width and hidden must be positive")
        need(self.private_dim >= 0, f"private_dim must be >= 0, got {self.private_dim}")
        need(self.griffin_lim_iters >= 1 and self.inverse_mel_iters >= 0,
             "griffin_lim_iters must be >= 1 and inverse_mel_iters >= 0")

    @property
    def num_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    def loading(self) -> LoadingConfig:
        return LoadingConfig(self.sample_rate, self.duration, self.length_policy, self.peak_normalize)

    def spectrogram(self) -> SpectrogramConfig:
        return SpectrogramConfig(self.sample_rate, self.num_samples, self.n_fft, self.hop_length,
                                 self.n_mels, self.f_min, self.f_max, self.log_floor, 2 ** self.depth,
                                 self.griffin_lim_iters, inverse_mel_iters=self.inverse_mel_iters)


def _coerce(kind: Any, value: Any) -> Any:
    """JSON/TOML values to the option's type (``"16000"`` from a CLI becomes 16000)."""
    kind = str(kind)
    if value is None:
        if "None" in kind:
            return None
        raise ValueError("None is only allowed for f_max")
    if kind.startswith("int"):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if kind.startswith("float"):
        return float(value)
    if kind == "bool":
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{value!r} is not a boolean")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    return str(value)


class AudioModality(SoundModality):
    """``audio``: clips from any file soundfile reads -> normalised log-mel ``(n_mels, frames)``."""

    name = "audio"
    extension = "wav"
    cell_is_path = True
    version = "1"
    description = "audio (wav/flac/ogg, any rate), log-mel conv encoder/decoder, Griffin-Lim rendering"

    def __init__(self, **options: Any):
        self._configure(AudioOptions.from_dict(options))
        self.normalizer: Normalizer | None = None
        self._durations: list[float] = []       # of every file read: for notes()

    def _configure(self, opts: AudioOptions) -> None:
        super().__init__(**dataclasses.asdict(opts))
        self.opts = opts
        self.features = MelFeatures(opts.spectrogram())

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one preprocessed example: ``(n_mels, frames)``."""
        return self.features.config.shape

    @property
    def sample_rate(self) -> int:
        return self.opts.sample_rate

    @property
    def clip_samples(self) -> int:
        return self.opts.num_samples

    # ---- data ---------------------------------------------------------------------------
    def read(self, cell: str, base_dir: Path) -> np.ndarray:
        """Float32 mono clip ``(samples,)`` at the configured rate and length."""
        clip, seconds = read_clip_and_duration(Path(base_dir) / cell, self.opts.loading())
        self._durations.append(seconds)
        return clip

    def from_object(self, value: Any) -> np.ndarray:
        """An :class:`~polyvae.core.sound.Audio` (any rate), or a numpy array of samples taken
        to be at the run's sample rate, as the clip :meth:`read` would make of it."""
        if isinstance(value, Audio):
            return clip_from_samples(value.samples, value.sample_rate, self.opts.loading())
        if isinstance(value, np.ndarray):
            return clip_from_samples(value, self.opts.sample_rate, self.opts.loading())
        return super().from_object(value)

    def read_signal(self, path: Path, max_seconds: float) -> tuple[np.ndarray, float]:
        """The first ``max_seconds`` of the file (at least one clip, zero-padded), at the run's
        rate, peak-normalised as a whole when the run normalises clips."""
        o = self.opts
        try:
            seconds = sf.info(str(path)).duration if Path(path).is_file() else o.duration
        except Exception:
            seconds = o.duration               # read_clip_and_duration says what is wrong with it
        length = min(max(seconds, o.duration), max_seconds)
        config = LoadingConfig(o.sample_rate, length, "pad-trim", o.peak_normalize)
        wave, seconds = read_clip_and_duration(Path(path), config)
        if seconds < length:                   # keep only what the file holds (plus clip padding)
            wave = wave[:max(o.num_samples, int(math.ceil(seconds * o.sample_rate)))]
        return wave, seconds

    def as_clip(self, piece: np.ndarray) -> np.ndarray:
        """Peak-normalised as clips are read (when the run normalises them)."""
        piece = np.asarray(piece, dtype=np.float32)
        top = float(np.abs(piece).max()) if piece.size else 0.0
        return piece * (self.opts.loading().peak / top) if self.opts.peak_normalize and top > 0 else piece

    def notes(self) -> list[str]:
        """Clips cut to ``duration``, or all much shorter than it: both are worth a setting."""
        if not self._durations:
            return []
        d, used, n = np.asarray(self._durations), self.opts.duration, len(self._durations)
        cut = int((d > used + 1e-3).sum())
        if cut:
            kept = "first" if self.opts.length_policy == "pad-trim" else "middle"
            return [f"audio: {cut} of {n} clips are longer than the {used:g} s used (longest "
                    f"{d.max():.2f} s, median {np.median(d):.2f} s); only their {kept} {used:g} s "
                    f"is modelled. Set [modality_options.audio] duration to keep more."]
        if d.max() < 0.5 * used:
            return [f"audio: every clip is at most {d.max():.2f} s but {used:g} s is modelled "
                    f"(the rest is padding); a shorter [modality_options.audio] duration trains faster."]
        return []

    def fit(self, raws: list[np.ndarray]) -> None:
        """Fit the mean/std of the log-mel features (per mel bin or overall) on training clips."""
        if not raws:
            raise UsageError("audio modality: no clips to fit the normalisation on")
        batches = (self.features.log_mel(self._waves(raws[i:i + 64])) for i in range(0, len(raws), 64))
        self.normalizer = Normalizer.fit(batches, per_bin=self.opts.normalization == "per-bin")

    def preprocess(self, raws: list[np.ndarray]) -> torch.Tensor:
        """Clips -> float32 normalised log-mel ``(N, n_mels, frames)``."""
        return self.features_of(self._waves(raws))

    def features_of(self, waves: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(N, samples)`` (any device) -> normalised log-mel on the same device."""
        return self._normalizer().apply(self.features.log_mel(waves)).float()

    def _waves(self, raws: Sequence[np.ndarray]) -> torch.Tensor:
        n = self.opts.num_samples
        for r in raws:
            if np.shape(r) != (n,):
                raise BadInput(f"clip has shape {np.shape(r)}, expected ({n},): read with other audio options?")
        return torch.from_numpy(np.stack([np.asarray(r, dtype=np.float32) for r in raws]))

    def state(self) -> dict[str, Any]:
        return {"options": dataclasses.asdict(self.opts), "normalization": self._normalizer().to_json()}

    def load_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if "options" in state:
            self._configure(AudioOptions.from_dict({**dataclasses.asdict(self.opts), **state["options"]}))
        self.normalizer = Normalizer.from_json(state["normalization"])
        bins = self.normalizer.mean.numel()
        if bins not in (1, self.opts.n_mels):
            raise UsageError(f"audio state has {bins} normalisation bins for {self.opts.n_mels} mel bins")

    def num_elements(self) -> int:
        return self.shape[0] * self.shape[1]

    def data_shape(self) -> tuple[int, ...]:
        """``(n_mels, frames)``: known from the options alone, before fit()."""
        return self.shape

    def _normalizer(self) -> Normalizer:
        if self.normalizer is None:
            raise UsageError("audio modality used before fit(): normalisation statistics unknown")
        return self.normalizer

    # ---- networks -----------------------------------------------------------------------
    @property
    def private_label_column(self) -> str | None:
        """The voice latent learns to tell apart the singers of the manifest's ``speaker`` column."""
        return SPEAKER_COLUMN

    def build_encoder(self, latent_dim: int) -> torch.nn.Module:
        """Content encoder for the shared latent; with ``private_dim`` > 0 a voice branch beside it
        (frame-wise, pooled over time: see :mod:`.voice`) gives the private voice latent."""
        o = self.opts
        content = SpectrogramEncoder(*self.shape, latent_dim, o.width, o.hidden, o.depth)
        if not o.private_dim:
            return content
        return ContentVoiceEncoder(content, VoiceEncoder(o.n_mels, o.private_dim, o.width))

    def build_decoder(self, input_dim: int) -> torch.nn.Module:
        """With a voice latent (the last ``private_dim`` inputs) it also sets a per-mel-bin level."""
        o = self.opts
        if not o.private_dim:
            return SpectrogramDecoder(*self.shape, input_dim, o.width, o.hidden, o.depth, o.likelihood_scale)
        return VoiceConditionedDecoder(*self.shape, input_dim, o.private_dim, o.width, o.hidden, o.depth,
                                       o.likelihood_scale)

    def log_likelihood(self, params: SpectrogramParams, x: torch.Tensor) -> torch.Tensor:
        """Gaussian or Laplace log-density of normalised log-mel ``x``, summed per example ``(N,)``."""
        mean, log_scale = params[0].float(), params[1].float()
        error = (x.float() - mean) * torch.exp(-log_scale)
        if self.opts.likelihood == "laplace":
            per = -error.abs() - log_scale - math.log(2.0)
        else:
            per = -0.5 * error.pow(2) - log_scale - 0.5 * LOG_2PI
        return per.flatten(1).sum(1)

    def generate(self, decoder: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        return decoder(h)[0].float()

    # ---- files --------------------------------------------------------------------------
    def spectrogram_to_audio(self, x: torch.Tensor, n_iter: int | None = None,
                             peak_normalize: bool = False) -> torch.Tensor:
        """Normalised log-mel ``(N, n_mels, frames)`` -> waveforms ``(N, samples)``, same device.

        Undoes the normalisation, inverts the mel filterbank (non-negative least squares)
        and recovers phase with Griffin-Lim, all batched.
        """
        x = torch.nan_to_num(x.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
        log_mel = self._normalizer().invert(x).clamp(math.log(self.opts.log_floor), 20.0)
        wave = self.features.log_mel_to_audio(log_mel, n_iter)
        if peak_normalize:
            peak = wave.abs().amax(dim=1, keepdim=True)
            wave = torch.where(peak > 1e-8, wave * (0.95 / peak.clamp_min(1e-8)), wave)
        return wave

    def waveforms(self, x: torch.Tensor) -> torch.Tensor:
        """Peak-normalised waveforms of normalised log-mels (see :meth:`spectrogram_to_audio`)."""
        return self.spectrogram_to_audio(x, peak_normalize=True)

    def evaluation_figures(self, x: torch.Tensor) -> dict[str, Any]:
        """``audio_playback``: spectral convergence of up to 64 real clips' log-mels after the
        way back to sound (Griffin-Lim) and forward again; bounds how good any rendered clip sounds."""
        from .quality import griffin_lim_report
        return {"audio_playback": griffin_lim_report(self, x[:64])}

    def render_batch(self, xs: torch.Tensor, paths: Sequence[Path]) -> None:
        """Render ``xs`` ``(N, n_mels, frames)`` to ``N`` 16-bit WAV files in one batched pass."""
        if len(paths) != xs.shape[0]:
            raise UsageError(f"render_batch: {xs.shape[0]} spectrograms but {len(paths)} paths")
        waves = self.spectrogram_to_audio(xs, peak_normalize=True).clamp(-1.0, 1.0).cpu().numpy()
        for wave, path in zip(waves, paths):
            sf.write(str(path), wave, self.opts.sample_rate, subtype="PCM_16", format="WAV")

    def render(self, x: torch.Tensor, path: Path) -> None:
        """Write one spectrogram ``(n_mels, frames)`` as a peak-normalised WAV at the run's rate."""
        self.render_batch(x.unsqueeze(0), [path])
