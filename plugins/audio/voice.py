"""The audio encoder's voice branch: a private latent for timbre, kept apart from content.

The shared latent carries *what* is sung (the digit's melody and vowels, which image and
text also carry); the private latent ``w`` carries the voice. Its branch sees the
spectrogram only frame by frame (a small 1-D convolution over a few neighbouring frames)
and then averages over time, so the order of the notes — the melody, hence most of the
content — cannot reach ``w``, while register, formants, spectral tilt, breath noise and
the blur of vibrato (all present in every frame) can. Pooling is attentive: a learned
per-frame score picks the voiced frames over the silence around the phrase.
"""
from __future__ import annotations

import torch
from torch import nn

from .networks import SpectrogramDecoder, SpectrogramParams


class VoiceEncoder(nn.Module):
    """``(B, n_mels, frames)`` -> ``(mu, logvar)`` of the voice latent, each ``(B, voice_dim)``."""

    def __init__(self, n_mels: int, voice_dim: int, width: int = 128, kernel: int = 3):
        super().__init__()
        self.frames = nn.Sequential(
            nn.Conv1d(n_mels, width, kernel, padding=kernel // 2), nn.SiLU(),
            nn.Conv1d(width, width, 1), nn.SiLU())
        self.score = nn.Conv1d(width, 1, 1)
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, 2 * voice_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.frames(x)                                            # (B, W, T)
        attention = torch.softmax(self.score(h), dim=-1)              # (B, 1, T)
        mean = (h * attention).sum(-1)
        spread = ((h - mean[..., None]).pow(2) * attention).sum(-1).clamp_min(1e-6).sqrt()
        mu, logvar = self.head(torch.cat([mean, spread], dim=-1)).chunk(2, dim=-1)
        return mu, logvar


class ContentVoiceEncoder(nn.Module):
    """A content encoder (shared latent) beside a :class:`VoiceEncoder` (private latent).

    Returns ``(mu, logvar)`` of width ``latent_dim + voice_dim``, shared part first, as the
    multimodal VAE expects of a modality with a private latent.
    """

    def __init__(self, content: nn.Module, voice: VoiceEncoder):
        super().__init__()
        self.content = content
        self.voice = voice

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_c, logvar_c = self.content(x)
        mu_v, logvar_v = self.voice(x)
        return torch.cat([mu_c, mu_v], dim=-1), torch.cat([logvar_c, logvar_v], dim=-1)


class VoiceConditionedDecoder(SpectrogramDecoder):
    """A spectrogram decoder whose last ``voice_dim`` inputs (the voice latent) also set a
    time-constant level per mel bin: a singer's long-term average spectrum.

    The convolutional decoder still sees the whole input, so the voice can shape everything;
    the direct path gives the voice latent a useful gradient from the first step, which keeps
    it from collapsing to the prior before the rest of the decoder has learnt to use it.
    """

    def __init__(self, n_mels: int, frames: int, input_dim: int, voice_dim: int, width: int = 128,
                 hidden: int = 256, depth: int = 2, scale: str = "per-bin"):
        super().__init__(n_mels, frames, input_dim, width, hidden, depth, scale)
        self.voice_dim = voice_dim
        self.envelope = nn.Sequential(nn.Linear(voice_dim, width), nn.SiLU(), nn.Linear(width, n_mels))

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> SpectrogramParams:
        params = super().forward(h, x)
        level = self.envelope(h[:, -self.voice_dim:])[:, :, None]          # (N, n_mels, 1)
        # a new tuple rather than _replace, which torch.compile (2.9) fails to trace
        return SpectrogramParams(params.mean + level, params.log_scale)
