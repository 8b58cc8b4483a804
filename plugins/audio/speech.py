"""Speech as a sequence: the audio modality's ``model = "speech"``.

A clip becomes, per frame (``hop_length`` samples), its log-mel spectrum, its log-F0 and
whether it is voiced, and whether the frame is inside the clip (the rest is padding up to
the clip length the networks see)::

    x (n_mels + 3, T):  [0:n_mels]  log-mel, normalised per bin (statistics of training frames)
                        [n_mels]    log-F0, normalised over training voiced frames; carried
                                    through unvoiced frames by interpolation
                        [n_mels+1]  voiced (0/1)
                        [n_mels+2]  inside the clip (0/1)

The model (networks in :mod:`.speech_networks`) keeps what is said as a per-frame content
code ``c_{1:T}`` (time kept, the voice normalised away: its input is the spectrum's smooth
envelope, without the harmonics, randomly warped along frequency in training), the voice as
the clip-level private latent ``w``, and pitch as its own stream: the contour's shape
(intonation: log-F0 with the clip's mean and spread removed) travels with the content, its
level and range come from the voice. Its likelihood has two parts::

    log p(x | z, w) ~ log N(x | head(z, w))                                    per (subset, clip)
                    + E_q(c|x)[ log p(spectrum | c, pitch, w) ] - KL(q(c | x) || N(0, I))
                    + log p(pitch level | w)                                    once per clip

The clip head is what cross-modal generation decodes (text -> speech), fitted by default to
each clip stretched from its own length over the whole window (its length a channel of its
own: the same word said faster or slower lines up; :meth:`SpeechDecoder.head_target`); the frame-level VAE
is what conversion decodes: the source's ``c``, intonation, voicing and timing with another
``w``, its pitch level and range, and its spectrum (Hsu et al. 2016; Kameoka et al.'s
ACVAE-VC; the instance-normalised content of Chou et al.'s AdaIN-VC). The second part does not
depend on z, so it is computed once per clip and counted in every sub-sampled subset
(:func:`log_likelihood_rows`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from polyvae.core.experts import gaussian_log_density_sum

from .pitch import harvest, yin
from .spectrogram import resample_time
from .speech_networks import ClipExpert, ClipHead, ContentNet, FrameDecoder, PitchHead, VoiceNet, masked_stats

#: log-scale bounds of the spectrum's Gaussian (normalised units), as the clip model's
LOG_SCALE_RANGE = (-4.0, 1.0)
#: standard deviation of the voice's mean log-F0 and log spread around what w predicts (normalised units)
PITCH_LEVEL_SCALE = 0.1


@dataclass(frozen=True)
class SpeechShape:
    """Sizes of the speech networks (from the audio options)."""

    n_mels: int
    frames: int
    content_dim: int
    voice_dim: int
    width: int
    hidden: int
    kernel: int
    blocks: int
    depth: int
    #: the content code (and the frame networks) run at one frame in ``stride``
    stride: int = 1
    #: the clip head lays each clip over the whole window (:func:`stretched`), its length a
    #: channel of its own; False: frame by frame from the window's start (runs saved before it)
    stretch: bool = False
    #: the shared expert and the clip head read each clip from where its speech starts
    #: (:func:`from_speech_start`); False: from the file's start (runs saved before it)
    from_speech: bool = False

    @property
    def channels(self) -> int:
        return self.n_mels + 3


def split(x: torch.Tensor, n_mels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` -> (spectrum ``(B, n_mels, T)``, log-F0 ``(B, T)``, voiced ``(B, T)``, inside ``(B, T)``)."""
    x = x.float()
    return x[:, :n_mels], x[:, n_mels], x[:, n_mels + 1], x[:, n_mels + 2]


