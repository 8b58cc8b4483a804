"""Which singer a recording sounds like, and how the voice differs from theirs.

Closeness is measured on voice latents (see :mod:`.singers`); the differences are told in
measurements of the audio itself (:mod:`.features`): the recording's against the median
over the nearest singer's training clips.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from polyvae.core.run import LoadedRun

from .encoding import encode_voice, read_recording
from .features import VoiceFeatures, measure
from .singers import SingerTable, load_table, voice_modality


#: less voiced sound than this is too little to say whose voice it is
MIN_VOICED_SECONDS = 1.0
#: the nearest singer must stay nearest in at least this share of plausible re-recordings
MIN_CONFIDENCE = 0.8
#: perturbations drawn to estimate that share
DRAWS = 400


@dataclass
class Evidence:
    """Whether a recording says enough to name the closest voice, and why (not)."""

    enough: bool
    confidence: float                 # share of plausible re-recordings with the same nearest singer
    voiced_seconds: float
    reason: str

    def to_json(self) -> dict:
        return {"enough": self.enough, "confidence": round(self.confidence, 3),
                "voiced_seconds": round(self.voiced_seconds, 2), "reason": self.reason}


@dataclass
class VoiceMatch:
    """The ranking (closest first), the recording's features and how they differ."""

    recording: str
    ranking: list[dict]
    features: VoiceFeatures
    nearest_features: VoiceFeatures | None
    differences: list[str]
    evidence: Evidence | None = None
    threshold: float | None = None
    eer: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def nearest(self) -> str:
        return str(self.ranking[0]["singer"])

    def summary(self) -> str:
        """One sentence: who is closest, how surely, and whether it is probably the same voice."""
        top = self.ranking[0]
        if self.evidence is not None and not self.evidence.enough:
            return f"Not enough evidence to name the closest voice: {self.evidence.reason}."
        text = f"Closest: {top['singer']}"
        if top.get("percentile") is not None:
            text += (f", closer to them than {top['percentile']:.0f}% of the other training speakers' "
                     f"clips are")
        if top.get("same_voice") is not None:
            verdict = "probably the same voice" if top["same_voice"] else "probably not the same voice"
            text += (f"; {verdict} (distance {top['distance']:.2f} against a threshold of "
                     f"{self.threshold:.2f}, equal error rate {100 * self.eer:.1f}% on training clips)")
        return text + "."

    def to_json(self) -> dict:
        return {"recording": self.recording, "nearest": self.nearest, "ranking": self.ranking,
                "summary": self.summary(),
                "evidence": self.evidence.to_json() if self.evidence else None,
                "calibration": {"threshold": self.threshold, "eer": self.eer} if self.threshold is not None else None,
                "features": self.features.to_json(),
                "nearest_features": self.nearest_features.to_json() if self.nearest_features else None,
                "differences": self.differences, "warnings": self.warnings}


def weigh_evidence(table: SingerTable, windows: torch.Tensor, voiced_seconds: float, seed: int = 0) -> Evidence:
    """How surely the recording's nearest singer is its nearest: its voice estimate (the mean of
    ``windows`` ``(W, P)``) is as uncertain as one training clip's, divided by sqrt(W); over
    plausible draws of it, the share that keeps the same nearest singer."""
    w = windows.mean(0)
    names = table.names
    matrix = table.matrix().to(w.device, w.dtype)
    top = int(torch.argmin(table.distance(w.view(1, -1), matrix)))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(DRAWS, w.numel(), generator=generator).to(w.device, w.dtype)
    draws = w + noise * table.scale.to(w.device, w.dtype) / max(1, windows.shape[0]) ** 0.5
    nearest = torch.argmin(table.distance(draws[:, None, :], matrix[None]), dim=1)
    confidence = float((nearest == top).float().mean())
    if voiced_seconds < MIN_VOICED_SECONDS:
        return Evidence(False, confidence, voiced_seconds,
                        f"only {voiced_seconds:.1f} s of voiced sound (at least {MIN_VOICED_SECONDS:g} s needed)")
    if len(names) >= 2 and confidence < MIN_CONFIDENCE:
        counts = torch.bincount(nearest, minlength=len(names))
        counts[top] = -1
        rival = names[int(torch.argmax(counts))]
        return Evidence(False, confidence, voiced_seconds,
                        f"{names[top]} and {rival} are within this recording's noise ({names[top]} stays "
                        f"closest in only {100 * confidence:.0f}% of plausible re-recordings); a longer "
                        f"recording would tell them apart")
    return Evidence(True, confidence, voiced_seconds, f"{names[top]} stays closest in {100 * confidence:.0f}% of "
                                                      f"plausible re-recordings")


@torch.no_grad()
def match_voice(run: LoadedRun, path: str | Path, device="cpu", progress=None) -> VoiceMatch:
    """Rank the run's singers by voice distance to the recording at ``path``."""
    modality = voice_modality(run.model)
    run.model.to(device).eval()
    table = load_table(run, device, progress)
    rec = read_recording(run, modality, path)
    windows = encode_voice(run, modality, rec.windows, device)
    ranking = table.rank(windows.mean(0))
    mine = measure(rec.wave, rec.sample_rate)
    theirs = table.singers[ranking[0]["singer"]].features
    differences = describe_differences(mine, theirs, str(ranking[0]["singer"])) if theirs else [
        f"(no measurements of {ranking[0]['singer']}'s clips are stored in singers.json)"]
    voiced = float(mine.voiced_fraction) * len(rec.wave) / rec.sample_rate if math.isfinite(mine.voiced_fraction) else 0.0
    cal = table.calibration
    return VoiceMatch(str(path), ranking, mine, theirs, differences, weigh_evidence(table, windows.cpu(), voiced),
                      cal.threshold if cal else None, cal.eer if cal else None, list(rec.notes))


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
