"""The ``audio`` modality: mono clips as log-mel spectrograms, with two models (``model``):

* ``speech`` (default): a clip as a sequence -- per-frame content, a voice latent, pitch as
  its own stream (:mod:`.speech`); what voice conversion and matching need;
* ``clip``: one clip-level code of a fixed-length log-mel spectrogram (:mod:`.networks`).

Clip model likelihood choice: the decoder predicts the mean of each normalised log-mel value and
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
from polyvae.core.experts import gaussian_log_density_sum
from polyvae.core.manifest import SPEAKER_COLUMN
from polyvae.core.sound import Audio, SoundModality

from .loading import (LENGTH_POLICIES, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, LoadingConfig, clip_from_samples,
                      read_clip_and_duration)
from .networks import SpectrogramDecoder, SpectrogramEncoder, SpectrogramParams
from .spectrogram import MelFeatures, Normalizer, SpectrogramConfig
from .speech import PitchStats, SpeechDecoder, SpeechEncoder, SpeechShape, frames_up_to_end, pitch_track, split
from .speech_networks import envelope_projection, warp_bank
from .speech import log_likelihood_rows as speech_log_likelihood_rows
from .voice import ContentVoiceEncoder, VoiceConditionedDecoder, VoiceEncoder



_LOADING, _FEATURES = LoadingConfig(), SpectrogramConfig()
MODELS = ("speech", "clip")
#: real clips `evaluate` sends through Griffin-Lim and back for its playback-quality figure
PLAYBACK_CLIPS = 32
RENDERERS = ("griffin-lim", "excitation", "split")
PITCH_TRACKERS = ("harvest", "yin")
CLIP_TIMES = ("stretched", "absolute")
CLIP_STARTS = ("speech", "file")
#: the speech model's log-F0 mean and spread are fitted on at most this many training clips
PITCH_FIT_CLIPS = 160
#: what an option left unset (None) means, per model
MODEL_DEFAULTS = {
    "speech": {"n_mels": 80, "private_dim": 16, "width": 96, "depth": 3},
    "clip": {"n_mels": _FEATURES.n_mels, "private_dim": 8, "width": 128, "depth": 2,
             "hop_length": _FEATURES.hop_length, "n_fft": _FEATURES.n_fft, "duration": _LOADING.duration},
}
#: bounds of the per-bin ratio by which with_profile scales a clip's spectral spread. A
#: converted clip's frames, averaged from several of the target's frames at other pitches, vary
#: about half as much per bin as a buzzy target's real frames; scaling their deviations by the
#: whole ratio (up to 2) overdid it: on real voices an interpolation toward such a voice was heard
#: less like it over the last steps than at alpha 0.8, and within 1.25 it rises to the end
#: (docs/voice.md, "The spread ratio bounded to 1.25")
SPREAD_RATIO = (0.8, 1.25)
#: an automatic clip length covers this share of the training clips whole
AUTO_DURATION_QUANTILE = 0.95
AUTO_DURATION_STEP = 0.25


@dataclass(frozen=True)
class AudioOptions:
    """Every option of the audio modality (``modality_options["audio"]`` in a run config).

    ``model`` picks the networks: ``"speech"`` (default) models a clip as a sequence --
    content per frame, the voice per clip, pitch as its own stream (:mod:`.speech`);
    ``"clip"`` is the earlier single clip-level code of a fixed-length log-mel spectrogram.
    Options left unset (None) take the model's defaults; ``duration`` unset is fitted on the
    training clips (long enough for 95% of them whole, up to ``max_duration``).
    """

    model: str = "speech"
    sample_rate: int = _LOADING.sample_rate
    duration: float | None = None
    max_duration: float = 10.0
    length_policy: str = _LOADING.length_policy
    peak_normalize: bool = _LOADING.peak_normalize
    n_fft: int | None = None
    hop_length: int | None = None
    n_mels: int | None = None
    f_min: float = _FEATURES.f_min
    f_max: float | None = _FEATURES.f_max
    log_floor: float = _FEATURES.log_floor
    normalization: str = "per-bin"
    likelihood: str = "gaussian"
    likelihood_scale: str = "per-bin"
    width: int | None = None
    hidden: int = 256
    depth: int | None = None
    #: size of the private voice latent (0: no voice latent; the encoder is content only)
    private_dim: int | None = None
    #: speech model: per-frame content code size, convolution kernel and residual blocks
    content_dim: int = 16
    kernel: int = 5
    blocks: int = 2
    #: speech model: the content code and the frame networks run at one frame in ``stride``
    stride: int = 2
    #: speech model: the content code reads the spectrum's first N cepstral coefficients (its
    #: envelope, without the harmonics), warped in training by up to 1 +- formant_warp
    envelope_coefficients: int = 24
    formant_warp: float = 0.2
    #: speech model: how frames become sound: "griffin-lim" (phase recovered from the
    #: magnitude: the voice the ear recognises best), "excitation" (a source-filter
    #: synthesis: a pulse train at the decoded pitch shaped by the decoded magnitude, so the
    #: pitch contour is kept exactly, a little less of the voice) or "split" (that synthesis
    #: below ``split_hz``, taking ``split_share`` of each bin there, Griffin-Lim for the rest).
    #: What generation, reconstruction and voice interpolation render with.
    renderer: str = "griffin-lim"
    #: speech model: what a conversion (voice-morph) renders with, one of the same: "split"
    #: keeps the source's intonation (the converted pitch is heard), where Griffin-Lim's
    #: phase blurs it; interpolation keeps ``renderer``, whose steps the ear hears steadily
    conversion_renderer: str = "split"
    #: speech model, "split" rendering: the excitation synthesis below this frequency, Griffin-Lim above
    split_hz: float = 600.0
    #: speech model, "split" rendering: the share of the band below ``split_hz`` the excitation
    #: takes (the rest stays Griffin-Lim's; 1: the excitation alone)
    split_share: float = 0.6
    #: speech model, "split" rendering: the excitation is shaped by the decoded magnitude's
    #: power averaged over this many Hz (its envelope, without the harmonics of the frames it
    #: came from, which sit at other pitches than the converted contour); 0: the magnitude itself
    split_envelope_hz: float = 300.0
    #: speech model: the F0 tracker, "harvest" (WORLD's Harvest: the voicing and contour
    #: independent trackers agree with, ~0.2 s per second of audio, in threads) or "yin"
    #: (batched torch, ~100x faster, misses voiced onsets and creak; runs saved before the
    #: option load with it)
    pitch_tracker: str = "harvest"
    #: speech model: how the clip head (what text or an image decodes to) lays a clip out in
    #: time: "stretched" (every clip resampled from its own length to the whole window, the
    #: length predicted beside it: renditions at different speeds line up, so what is decoded
    #: is a word rather than a blur of its timings) or "absolute" (frame by frame from the
    #: start; runs saved before the option load with it)
    clip_time: str = "stretched"
    #: speech model: where the shared expert (audio -> image/text) and the clip head (text/image ->
    #: audio) begin reading a clip: "speech" (150 ms before its first voiced frame, so the
    #: silence a recording or a synthesiser leaves before the word does not move it in the
    #: window) or "file" (the file's first frame; runs saved before the option load with it).
    #: The frame path (reconstruction, conversion, matching) keeps the whole file either way.
    clip_start: str = "speech"
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
        opts = cls(**values).resolved()
        opts.validate()
        return opts

    def resolved(self) -> "AudioOptions":
        """Unset options filled with the model's defaults (``duration`` stays unset until fitted)."""
        if self.model not in MODELS:
            raise UsageError(f"audio option model must be one of {', '.join(MODELS)}, got {self.model!r}")
        defaults = dict(MODEL_DEFAULTS[self.model])
        defaults.setdefault("hop_length", max(1, int(round(self.sample_rate / 100))))       # 10 ms
        defaults.setdefault("n_fft", 1 << max(4, int(round(math.log2(max(1.0, 0.064 * self.sample_rate))))))  # ~64 ms
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise UsageError(f"audio option {what}")

        need(MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE,
             f"sample_rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}")
        need(self.duration is None or 0 < self.duration <= 600,
             f"duration must be in (0, 600] seconds, got {self.duration}")
        need(0 < self.max_duration <= 600, f"max_duration must be in (0, 600] seconds, got {self.max_duration}")
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
        need(self.stride in (1, 2, 4), f"stride must be 1, 2 or 4, got {self.stride}")
        need(self.content_dim >= 1 and self.kernel >= 1 and self.kernel % 2 == 1 and self.blocks >= 1,
             "content_dim and blocks must be positive and kernel a positive odd number")
        need(1 <= self.envelope_coefficients and 0 <= self.formant_warp < 1,
             "envelope_coefficients must be >= 1 and formant_warp in [0, 1)")
        need(self.pitch_tracker in PITCH_TRACKERS,
             f"pitch_tracker must be one of {', '.join(PITCH_TRACKERS)}, got {self.pitch_tracker!r}")
        need(self.clip_time in CLIP_TIMES, f"clip_time must be one of {', '.join(CLIP_TIMES)}, got {self.clip_time!r}")
        need(self.clip_start in CLIP_STARTS,
             f"clip_start must be one of {', '.join(CLIP_STARTS)}, got {self.clip_start!r}")
        for name in ("renderer", "conversion_renderer"):
            value = getattr(self, name)
            need(value in RENDERERS, f"{name} must be one of {', '.join(RENDERERS)}, got {value!r}")
        need(self.split_hz > 0, f"split_hz must be positive, got {self.split_hz}")
        need(0.0 <= self.split_share <= 1.0, f"split_share must be between 0 and 1, got {self.split_share}")
        need(self.split_envelope_hz >= 0, f"split_envelope_hz must be >= 0, got {self.split_envelope_hz}")
        need(self.griffin_lim_iters >= 1 and self.inverse_mel_iters >= 0,
             "griffin_lim_iters must be >= 1 and inverse_mel_iters >= 0")

    @property
    def clip_seconds(self) -> float:
        """The clip length the networks see (``max_duration`` while ``duration`` is not fitted)."""
        return self.duration if self.duration is not None else self.max_duration

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def loading(self, pad: bool = False) -> LoadingConfig:
        """How a file is read: cut to the clip length, and (``pad``) padded to it."""
        return LoadingConfig(self.sample_rate, self.clip_seconds, self.length_policy, self.peak_normalize, pad=pad)

    def spectrogram(self) -> SpectrogramConfig:
        multiple = 2 ** self.depth * (self.stride if self.model == "speech" else 1)
        return SpectrogramConfig(self.sample_rate, self.num_samples, self.n_fft, self.hop_length,
                                 self.n_mels, self.f_min, self.f_max, self.log_floor, multiple,
                                 self.griffin_lim_iters, inverse_mel_iters=self.inverse_mel_iters)