def intonation(f0: torch.Tensor, voiced: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """The log-F0 contour with the clip's voiced mean removed and divided by its voiced spread
    (at least 0.1, so a monotone clip stays flat): the shape of the melody, not the voice's
    register. ``(B, T)``, 0 outside the clip."""
    level, spread, _ = pitch_level(f0, voiced)
    return (f0 - level[:, None]) / spread[:, None] * inside


def pitch_level(f0: torch.Tensor, voiced: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and spread (>= 0.1) of the log-F0 of voiced frames, and their count, ``(B,)`` each."""
    mean, std = masked_stats(f0[:, None], voiced)
    return mean[:, 0, 0], std[:, 0, 0].clamp_min(0.1), voiced.sum(-1)


class SpeechEncoder(nn.Module):
    """``x`` -> ``(mu, logvar)`` of width ``latent_dim + voice_dim``: the shared expert (from the
    content frames and the intonation) then the voice."""

    def __init__(self, shape: SpeechShape, latent_dim: int, envelope: torch.Tensor | None = None,
                 warps: torch.Tensor | None = None):
        super().__init__()
        s = shape
        self.n_mels = s.n_mels
        self.stride = s.stride
        self.from_speech = s.from_speech
        self.content = ContentNet(s.n_mels, s.content_dim, s.width, s.kernel, s.blocks, envelope, warps, s.stride)
        self.clip = ClipExpert(s.content_dim + 3, s.frames // s.stride, latent_dim, s.width, s.hidden, s.depth)
        self.voice = VoiceNet(s.n_mels + 2, s.voice_dim, s.width, s.kernel, max(1, s.blocks - 1), s.stride) \
            if s.voice_dim else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.from_speech:
            x = from_speech_start(x, self.n_mels)
        spec, f0, voiced, inside = split(x, self.n_mels)
        mu_c, _ = self.content(spec, inside)
        pitch = torch.stack([intonation(f0, voiced, inside), voiced, inside], 1)[..., ::self.stride]
        mu, logvar = self.clip(torch.cat([mu_c, pitch], 1))
        if self.voice is None:
            return mu, logvar
        mu_w, logvar_w = self.voice(torch.cat([spec, f0[:, None] * inside[:, None], voiced[:, None]], 1), inside)
        return torch.cat([mu, mu_w], -1), torch.cat([logvar, logvar_w], -1)


class SpeechDecoder(nn.Module):
    """The two ways back to a clip: from z and the voice at once (:class:`ClipHead`, cross-modal
    generation), and frame by frame from the clip's own content and another voice (q(c | x),
    the frame decoder and the voice's pitch level: reconstruction and conversion)."""

    def __init__(self, shape: SpeechShape, input_dim: int, envelope: torch.Tensor | None = None,
                 warps: torch.Tensor | None = None):
        super().__init__()
        s = shape
        self.shape = s
        self.head = ClipHead(input_dim, s.voice_dim, s.channels, s.frames, s.width, s.hidden, s.depth)
        self.posterior = ContentNet(s.n_mels, s.content_dim, s.width, s.kernel, s.blocks, envelope, warps, s.stride)
        self.frames = FrameDecoder(s.content_dim, s.n_mels, max(1, s.voice_dim), s.width, s.kernel, s.blocks + 1,
                                   s.stride)
        self.pitch = PitchHead(s.voice_dim, s.width) if s.voice_dim else None
        lo, hi = LOG_SCALE_RANGE
        start = float(torch.logit(torch.tensor(-lo / (hi - lo))))
        self.raw_log_scale = nn.Parameter(torch.full((1, s.n_mels, 1), start))          # frame decoder
        self.raw_head_scale = nn.Parameter(torch.full((1, s.channels, 1), start))       # clip head

    # ---- pieces -------------------------------------------------------------------------------
    @staticmethod
    def bounded(raw: torch.Tensor) -> torch.Tensor:
        lo, hi = LOG_SCALE_RANGE
        return lo + (hi - lo) * torch.sigmoid(raw)

    def voice_of(self, inputs: torch.Tensor) -> torch.Tensor:
        """The voice ``w`` at the end of the decoder input (zeros of width 1 without one)."""
        p = self.shape.voice_dim
        return inputs[:, -p:] if p else inputs.new_zeros(inputs.shape[0], 1)

    def voice_pitch(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The voice's mean log-F0 and spread ``(B,)`` (the training average, 0 and 1, without a voice)."""
        if self.pitch is None:
            return w.new_zeros(w.shape[0]), w.new_ones(w.shape[0])
        level, log_spread = self.pitch(w).unbind(-1)
        return level, log_spread.clamp(-4.0, 2.0).exp()

    def render(self, c: torch.Tensor, tone: torch.Tensor, voiced: torch.Tensor, f0: torch.Tensor,
               w: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        pitch = torch.stack([tone, voiced, f0 * inside], 1)
        return self.frames(c, pitch, w, inside)

    # ---- x -> x' ------------------------------------------------------------------------------
    def head_target(self, x: torch.Tensor) -> torch.Tensor:
        """What the clip head is fitted to for clips ``x`` ``(B, channels, T)``: the clips
        themselves, or (``stretch``) each resampled from its own length to the whole window,
        with the length (a share of the window) in the last channel: renditions of a word at
        different speeds line up, so the head's mean is a word, not a blur of its timings."""
        if not self.shape.stretch:
            return x
        n, t = self.shape.n_mels, x.shape[-1]
        if self.shape.from_speech:
            x = from_speech_start(x, n)
        length = frames_up_to_end(x[:, n + 2]).clamp_min(1)
        share = (length.to(x.dtype) / t)[:, None, None].expand(-1, 1, t)
        return torch.cat([stretched(x[:, :n + 2], length), share], 1)

    def forward(self, inputs: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """A decoded clip ``(B, channels, T)``: from z and w alone (``x`` None), or keeping the
        content, intonation, voicing and timing of ``x`` with the voice of ``w`` (conversion)."""
        n = self.shape.n_mels
        if x is None:
            out = self.head(inputs)
            if self.shape.stretch:            # back from the whole window to the clip's own length
                t = out.shape[-1]
                length = (out[:, n + 2].mean(-1) * t).round().clamp(1, t).long()
                inside = (torch.arange(t, device=out.device)[None] < length[:, None]).float()
                out = torch.cat([unstretched(out[:, :n + 2], length), inside[:, None]], 1)
            inside = _contiguous(out[:, n + 2] > 0.5).float()
            voiced = (out[:, n + 1] > 0.5).float() * inside
            return torch.cat([out[:, :n] * inside[:, None], (out[:, n] * inside)[:, None], voiced[:, None],
                              inside[:, None]], 1)
        w = self.voice_of(inputs)
        level, spread = self.voice_pitch(w)
        spec, f0_src, voiced, inside = split(x, n)
        c, _ = self.posterior(spec, inside)
        tone = intonation(f0_src, voiced, inside)
        f0 = level[:, None] + spread[:, None] * tone
        spec = self.render(c, tone, voiced, f0, w, inside)
        return torch.cat([spec * inside[:, None], (f0 * inside)[:, None], voiced[:, None], inside[:, None]], 1)


#: frames of lead-in kept before a clip's first voiced frame (10 ms each: a fricative or a
#: plosive's burst before the voicing)
LEAD_IN = 15


def speech_start(voiced: torch.Tensor, inside: torch.Tensor, lead_in: int = LEAD_IN) -> torch.Tensor:
    """``(B,)``: where each clip's speech starts: ``lead_in`` frames before its first voiced frame
    (0 when that is sooner, or when no frame is voiced)."""
    t = voiced.shape[-1]
    positions = torch.arange(t, device=voiced.device)
    first = torch.where((voiced > 0.5) & (inside > 0.5), positions, t).amin(-1)
    return torch.where(first < t, (first - lead_in).clamp_min(0), torch.zeros_like(first))


def from_speech_start(x: torch.Tensor, n_mels: int) -> torch.Tensor:
    """Clips ``(B, channels, T)`` moved earlier so that each begins where its speech does
    (:func:`speech_start`): the silence a recording (or a synthesiser) leaves before the first
    word does not move the word in the window. The freed frames at the end are outside the clip
    (zeros, the inside channel too)."""
    t = x.shape[-1]
    start = speech_start(x[:, n_mels + 1], x[:, n_mels + 2])
    source = torch.arange(t, device=x.device)[None] + start[:, None]                        # (B, T)
    moved = x.gather(-1, source.clamp_max(t - 1)[:, None, :].expand(-1, x.shape[1], -1))
    return moved * (source < t)[:, None, :].to(x.dtype)


def frames_up_to_end(inside: torch.Tensor) -> torch.Tensor:
    """``(N,)``: how many frames each clip lasts, up to its last frame inside it (0: none is),
    from the inside-the-clip channel or mask ``(N, frames)``."""
    positions = torch.arange(inside.shape[1], device=inside.device)
    return torch.where(inside > 0.5, positions, -1).amax(1) + 1


def stretched(x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Each clip's first ``length`` frames ``(B,)`` resampled to the whole window ``(B, C, T)``."""
    t = x.shape[-1]
    grid = torch.linspace(0.0, 1.0, t, device=x.device, dtype=x.dtype)
    return resample_time(x, grid[None] * (length.to(x.dtype) - 1)[:, None])


def unstretched(x: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`stretched`: the whole window back to each clip's ``length`` frames,
    zeros after them ``(B, C, T)``."""
    t = x.shape[-1]
    frames = torch.arange(t, device=x.device, dtype=x.dtype)
    positions = frames[None] * (t - 1) / (length.to(x.dtype) - 1).clamp_min(1)[:, None]
    return resample_time(x, positions) * (frames[None] < length[:, None].to(x.dtype))[:, None]


def _contiguous(inside: torch.Tensor) -> torch.Tensor:
    """A clip is one stretch from its first frame: frames up to the last one judged inside, at least one."""
    t = torch.arange(inside.shape[-1], device=inside.device)
    return t[None] < frames_up_to_end(inside).clamp_min(1)[:, None]


def log_likelihood_rows(decoder: SpeechDecoder, h: torch.Tensor, x: torch.Tensor, rows: torch.Tensor,
                        private: torch.Tensor | None) -> torch.Tensor:
    """The speech model's log-likelihood terms for every row of ``h`` ``(N,)``: the clip head's
    Gaussian of the whole clip given z and w (per row), and once per clip of ``x`` ``(B, ...)``
    the frame-level VAE's bound (spectrum from q(c | x), the pitch and the voice, KL of c to
    N(0, I) per frame) and the voice's pitch level."""
    s = decoder.shape
    spec, f0, voiced, inside = split(x, s.n_mels)
    w = private if private is not None and s.voice_dim else x.new_zeros(x.shape[0], max(1, s.voice_dim))
    w = w.float()
    # ---- once per clip: the frame-level VAE
    mu_c, logvar_c = decoder.posterior(spec, inside)
    c = mu_c + torch.randn_like(mu_c) * (0.5 * logvar_c).exp() if decoder.training else mu_c
    tone = intonation(f0, voiced, inside)
    mean = decoder.render(c, tone, voiced, f0, w, inside)                     # teacher-forced pitch
    log_scale = decoder.bounded(decoder.raw_log_scale)
    kl = 0.5 * (mu_c.pow(2) + logvar_c.exp() - 1.0 - logvar_c)
    coarse = inside[:, ::s.stride]
    local = gaussian_log_density_sum(spec, mean, log_scale, inside[:, None]) - (kl * coarse[:, None]).flatten(1).sum(1)
    if decoder.pitch is not None:
        level, spread, count = pitch_level(f0, voiced)
        predicted_level, predicted_spread = decoder.voice_pitch(w)
        error = ((level - predicted_level).pow(2) + (spread.log() - predicted_spread.log()).pow(2))
        local = local + torch.where(count >= 3, -0.5 * error / PITCH_LEVEL_SCALE ** 2, torch.zeros_like(error))
    # ---- per row: the clip from z (and w)
    target = decoder.head_target(x.float())[rows]
    inputs = torch.cat([h, w[rows].to(h.dtype)], -1) if s.voice_dim else h
    head_scale = decoder.bounded(decoder.raw_head_scale)
    head = gaussian_log_density_sum(target, decoder.head(inputs).float(), head_scale)
    return local[rows] + head


# ---- features ---------------------------------------------------------------------------------
@dataclass
class PitchStats:
    """Mean and standard deviation of log-F0 (Hz) over the voiced frames of training clips."""

    mean: float = math.log(150.0)
    std: float = 0.3

    def to_json(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, raw: dict) -> "PitchStats":
        return cls(float(raw["mean"]), float(raw["std"]))


#: frames tracked at once (YIN's buffers are a few kB per frame: this bounds them, however many and long the clips)
PITCH_FRAMES_PER_CHUNK = 4096


def pitch_track(waves: torch.Tensor, sample_rate: int, hop: int, frames: int, tracker: str = "yin",
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """log-F0 (natural log of Hz, carried through unvoiced frames by linear interpolation) and
    the voiced mask, ``(N, frames)`` each, by ``tracker`` ("yin" or "harvest"; Harvest reads
    each clip up to its own length in ``lengths``). YIN tracks a chunk of clips at a time, so
    memory does not grow with the number or length of the clips."""
    if tracker == "harvest":
        ends = lengths.tolist() if lengths is not None else [waves.shape[1]] * waves.shape[0]
        f0, voiced = harvest([w[:int(e)].numpy() for w, e in zip(waves.cpu(), ends)], sample_rate, hop, frames)
    else:
        step = max(1, PITCH_FRAMES_PER_CHUNK // max(1, frames))
        parts = [yin(waves[i:i + step], sample_rate, hop, frames=frames) for i in range(0, waves.shape[0], step)]
        f0 = torch.cat([p[0] for p in parts]) if parts else waves.new_zeros(0, frames)
        voiced = torch.cat([p[1] for p in parts]) if parts else torch.zeros(0, frames, dtype=torch.bool)
    log_f0 = torch.where(voiced, f0.clamp_min(1.0).log(), torch.zeros_like(f0))
    return fill_unvoiced(log_f0, voiced), voiced


def fill_unvoiced(values: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``values`` over unvoiced frames (constant before the first and
    after the last voiced frame; the clip's voiced mean where nothing is voiced)."""
    n, t = values.shape
    index = torch.arange(t, device=values.device).expand(n, t)
    big = torch.full_like(index, t + 1)
    prev = torch.where(voiced, index, torch.full_like(index, -1)).cummax(-1).values
    nxt = torch.where(voiced, index, big).flip(-1).cummin(-1).values.flip(-1)
    has_prev, has_next = prev >= 0, nxt <= t - 1
    p, q = prev.clamp(0, t - 1), nxt.clamp(0, t - 1)
    vp, vq = values.gather(-1, p), values.gather(-1, q)
    span = (q - p).clamp_min(1).float()
    mixed = vp + (vq - vp) * (index - p).float() / span
    out = torch.where(has_prev & has_next, mixed, torch.where(has_prev, vp, vq))
    none = ~voiced.any(-1, keepdim=True)
    return torch.where(voiced, values, torch.where(none, torch.zeros_like(out), out))
