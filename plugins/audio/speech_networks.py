"""The networks of the speech model (:mod:`.speech`): content per frame, a voice per clip, pitch.

Tensors are ``(B, channels, T)`` over frames, with a mask ``(B, T)`` that is 1 on the clip's
frames and 0 on the padding after it. Every statistic over time is taken on masked frames.

* :class:`ContentNet` -- per-frame content code ``c_t`` (mean, log-variance; ``content_dim``
  each). Its input is the spectrum with the clip's mean spectrum removed, and every hidden
  layer is instance-normalised over time: what is constant over a clip (the voice's long-term
  spectrum, the microphone) cannot pass. It never sees F0.
* :class:`VoiceNet` -- the clip's voice code ``w``: frame convolutions, then the masked mean
  and spread over time.
* :class:`ClipExpert` -- the shared latent's Gaussian expert from the content frames and the
  clip's intonation (strided convolutions over time keep their order: the melody and the
  sequence of sounds say *what* is said).
* :class:`ClipHead` -- the whole clip from the clip-level latent z (from text, an image or
  the audio) and the voice: what cross-modal generation decodes.
* :class:`FrameDecoder` -- the spectrum of every frame from ``c_t``, the pitch and ``w``; the
  voice enters every layer by adaptive instance normalisation (a scale and shift per channel)
  and as a time-constant level per mel bin.
* :class:`PitchHead` -- the voice's typical log-F0 and its spread, from ``w``: how a contour
  is moved to another voice.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def masked_stats(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over time of ``x`` ``(B, C, T)`` where ``mask`` ``(B, T)``: ``(B, C, 1)`` each."""
    m = mask[:, None, :].to(x.dtype)
    n = m.sum(-1, keepdim=True).clamp_min(1.0)
    mean = (x * m).sum(-1, keepdim=True) / n
    var = ((x - mean).pow(2) * m).sum(-1, keepdim=True) / n
    return mean, (var + eps).sqrt()


def instance_norm(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean, std = masked_stats(x, mask)
    return (x - mean) / std * mask[:, None, :].to(x.dtype)


class Block(nn.Module):
    """Residual ``x + conv1x1(silu(conv_k(silu(norm(x)))))``; the norm is a masked instance
    norm (optional), scaled and shifted by a condition vector when ``cond_dim`` is set (AdaIN)."""

    def __init__(self, width: int, kernel: int, norm: bool = True, cond_dim: int = 0):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2)
        self.mix = nn.Conv1d(width, width, 1)
        self.norm = norm
        self.adain = nn.Linear(cond_dim, 2 * width) if cond_dim else None
        if self.adain is not None:
            nn.init.zeros_(self.adain.weight)
            nn.init.zeros_(self.adain.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = instance_norm(x, mask) if self.norm else x
        if self.adain is not None:
            scale, shift = self.adain(cond).chunk(2, dim=-1)
            h = h * (1 + scale[..., None]) + shift[..., None]
        h = self.mix(F.silu(self.conv(F.silu(h))))
        return (x + h) * mask[:, None, :].to(x.dtype)


def slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Hz -> Slaney mel (linear below 1 kHz, logarithmic above), as the filterbank uses."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = 15.0 + 27.0 * np.log(np.maximum(hz, 1e-9) / 1000.0) / np.log(6.4)
    return np.where(hz < 1000.0, 3.0 * hz / 200.0, log_part)


def slaney_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel < 15.0, 200.0 * mel / 3.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0))


def envelope_projection(n_mels: int, keep: int) -> torch.Tensor:
    """``(n_mels, n_mels)``: a log-mel frame's first ``keep`` orthonormal DCT coefficients, back
    in mel bins -- its smooth envelope (formants), without the ripple of the harmonics (pitch)."""
    k = np.arange(n_mels)
    basis = np.cos(np.pi * (k[None, :] + 0.5) * k[:, None] / n_mels) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    kept = basis[:min(keep, n_mels)]
    return torch.tensor(kept.T @ kept, dtype=torch.float32)


