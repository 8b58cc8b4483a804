"""Which singer a recording sounds like, and how the voice differs from theirs.

Closeness is measured on voice latents (see :mod:`.singers`); the differences are told in
measurements of the audio itself (:mod:`.features`): the recording's against the median
over the nearest singer's training clips.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from polyvae.core.run import LoadedRun

from .encoding import encode_voice, read_recording
from .features import VoiceFeatures, measure
from .singers import load_table, voice_modality


@dataclass
class VoiceMatch:
    """The ranking (closest first), the recording's features and how they differ."""

    recording: str
    ranking: list[dict]
    features: VoiceFeatures
    nearest_features: VoiceFeatures | None
    differences: list[str]

    @property
    def nearest(self) -> str:
        return str(self.ranking[0]["singer"])

    def to_json(self) -> dict:
        return {"recording": self.recording, "nearest": self.nearest, "ranking": self.ranking,
                "features": self.features.to_json(),
                "nearest_features": self.nearest_features.to_json() if self.nearest_features else None,
                "differences": self.differences}


@torch.no_grad()
def match_voice(run: LoadedRun, path: str | Path, device="cpu", progress=None) -> VoiceMatch:
    """Rank the run's singers by voice distance to the recording at ``path``."""
    modality = voice_modality(run.model)
    run.model.to(device).eval()
    table = load_table(run, device, progress)
    rec = read_recording(run, modality, path)
    w = encode_voice(run, modality, rec.windows, device).mean(0)
    ranking = table.rank(w)
    mine = measure(rec.wave, rec.sample_rate)
    theirs = table.singers[ranking[0]["singer"]].features
    differences = describe_differences(mine, theirs, str(ranking[0]["singer"])) if theirs else [
        f"(no measurements of {ranking[0]['singer']}'s clips are stored in singers.json)"]
    return VoiceMatch(str(path), ranking, mine, theirs, differences)


def _finite(*values: float) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def describe_differences(mine: VoiceFeatures, theirs: VoiceFeatures, name: str) -> list[str]:
    """Plain sentences comparing a voice with singer ``name``'s, one per aspect."""
    lines: list[str] = []
    if _finite(mine.median_pitch_hz, theirs.median_pitch_hz) and mine.median_pitch_hz > 0 < theirs.median_pitch_hz:
        shift = 12.0 * math.log2(mine.median_pitch_hz / theirs.median_pitch_hz)
        where = ("about the same as" if abs(shift) < 0.5 else
                 f"{abs(shift):.1f} semitones {'higher' if shift > 0 else 'lower'} than")
        lines.append(f"Pitch: your median is {mine.median_pitch_hz:.0f} Hz, {where} "
                     f"{name}'s {theirs.median_pitch_hz:.0f} Hz.")
    else:
        lines.append("Pitch: no sung (voiced) sound was found in your recording to compare.")
    if _finite(mine.pitch_range_semitones, theirs.pitch_range_semitones):
        diff = mine.pitch_range_semitones - theirs.pitch_range_semitones
        word = "about as wide as" if abs(diff) < 1.0 else ("wider than" if diff > 0 else "narrower than")
        lines.append(f"Range: you span {mine.pitch_range_semitones:.1f} semitones, {word} "
                     f"{name}'s {theirs.pitch_range_semitones:.1f}.")
    if _finite(mine.brightness_hz, theirs.brightness_hz) and theirs.brightness_hz > 0:
        ratio = mine.brightness_hz / theirs.brightness_hz
        word = ("about as bright as" if abs(ratio - 1) < 0.1 else
                "brighter than" if ratio > 1 else "darker than")
        lines.append(f"Brightness: your voice is {word} {name}'s (spectral centroid "
                     f"{mine.brightness_hz:.0f} Hz vs {theirs.brightness_hz:.0f} Hz).")
    if _finite(mine.hnr_db, theirs.hnr_db):
        diff = mine.hnr_db - theirs.hnr_db
        word = ("about as breathy as" if abs(diff) < 2.0 else
                "clearer (less breathy) than" if diff > 0 else "breathier than")
        lines.append(f"Breathiness: your voice is {word} {name}'s (harmonics-to-noise "
                     f"{mine.hnr_db:.1f} dB vs {theirs.hnr_db:.1f} dB; lower is breathier).")
    lines.append(_vibrato_line(mine, theirs, name))
    return lines


def _vibrato_line(mine: VoiceFeatures, theirs: VoiceFeatures, name: str) -> str:
    have, they = mine.vibrato_depth_cents > 0, theirs.vibrato_depth_cents > 0
    if not have and not they:
        return f"Vibrato: neither you nor {name} sing with vibrato."
    if have and not they:
        return (f"Vibrato: you sing with vibrato ({mine.vibrato_rate_hz:.1f} Hz, "
                f"±{mine.vibrato_depth_cents:.0f} cents); {name} sings without.")
    if they and not have:
        return (f"Vibrato: {name} sings with vibrato ({theirs.vibrato_rate_hz:.1f} Hz, "
                f"±{theirs.vibrato_depth_cents:.0f} cents); you sing without.")
    rate = mine.vibrato_rate_hz - theirs.vibrato_rate_hz
    speed = "about as fast as" if abs(rate) < 0.5 else ("faster than" if rate > 0 else "slower than")
    ratio = mine.vibrato_depth_cents / max(theirs.vibrato_depth_cents, 1e-6)
    depth = "about as deep as" if abs(ratio - 1) < 0.25 else ("deeper than" if ratio > 1 else "shallower than")
    return (f"Vibrato: yours is {speed} and {depth} {name}'s ({mine.vibrato_rate_hz:.1f} Hz, "
            f"±{mine.vibrato_depth_cents:.0f} cents vs {theirs.vibrato_rate_hz:.1f} Hz, "
            f"±{theirs.vibrato_depth_cents:.0f} cents).")
