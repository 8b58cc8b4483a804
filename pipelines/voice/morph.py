"""Voice morphing: keep what is sung, move the voice part of the way toward a singer.

Every clip-long window of the recording is encoded twice: the shared latent z (content,
from the audio alone) and the voice latent w. The voice moves along the straight line to
the singer's embedding, ``w' = w + amount (e - w)``, z stays, and the decoded windows are
put back where they were in the recording (quiet windows stay silent). The decoder alone
renders a voice latent's timbre only part of the way, and its frames vary less than real
ones, so where the model keeps frame codes (the speech model) every decoded frame is also moved
part of the way toward ``own + amount (singer's nearest frames - own)`` (:mod:`.frames`), and
where the modality has a spectral profile (the long-term average spectrum and each bin's
spread), the output's is set to ``own + amount (singer's - own)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from polyvae.core.atomic import atomic_path
from polyvae.core.errors import UsageError
from polyvae.core.run import LoadedRun
from polyvae.core.sound import Audio

from . import MAX_AMOUNT
from .encoding import convert, encode_voice, read_recording, sound_modality
from .frames import frame_keys, nearest_frames
from .frames import toward as toward_frames
from .singers import load_table, voice_modality


@dataclass
class MorphResult:
    """The morphed recording, where it was written, and the voice distances to the singer
    before and after."""

    audio: Audio
    path: Path | None
    singer: str
    amount: float
    windows: int
    distance_before: float
    distance_after: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"out": str(self.path) if self.path else None, "toward": self.singer, "amount": self.amount,
                "windows": self.windows, "voice_distance_before": round(self.distance_before, 4),
                "voice_distance_after": round(self.distance_after, 4), "warnings": self.warnings}


def morph_latents(w: torch.Tensor, target: torch.Tensor, amount: float) -> torch.Tensor:
    """``w + amount (target - w)`` for every row of ``w`` ``(N, P)``; 0 keeps w, 1 gives target, exactly,
    above 1 goes past the target."""
    target = target.to(w.device, w.dtype).view(1, -1)
    if amount == 0:
        return w.clone()
    if amount == 1:
        return target.expand_as(w).clone()
    return w + amount * (target - w)


@torch.no_grad()
def morph_voice(run: LoadedRun, recording: str | Path, toward: str, amount: float, out: Path | None = None,
                device="cpu", progress=None, frame_share: float | None = None) -> MorphResult:
    """Morph the recording; with ``out`` also write it there (a WAV at the run's sample rate).
    ``frame_share`` (None: :data:`.frames.FRAME_SHARE`) is how far each frame moves toward the
    singer's own frames."""
    if not 0.0 <= amount <= MAX_AMOUNT:
        raise UsageError(f"--amount must be between 0 and {MAX_AMOUNT:g}, got {amount}")
    if frame_share is not None and not 0.0 <= frame_share <= 1.0:
        raise UsageError(f"--frames must be between 0 and 1, got {frame_share}")
    modality = voice_modality(run.model)
    mod = sound_modality(run, modality)
    run.model.to(device).eval()
    table = load_table(run, device, progress)
    target = table.embedding(toward).to(device)
    rec = read_recording(run, modality, recording)
    w = encode_voice(run, modality, rec.windows, device)
    moved = morph_latents(w, target, amount)
    converted = convert(run, modality, rec.windows, moved, device)
    bank = table.frames(toward)
    codes = frame_keys(run.model, modality, rec.windows, device) if bank is not None and frame_share != 0 else None
    if codes is not None:               # every frame part of the way to the singer's frames saying the same
        own = mod.spectral_frames(rec.windows)[0]
        converted = toward_frames(mod, converted, own + amount * (nearest_frames(bank, codes) - own), frame_share)
    own, theirs = mod.spectral_profile(rec.windows), table.profile(toward)
    if own is not None and theirs is not None:      # the timbre moves as far as the voice latent
        converted = mod.with_profile(converted, own + amount * (theirs.to(own.device) - own))
    pieces = mod.converted_values(converted.cpu())
    total = max(len(rec.wave), max(s + len(p.samples) for s, p in zip(rec.starts, pieces)))
    signal = np.zeros(total, dtype=np.float32)
    for start, piece in zip(rec.starts, pieces):
        signal[start:start + len(piece.samples)] = piece.samples
    audio = Audio(signal[:len(rec.wave)], rec.sample_rate)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            sf.write(str(tmp), audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")
    after = encode_voice(run, modality, mod.preprocess([mod.as_clip(p.samples) for p in pieces]), device).mean(0)
    before, after = float(table.distance(w.mean(0), target)), float(table.distance(after, target))
    warnings = list(rec.notes)
    if amount > 0 and after >= before:
        warnings.append(f"the morph did not move the voice toward {toward}: its voice distance to them went from "
                        f"{before:.2f} to {after:.2f} (re-encoded from the output); this run's voice latent "
                        f"does not carry this recording's voice well (more training, or more clips of "
                        f"voices like it, may help)")
    return MorphResult(audio, out, toward, amount, len(rec.starts), before, after, warnings)