def _coerce(kind: Any, value: Any) -> Any:
    """JSON/TOML values to the option's type (``"16000"`` from a CLI becomes 16000)."""
    kind = str(kind)
    if value is None:
        if "None" in kind:
            return None
        raise ValueError("None is only allowed for options that may be left unset")
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
    """``audio``: clips from any file soundfile reads -> per-frame log-mel features; with the
    speech model also pitch, voicing and the clip's extent (see :mod:`.speech`)."""

    name = "audio"
    extension = "wav"
    cell_is_path = True
    version = "2"
    description = ("audio (wav/flac/ogg, any rate): speech as content frames + voice + pitch "
                   "(or one clip-level code), Griffin-Lim rendering")

    def __init__(self, **options: Any):
        self._configure(AudioOptions.from_dict(options))
        self.normalizer: Normalizer | None = None
        self.pitch_stats = PitchStats()
        self._durations: list[float] = []       # of every file read: for notes()

    def _configure(self, opts: AudioOptions) -> None:
        super().__init__(**dataclasses.asdict(opts))
        self.opts = opts
        self.features = MelFeatures(opts.spectrogram())

    @property
    def speech(self) -> bool:
        return self.opts.model == "speech"

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one preprocessed example: ``(n_mels [+ 3 with the speech model], frames)``."""
        n_mels, frames = self.features.config.shape
        return (n_mels + 3 if self.speech else n_mels, frames)

    @property
    def sample_rate(self) -> int:
        return self.opts.sample_rate

    @property
    def clip_samples(self) -> int:
        return self.opts.num_samples

    # ---- data ---------------------------------------------------------------------------
    def read(self, cell: str, base_dir: Path) -> np.ndarray:
        """Float32 mono clip at the configured rate: the clip model's fixed length (padded or
        cut), or for speech at most the clip length (unpadded: its length marks its end)."""
        clip, seconds = read_clip_and_duration(Path(base_dir) / cell, self.opts.loading(pad=not self.speech))
        self._durations.append(seconds)
        return clip

    def from_object(self, value: Any) -> np.ndarray:
        """An :class:`~polyvae.core.sound.Audio` (any rate), or a numpy array of samples taken
        to be at the run's sample rate, as the clip :meth:`read` would make of it."""
        loading = self.opts.loading(pad=not self.speech)
        if isinstance(value, Audio):
            return clip_from_samples(value.samples, value.sample_rate, loading)
        if isinstance(value, np.ndarray):
            return clip_from_samples(value, self.opts.sample_rate, loading)
        return super().from_object(value)

    def read_signal(self, path: Path, max_seconds: float) -> tuple[np.ndarray, float]:
        """The first ``max_seconds`` of the file at the run's rate (not padded),
        peak-normalised as a whole when the run normalises clips."""
        o = self.opts
        config = LoadingConfig(o.sample_rate, max_seconds, "pad-trim", o.peak_normalize, pad=False)
        return read_clip_and_duration(Path(path), config)

    def as_clip(self, piece: np.ndarray) -> np.ndarray:
        """Peak-normalised as clips are read (when the run normalises them)."""
        piece = np.asarray(piece, dtype=np.float32)
        top = float(np.abs(piece).max()) if piece.size else 0.0
        return piece * (self.opts.loading().peak / top) if self.opts.peak_normalize and top > 0 else piece

    def notes(self) -> list[str]:
        """Clips cut to the clip length, or all much shorter than it: both are worth a setting."""
        if not self._durations:
            return []
        d, used, n = np.asarray(self._durations), self.opts.clip_seconds, len(self._durations)
        cut = int((d > used + 1e-3).sum())
        fitted = (f" ({used:g} s was fitted to hold {100 * AUTO_DURATION_QUANTILE:.0f}% of the training clips "
                  f"whole, up to max_duration {self.opts.max_duration:g} s)") if self._fitted_duration else ""
        if cut:
            kept = "first" if self.opts.length_policy == "pad-trim" else "middle"
            return [f"audio: {cut} of {n} clips are longer than the {used:g} s used (longest "
                    f"{d.max():.2f} s, median {np.median(d):.2f} s); only their {kept} {used:g} s "
                    f"is modelled{fitted}. Set [modality_options.audio] duration to keep more."]
        if d.max() < 0.5 * used:
            return [f"audio: every clip is at most {d.max():.2f} s but {used:g} s is modelled "
                    f"(the rest is padding); a shorter [modality_options.audio] duration trains faster."]
        return []

    _fitted_duration = False

    def fit(self, raws: list[np.ndarray]) -> None:
        """Fit the clip length (when unset), then the statistics the features are normalised
        with, on the training clips: per mel bin (or overall), and log-F0 of voiced frames."""
        if not raws:
            raise UsageError("audio modality: no clips to fit the normalisation on")
        if self.opts.duration is None:
            seconds = np.array([len(r) for r in raws]) / self.opts.sample_rate
            fitted = float(np.quantile(seconds, AUTO_DURATION_QUANTILE))
            fitted = math.ceil(fitted / AUTO_DURATION_STEP - 1e-9) * AUTO_DURATION_STEP
            fitted = float(min(self.opts.max_duration, max(AUTO_DURATION_STEP, fitted)))
            self._configure(dataclasses.replace(self.opts, duration=fitted))
            self._fitted_duration = True
        per_bin = self.opts.normalization == "per-bin"
        if not self.speech:
            batches = (self.features.log_mel(self._waves(raws[i:i + 64])[0]) for i in range(0, len(raws), 64))
            self.normalizer = Normalizer.fit(batches, per_bin=per_bin)
            return
        mels, f0s = [], []
        # the pitch statistics (a mean and a spread) from up to PITCH_FIT_CLIPS clips spread over the set
        tracked = set(np.linspace(0, len(raws) - 1, min(len(raws), PITCH_FIT_CLIPS)).round().astype(int).tolist())
        for i in range(0, len(raws), 64):
            waves, lengths = self._waves(raws[i:i + 64])
            inside = self._inside(lengths)
            log_mel = self.features.log_mel(waves)
            mels.append(log_mel.transpose(1, 2)[inside])                       # (frames inside, n_mels)
            rows = [k for k in range(len(waves)) if i + k in tracked]
            if rows:
                log_f0, voiced = self._pitch(waves[rows], lengths[rows], inside.shape[1])
                f0s.append(log_f0[voiced & inside[rows]])
        frames = torch.cat(mels)
        self.normalizer = Normalizer.fit([frames.T[None]], per_bin=per_bin)
        voiced_f0 = torch.cat(f0s)
        if voiced_f0.numel() >= 10:
            self.pitch_stats = PitchStats(float(voiced_f0.mean()), max(0.05, float(voiced_f0.std())))

    def preprocess(self, raws: list[np.ndarray]) -> torch.Tensor:
        """Clips -> float32 features ``(N, *shape)`` (see the module docstrings of the models)."""
        waves, lengths = self._waves(raws)
        spec = self.features_of(waves)
        if not self.speech:
            return spec
        inside = self._inside(lengths)
        log_f0, voiced = self._pitch(waves, lengths, inside.shape[1])
        voiced = voiced & inside
        s = self.pitch_stats
        f0 = torch.where(voiced.any(-1, keepdim=True), (log_f0 - s.mean) / s.std, torch.zeros_like(log_f0))
        m = inside.float()
        return torch.cat([spec * m[:, None], (f0 * m)[:, None], voiced.float()[:, None], m[:, None]], 1)

    def _pitch(self, waves: torch.Tensor, lengths: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """log-F0 and voiced mask ``(N, frames)`` of padded clips by the run's tracker."""
        return pitch_track(waves, self.opts.sample_rate, self.opts.hop_length, frames, self.opts.pitch_tracker,
                           lengths)

    def features_of(self, waves: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(N, samples)`` (any device) -> normalised log-mel on the same device."""
        return self._normalizer().apply(self.features.log_mel(waves)).float()

    def _waves(self, raws: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips padded (or cut) to the clip length ``(N, samples)``, and their own lengths ``(N,)``."""
        n = self.opts.num_samples
        out = np.zeros((len(raws), n), dtype=np.float32)
        lengths = np.zeros(len(raws), dtype=np.int64)
        for i, r in enumerate(raws):
            r = np.asarray(r, dtype=np.float32)
            if r.ndim != 1:
                raise BadInput(f"clip has shape {np.shape(r)}, expected a 1-D array of samples")
            if len(r) > n:                       # a clip read before the length was fitted
                start = 0 if self.opts.length_policy == "pad-trim" else (len(r) - n) // 2
                r = r[start:start + n]
            before = (n - len(r)) // 2 if (self.opts.length_policy == "center-crop" and not self.speech) else 0
            out[i, before:before + len(r)] = r
            lengths[i] = len(r)
        return torch.from_numpy(out), torch.from_numpy(lengths)

    def _inside(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames inside each clip ``(N, frames)``: those whose centre lies before its end (at least one)."""
        frames = self.features.config.num_frames
        centre = torch.arange(frames) * self.opts.hop_length
        return (centre[None] < lengths[:, None].clamp_min(1)) | (torch.arange(frames)[None] == 0)

    def state(self) -> dict[str, Any]:
        return {"options": dataclasses.asdict(self.opts), "normalization": self._normalizer().to_json(),
                "pitch": self.pitch_stats.to_json()}

    def load_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if "options" in state:
            saved = {"pitch_tracker": "yin", "clip_time": "absolute", "clip_start": "file",  # saved before the options
                     **state["options"]}
            self._configure(AudioOptions.from_dict({**dataclasses.asdict(self.opts), **saved}))
        self.normalizer = Normalizer.from_json(state["normalization"])
        if "pitch" in state:
            self.pitch_stats = PitchStats.from_json(state["pitch"])
        bins = self.normalizer.mean.numel()
        if bins not in (1, self.opts.n_mels):
            raise UsageError(f"audio state has {bins} normalisation bins for {self.opts.n_mels} mel bins")

    def num_elements(self) -> int:
        return self.opts.n_mels * self.shape[1]

    def data_shape(self) -> tuple[int, ...]:
        """``(channels, frames)``: known once the clip length is (set, or fitted)."""
        if self.opts.duration is None:
            raise UsageError("audio modality used before fit(): the clip length is not fitted yet")
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

    def speech_shape(self) -> SpeechShape:
        o = self.opts
        return SpeechShape(o.n_mels, self.shape[1], o.content_dim, o.private_dim, o.width, o.hidden, o.kernel,
                           o.blocks, o.depth, o.stride, o.clip_time == "stretched", o.clip_start == "speech")

    def _content_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the speech model's content networks read: the envelope projection, and the
        frequency warps of training (None without)."""
        o = self.opts
        envelope = envelope_projection(o.n_mels, o.envelope_coefficients)
        warps = (warp_bank(o.n_mels, o.f_min, o.f_max or o.sample_rate / 2, 1.0 + o.formant_warp)
                 if o.formant_warp > 0 else None)
        return envelope, warps

    def build_encoder(self, latent_dim: int) -> torch.nn.Module:
        """Speech: per-frame content pooled into the shared expert, and the voice (:mod:`.speech`).
        Clip: a conv encoder for the shared latent; with ``private_dim`` > 0 a voice branch
        beside it (frame-wise, pooled over time: see :mod:`.voice`)."""
        o = self.opts
        if self.speech:
            return SpeechEncoder(self.speech_shape(), latent_dim, *self._content_inputs())
        content = SpectrogramEncoder(*self.shape, latent_dim, o.width, o.hidden, o.depth)
        if not o.private_dim:
            return content
        return ContentVoiceEncoder(content, VoiceEncoder(o.n_mels, o.private_dim, o.width))

    def build_decoder(self, input_dim: int) -> torch.nn.Module:
        """Speech: the hierarchical decoder of :mod:`.speech`. Clip: a conv decoder; with a voice
        latent (the last ``private_dim`` inputs) it also sets a per-mel-bin level."""
        o = self.opts
        if self.speech:
            return SpeechDecoder(self.speech_shape(), input_dim, *self._content_inputs())
        if not o.private_dim:
            return SpectrogramDecoder(*self.shape, input_dim, o.width, o.hidden, o.depth, o.likelihood_scale)
        return VoiceConditionedDecoder(*self.shape, input_dim, o.private_dim, o.width, o.hidden, o.depth,
                                       o.likelihood_scale)

    def log_likelihood(self, params: SpectrogramParams, x: torch.Tensor) -> torch.Tensor:
        """Clip model: Gaussian or Laplace log-density of normalised log-mel ``x``, summed per
        example ``(N,)`` (the speech model scores in :meth:`log_likelihood_rows`)."""
        mean, log_scale = params[0].float(), params[1].float()
        if self.opts.likelihood == "laplace":
            per = -((x.float() - mean) * torch.exp(-log_scale)).abs() - log_scale - math.log(2.0)
            return per.flatten(1).sum(1)
        return gaussian_log_density_sum(x.float(), mean, log_scale)

    def log_likelihood_rows(self, decoder, h, x, rows, private=None) -> torch.Tensor:
        if not self.speech:
            return super().log_likelihood_rows(decoder, h, x, rows, private)
        return speech_log_likelihood_rows(decoder, h, x, rows, private)

    def generate(self, decoder: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        if self.speech:
            return decoder(h).float()
        return decoder(h)[0].float()

    def reconstruct(self, decoder: torch.nn.Module, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Speech: ``x``'s content, intonation, voicing and timing in the voice of ``h``'s private
        latent (voice conversion when it is another voice's). Clip: as :meth:`generate`."""
        if self.speech:
            return decoder(h, x).float()
        return self.generate(decoder, h)

    def frame_codes(self, decoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """Speech: the content code of every frame ``(N, T, content_dim)`` (the posterior mean of
        q(c | x), repeated from the code's rate up to the frame rate), what the frame decoder
        renders a voice from; the speaker is normalised away in it. The clip model: None."""
        if not self.speech:
            return None
        spec, _, _, inside = split(x, self.opts.n_mels)
        codes, _ = decoder.posterior(spec, inside)
        codes = codes.float().repeat_interleave(self.opts.stride, -1)[..., :spec.shape[-1]]
        return codes.transpose(1, 2) * inside[..., None]

    # ---- files --------------------------------------------------------------------------
    def spectrogram_to_audio(self, x: torch.Tensor, n_iter: int | None = None,
                             peak_normalize: bool = False, renderer: str | None = None) -> torch.Tensor:
        """Decoded examples ``(N, *shape)`` -> waveforms ``(N, samples)``, same device.

        Undoes the normalisation, inverts the mel filterbank (non-negative least squares)
        and recovers phase with Griffin-Lim, all batched; the speech model renders with
        ``renderer`` (default: the ``renderer`` option). With the speech model, frames outside
        the clip are silence and the waveform is cut after its last frame.
        """
        renderer = renderer or self.opts.renderer
        x = torch.nan_to_num(x.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
        floor = math.log(self.opts.log_floor)
        if self.speech:
            spec, f0, voiced, inside = split(x, self.opts.n_mels)
            log_mel = self._normalizer().invert(spec).clamp(floor, 20.0)
            log_mel = torch.where(inside[:, None] > 0.5, log_mel, torch.full_like(log_mel, floor))
        else:
            log_mel = self._normalizer().invert(x).clamp(floor, 20.0)
        if self.speech and renderer in ("excitation", "split"):
            hz = (f0 * self.pitch_stats.std + self.pitch_stats.mean).clamp(-5.0, 9.0).exp()
            linear = self.features.mel_to_linear(log_mel.exp())
            sounding = (voiced > 0.5) & (inside > 0.5)
            if renderer == "excitation":
                wave = self.features.excitation(linear, hz, sounding)
            else:
                wave = self.features.excitation_below(linear, hz, sounding, self.opts.split_hz, n_iter,
                                                      self.opts.split_share, self.opts.split_envelope_hz)
        else:
            wave = self.features.log_mel_to_audio(log_mel, n_iter)
        if self.speech:
            end = (frames_up_to_end(inside) * self.opts.hop_length).clamp_max(wave.shape[1])
            wave = wave * (torch.arange(wave.shape[1], device=x.device)[None] < end[:, None])
        if peak_normalize:
            peak = wave.abs().amax(dim=1, keepdim=True)
            wave = torch.where(peak > 1e-8, wave * (0.95 / peak.clamp_min(1e-8)), wave)
        return wave

    def spectrum(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised log-mel part ``(N, n_mels, frames)`` of examples and which frames are
        inside the clip ``(N, frames)`` (all of them with the clip model)."""
        if self.speech:
            spec, _, _, inside = split(x, self.opts.n_mels)
            return spec, inside
        return x.float(), torch.ones(x.shape[0], x.shape[-1], device=x.device)

    def spectral_profile(self, x: torch.Tensor) -> torch.Tensor | None:
        """Speech model: ``(2 n_mels,)``, the mean normalised log-mel per bin over every frame
        inside the clips of ``x`` (voiced or not), then its standard deviation per bin over the
        same frames. The clip model: None (its padding is part of the clip)."""
        if not self.speech:
            return None
        frames, inside = self.spectral_frames(x)
        frames = frames[inside > 0.5]
        if not frames.shape[0]:
            return None
        spread = frames.std(0, unbiased=False)
        return torch.cat([frames.mean(0), spread])

    def with_profile(self, x: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """Speech model: the frames inside the clips moved, per mel bin, to the mean and the
        spread of ``profile`` (from :meth:`spectral_profile`; a profile of ``n_mels`` values,
        as tables saved before spreads, sets the mean only). Each bin's deviations from its
        mean are scaled by the ratio of spreads (bounded by :data:`SPREAD_RATIO`), then the mean is set.

        Measured on real voices converted toward another speaker (an independent speaker
        encoder): the mean alone took the outputs heard as the target from 0.55 to 0.73; the
        decoder under-renders a voice latent's spectral tilt and formants, which the mean
        restores. The spread is the global-variance compensation of statistical voice
        conversion (Toda et al. 2007): a decoder's frames vary less than real ones (the
        muffled, averaged sound); matching it (then within 1/2..2) took conversions from 0.66 to
        0.72 and reconstructions from 0.88 to 0.96 on the same clips; with the target's own frames
        mixed in, the mean alone hears 0.756 of 168 conversions as the target, within 1.25 0.810.
        Pitch, voicing and timing stay."""
        current = self.spectral_profile(x)
        if current is None:
            return x
        n = self.opts.n_mels
        profile = profile.to(x.device, torch.float32)
        mean_now, spread_now = current[:n], current[n:]
        spec = x[:, :n].float() - mean_now.view(1, -1, 1)
        if profile.numel() == 2 * n:
            ratio = (profile[n:] / spread_now.clamp_min(1e-3)).clamp(*SPREAD_RATIO)
            spec = spec * ratio.view(1, -1, 1)
        return self._with_spectrum_inside(x, spec + profile[:n].view(1, -1, 1))

    def spectral_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Speech: the normalised log-mel of every frame ``(N, T, n_mels)`` and the frames inside
        the clips ``(N, T)``. The clip model: None."""
        if not self.speech:
            return None
        spec, inside = self.spectrum(x)
        return spec.transpose(1, 2).float(), inside

    def with_spectral_frames(self, x: torch.Tensor, frames: torch.Tensor, share: float) -> torch.Tensor:
        """Speech: the log-mel of every frame inside the clips moved ``share`` of the way toward
        ``frames`` ``(N, T, n_mels)``; log-F0, voicing and the clips' extent kept."""
        if not self.speech:
            return x
        spec = x[:, :self.opts.n_mels].float()
        return self._with_spectrum_inside(x, spec + share * (frames.to(spec.device, spec.dtype).transpose(1, 2) - spec))

    def _with_spectrum_inside(self, x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        """Speech examples ``x`` with the log-mel ``spectrum`` ``(N, n_mels, T)`` on the frames
        inside the clips; the padding after them, pitch, voicing and extent as they were."""
        n = self.opts.n_mels
        out = x.clone()
        inside = (out[:, n + 2] > 0.5).unsqueeze(1)
        out[:, :n] = torch.where(inside, spectrum.to(out.dtype), out[:, :n])
        return out

    def waveforms(self, x: torch.Tensor, renderer: str | None = None) -> torch.Tensor:
        """Peak-normalised waveforms of decoded examples (see :meth:`spectrogram_to_audio`)."""
        return self.spectrogram_to_audio(x, peak_normalize=True, renderer=renderer)

    def to_values(self, xs: torch.Tensor) -> list[Audio]:
        """Decoded examples as :class:`Audio`, each as long as its clip."""
        return self._values(xs, self.opts.renderer)

    def converted_values(self, xs: torch.Tensor) -> list[Audio]:
        """Conversions as :class:`Audio`, rendered with the ``conversion_renderer`` option."""
        return self._values(xs, self.opts.conversion_renderer)

    def _values(self, xs: torch.Tensor, renderer: str) -> list[Audio]:
        """Decoded examples rendered by ``renderer`` as :class:`Audio`, each as long as its clip."""
        waves = self.waveforms(xs, renderer).clamp(-1.0, 1.0).cpu().numpy()
        if self.speech:           # at least one frame each, however little of it is inside
            _, inside = self.spectrum(xs)
            ends = (frames_up_to_end(inside).clamp_min(1) * self.opts.hop_length).clamp_max(self.clip_samples).tolist()
        else:
            ends = [self.clip_samples] * len(waves)
        return [Audio(w[:end], self.sample_rate) for w, end in zip(waves, ends)]

    def evaluation_figures(self, x: torch.Tensor) -> dict[str, Any]:
        """``audio_playback``: spectral convergence of up to 32 real clips' log-mels after the
        way back to sound (Griffin-Lim) and forward again; bounds how good any rendered clip sounds."""
        from .quality import griffin_lim_report
        return {"audio_playback": griffin_lim_report(self, x[:PLAYBACK_CLIPS])}

    def render_batch(self, xs: torch.Tensor, paths: Sequence[Path]) -> None:
        """Render ``xs`` ``(N, *shape)`` to ``N`` 16-bit WAV files in one batched pass, each as
        long as its clip."""
        if len(paths) != xs.shape[0]:
            raise UsageError(f"render_batch: {xs.shape[0]} spectrograms but {len(paths)} paths")
        for audio, path in zip(self.to_values(xs), paths):
            sf.write(str(path), audio.samples, self.opts.sample_rate, subtype="PCM_16", format="WAV")

    def render(self, x: torch.Tensor, path: Path) -> None:
        """Write one decoded example as a peak-normalised WAV at the run's rate."""
        self.render_batch(x.unsqueeze(0), [path])