def warp_bank(n_mels: int, f_min: float, f_max: float, max_ratio: float, count: int = 33) -> torch.Tensor:
    """``(count, n_mels, n_mels)`` matrices that scale a log-mel frame along frequency by ratios
    from ``1/max_ratio`` to ``max_ratio`` (out(f) = in(f / ratio)): a longer or shorter vocal
    tract. Perturbing the content encoder's input with them in training keeps the voice's
    formant scale out of the content code."""
    lo, hi = slaney_mel(f_min), slaney_mel(f_max)
    centres = slaney_hz(np.linspace(lo, hi, n_mels + 2)[1:-1])
    eye = np.eye(n_mels)
    mats = [np.stack([np.interp(centres / r, centres, eye[j]) for j in range(n_mels)], 1)
            for r in np.exp(np.linspace(-np.log(max_ratio), np.log(max_ratio), count))]
    return torch.tensor(np.stack(mats), dtype=torch.float32)


class ContentNet(nn.Module):
    """Spectrum ``(B, n_mels, T)`` -> per-frame ``(mu_c, logvar_c)``, each ``(B, content_dim, T / stride)``.

    It reads the spectrum's smooth envelope (``envelope`` projection, no harmonics: no pitch)
    and, in training, that envelope warped along frequency by a random ratio (``warps``)."""

    def __init__(self, n_mels: int, content_dim: int, width: int, kernel: int, blocks: int,
                 envelope: torch.Tensor | None = None, warps: torch.Tensor | None = None, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.inp = nn.Conv1d(n_mels, width, kernel, stride=stride, padding=kernel // 2)
        self.blocks = nn.ModuleList([Block(width, kernel) for _ in range(blocks)])
        self.out = nn.Conv1d(width, 2 * content_dim, 1)
        self.register_buffer("envelope", envelope if envelope is not None else torch.eye(n_mels), persistent=False)
        self.register_buffer("warps", warps if warps is not None else torch.eye(n_mels)[None], persistent=False)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask[:, None, :].to(spec.dtype)
        spec = torch.matmul(self.envelope.to(spec.dtype), spec)
        if self.training and self.warps.shape[0] > 1:
            pick = torch.randint(self.warps.shape[0], (spec.shape[0],), device=spec.device)
            spec = torch.bmm(self.warps[pick].to(spec.dtype), spec)
        mean, _ = masked_stats(spec, mask)
        coarse = mask[:, ::self.stride]
        mc = coarse[:, None, :].to(spec.dtype)
        h = self.inp((spec - mean) * m) * mc
        for block in self.blocks:
            h = block(h, coarse)
        mu, logvar = self.out(instance_norm(h, coarse)).chunk(2, dim=1)
        return mu * mc, logvar.clamp(-10.0, 5.0)


class VoiceNet(nn.Module):
    """Spectrum and pitch ``(B, n_mels + 2, T)`` -> the clip's ``(mu_w, logvar_w)``, each ``(B, voice_dim)``."""

    def __init__(self, channels: int, voice_dim: int, width: int, kernel: int, blocks: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.inp = nn.Conv1d(channels, width, kernel, stride=stride, padding=kernel // 2)
        self.blocks = nn.ModuleList([Block(width, kernel, norm=False) for _ in range(blocks)])
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, 2 * voice_dim))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask[:, ::self.stride]
        h = self.inp(features) * mask[:, None, :].to(features.dtype)
        for block in self.blocks:
            h = block(h, mask)
        mean, std = masked_stats(h, mask)
        mu, logvar = self.head(torch.cat([mean, std], 1)[..., 0]).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 5.0)


class ClipExpert(nn.Module):
    """Content frames and intonation ``(B, content_dim + 3, T)`` -> the shared latent's
    ``(mu, logvar)`` ``(B, latent_dim)``: ``depth`` stride-2 convolutions, then an MLP."""

    def __init__(self, channels: int, frames: int, latent_dim: int, width: int, hidden: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = []
        previous = channels
        for _ in range(depth):
            layers += [nn.Conv1d(previous, width, 4, 2, 1), nn.SiLU()]
            previous = width
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * (frames >> depth), hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * latent_dim))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(frames)).chunk(2, dim=-1)
        return mu, logvar


