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
* :class:`FramePrior` -- p(c_{1:T}, intonation, voicing, length | z): what a clip-level latent
  (from text, an image or the audio) says about the frames.
* :class:`FrameDecoder` -- the spectrum of every frame from ``c_t``, the pitch and ``w``; the
  voice enters every layer by adaptive instance normalisation (a scale and shift per channel)
  and as a time-constant level per mel bin.
* :class:`PitchHead` -- the voice's typical log-F0 and its spread, from ``w``: how a contour
  is moved to another voice.
"""
from __future__ import annotations

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


class ContentNet(nn.Module):
    """Spectrum ``(B, n_mels, T)`` -> per-frame ``(mu_c, logvar_c)``, each ``(B, content_dim, T)``."""

    def __init__(self, n_mels: int, content_dim: int, width: int, kernel: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv1d(n_mels, width, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList([Block(width, kernel) for _ in range(blocks)])
        self.out = nn.Conv1d(width, 2 * content_dim, 1)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask[:, None, :].to(spec.dtype)
        mean, _ = masked_stats(spec, mask)
        h = self.inp((spec - mean) * m) * m
        for block in self.blocks:
            h = block(h, mask)
        mu, logvar = self.out(instance_norm(h, mask)).chunk(2, dim=1)
        return mu * m, logvar.clamp(-10.0, 5.0)


class VoiceNet(nn.Module):
    """Spectrum and pitch ``(B, n_mels + 2, T)`` -> the clip's ``(mu_w, logvar_w)``, each ``(B, voice_dim)``."""

    def __init__(self, channels: int, voice_dim: int, width: int, kernel: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv1d(channels, width, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList([Block(width, kernel, norm=False) for _ in range(blocks)])
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, 2 * voice_dim))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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


class FramePrior(nn.Module):
    """``(B, input_dim)`` -> per frame ``(B, 2 * content_dim + 3, T)``: the prior mean and
    log-variance of ``c_t``, the intonation, and the logits of voicing and of "inside the clip"."""

    def __init__(self, input_dim: int, content_dim: int, frames: int, width: int, hidden: int, depth: int):
        super().__init__()
        self.start = (width, frames >> depth)
        self.fc = nn.Sequential(nn.Linear(input_dim, hidden), nn.SiLU(), nn.Linear(hidden, width * self.start[1]),
                                nn.SiLU())
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.ConvTranspose1d(width, width, 4, 2, 1), nn.SiLU()]
        layers.append(nn.ConvTranspose1d(width, 2 * content_dim + 3, 4, 2, 1))
        self.deconv = nn.Sequential(*layers)
        self.content_dim = content_dim
        with torch.no_grad():                    # a clip fills its frames until learnt otherwise
            layers[-1].bias[2 * content_dim + 2] = 3.0

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.deconv(self.fc(h).view(-1, *self.start))
        c = self.content_dim
        return {"mu": out[:, :c], "logvar": out[:, c:2 * c].clamp(-10.0, 5.0), "intonation": out[:, 2 * c],
                "voiced": out[:, 2 * c + 1], "inside": out[:, 2 * c + 2]}


class PitchHead(nn.Module):
    """``w`` ``(B, voice_dim)`` -> the voice's mean log-F0 and log spread over voiced frames,
    ``(B, 2)``, in the modality's normalised log-F0 units."""

    def __init__(self, voice_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(voice_dim, width), nn.SiLU(), nn.Linear(width, 2))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(w)


class FrameDecoder(nn.Module):
    """``c`` ``(B, content_dim, T)``, pitch ``(B, 3, T)`` (intonation, voiced, log-F0) and
    ``w`` ``(B, voice_dim)`` -> the spectrum's mean ``(B, n_mels, T)``."""

    def __init__(self, content_dim: int, n_mels: int, voice_dim: int, width: int, kernel: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv1d(content_dim + 3, width, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList([Block(width, kernel, cond_dim=voice_dim) for _ in range(blocks)])
        self.out = nn.Conv1d(width, n_mels, 1)
        self.level = nn.Sequential(nn.Linear(voice_dim, width), nn.SiLU(), nn.Linear(width, n_mels))

    def forward(self, c: torch.Tensor, pitch: torch.Tensor, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([c, pitch], 1)) * mask[:, None, :].to(c.dtype)
        for block in self.blocks:
            h = block(h, mask, w)
        return self.out(F.silu(h)) + self.level(w)[..., None]