class ClipHead(nn.Module):
    """``(B, input_dim)`` (z's features and the voice ``w``) -> the whole clip's mean
    ``(B, channels, T)`` at once (spectrum, log-F0, voicing, extent -- or, stretched over the
    window, the length: :meth:`~.speech.SpeechDecoder.head_target`): what a clip-level latent
    from text, an image or the audio itself says the clip is. ``w`` also sets a time-constant
    level per channel (the voice's long-term spectrum and pitch)."""

    def __init__(self, input_dim: int, voice_dim: int, channels: int, frames: int, width: int, hidden: int,
                 depth: int):
        super().__init__()
        self.voice_dim = voice_dim
        self.start = (width, frames >> depth)
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(), nn.Linear(hidden, width * self.start[1]),
                                nn.SiLU())
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.ConvTranspose1d(width, width, 4, 2, 1), nn.SiLU()]
        layers.append(nn.ConvTranspose1d(width, channels, 4, 2, 1))
        self.deconv = nn.Sequential(*layers)
        with torch.no_grad():                 # the last channel says "inside the clip": so it is, until learnt
            layers[-1].bias[-1] = 1.0
        self.level = nn.Sequential(nn.Linear(voice_dim, width), nn.SiLU(), nn.Linear(width, channels)) \
            if voice_dim else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.deconv(self.fc(h).view(-1, *self.start))
        if self.level is not None:
            out = out + self.level(h[:, -self.voice_dim:])[..., None]
        return out


class PitchHead(nn.Module):
    """``w`` ``(B, voice_dim)`` -> the voice's mean log-F0 and log spread over voiced frames,
    ``(B, 2)``, in the modality's normalised log-F0 units."""

    def __init__(self, voice_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(voice_dim, width), nn.SiLU(), nn.Linear(width, 2))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(w)


class FrameDecoder(nn.Module):
    """``c`` ``(B, content_dim, T / stride)``, pitch ``(B, 3, T)`` (intonation, voiced, log-F0)
    and ``w`` ``(B, voice_dim)`` -> the spectrum's mean ``(B, n_mels, T)``: blocks at the content
    code's rate, then up to the frame rate, where the pitch is read again in full detail."""

    def __init__(self, content_dim: int, n_mels: int, voice_dim: int, width: int, kernel: int, blocks: int,
                 stride: int = 1):
        super().__init__()
        self.stride = stride
        self.inp = nn.Conv1d(content_dim + 3, width, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList([Block(width, kernel, cond_dim=voice_dim) for _ in range(blocks)])
        self.up = nn.ConvTranspose1d(width, width, 2 * stride, stride, stride // 2) if stride > 1 else None
        self.fine = nn.Conv1d(width + 3, width, 1)
        self.out = nn.Conv1d(width, n_mels, 1)
        self.level = nn.Sequential(nn.Linear(voice_dim, width), nn.SiLU(), nn.Linear(width, n_mels))

    def forward(self, c: torch.Tensor, pitch: torch.Tensor, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        coarse = mask[:, ::self.stride]
        slow = F.avg_pool1d(pitch, self.stride) if self.stride > 1 else pitch
        h = self.inp(torch.cat([c, slow], 1)) * coarse[:, None, :].to(c.dtype)
        for block in self.blocks:
            h = block(h, coarse, w)
        if self.up is not None:
            h = self.up(F.silu(h))
        h = F.silu(self.fine(torch.cat([F.silu(h), pitch], 1)))
        return self.out(h) + self.level(w)[..., None]
