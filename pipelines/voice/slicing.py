"""Voice data as people have it: long recordings, a folder per speaker -> utterances + manifest.

``polyvae data voices DIR --out OUT`` reads every audio file under ``DIR/<speaker>/`` (any
format soundfile reads, any rate and channel count), finds the speech with a voice-activity
detector (WebRTC's, whose model is compiled into its small package: nothing is downloaded),
cuts it into utterances between ``min_seconds`` and ``max_seconds`` (long stretches of
speech are split at their quietest frame), brings every utterance to the same loudness and
writes ``OUT/clips/<speaker>/<file>_<k>.wav`` and ``OUT/manifest.csv`` (columns ``audio``,
``speaker``, ``source``, ``start``, ``end``; ``text`` too when a file has a transcript beside
it, ``<file>.txt``, and is one utterance).

Loudness: the RMS of the utterance's speech frames is brought to ``target_dbfs`` (-23 dBFS,
broadcast practice), with the peak kept under -1 dBFS.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from polyvae.core.atomic import atomic_path
from polyvae.core.errors import BadInput, UsageError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".opus"}
#: rates the WebRTC detector accepts; a file at another rate is resampled to the nearest for detection
VAD_RATES = (8000, 16000, 32000, 48000)
FRAME_MS = 30
#: a utterance-level peak ceiling, dBFS
PEAK_DBFS = -1.0


@dataclass(frozen=True)
class SlicingConfig:
    """How recordings become utterances."""

    min_seconds: float = 0.6
    max_seconds: float = 10.0
    #: silences shorter than this stay inside an utterance
    join_gap_seconds: float = 0.35
    #: context kept before and after the detected speech
    pad_seconds: float = 0.15
    #: WebRTC VAD aggressiveness 0 (keeps the most) .. 3 (drops the most)
    aggressiveness: int = 2
    target_dbfs: float = -23.0
    #: resample utterances to this rate (None: keep each file's own rate)
    sample_rate: int | None = None

    def validate(self) -> None:
        if not 0.1 <= self.min_seconds < self.max_seconds:
            raise UsageError(f"need 0.1 <= --min-seconds < --max-seconds, got {self.min_seconds} and {self.max_seconds}")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise UsageError(f"--vad-aggressiveness must be 0..3, got {self.aggressiveness}")
        if not -60.0 <= self.target_dbfs <= -3.0:
            raise UsageError(f"--loudness must be between -60 and -3 dBFS, got {self.target_dbfs}")


@dataclass
class Utterance:
    speaker: str
    source: Path
    start: float                 # seconds into the source
    end: float
    path: Path | None = None
    text: str = ""


@dataclass
class SlicingReport:
    """What was written, per speaker, and what was skipped."""

    manifest: Path
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def per_speaker(self) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for u in self.utterances:
            n, s = out.get(u.speaker, (0, 0.0))
            out[u.speaker] = (n + 1, s + u.end - u.start)
        return dict(sorted(out.items()))

    def warnings(self, min_clips: int = 10, min_seconds: float = 30.0) -> list[str]:
        """Speakers with too little speech for a voice latent to learn them."""
        return [f"speaker '{name}' has only {n} utterance(s), {s:.0f} s of speech: a voice needs about "
                f"{min_clips} utterances and {min_seconds:.0f} s to be learnt and matched reliably"
                for name, (n, s) in self.per_speaker().items() if n < min_clips or s < min_seconds]


# ---- speech detection ------------------------------------------------------------------------
def speech_frames(wave: np.ndarray, rate: int, aggressiveness: int = 2) -> tuple[np.ndarray, float]:
    """Per-frame speech decision (``FRAME_MS`` frames) and the frame length in seconds.

    WebRTC's detector, on 16-bit PCM at the nearest rate it accepts. Frames far below the
    recording's loud frames (40 dB under its 95th-percentile level) never count as speech, so
    a hum the detector likes is not kept as a voice.
    """
    import webrtcvad

    vad_rate = min(VAD_RATES, key=lambda r: (abs(r - rate), r))
    x = wave if vad_rate == rate else _resample(wave, rate, vad_rate)
    step = vad_rate * FRAME_MS // 1000
    n = len(x) // step
    if n == 0:
        return np.zeros(0, dtype=bool), FRAME_MS / 1000
    frames = x[:n * step].reshape(n, step)
    pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")
    vad = webrtcvad.Vad(aggressiveness)
    voiced = np.array([vad.is_speech(f.tobytes(), vad_rate) for f in pcm])
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.percentile(level, 95)
    return voiced & (level > loud - 40.0), FRAME_MS / 1000


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def segments(voiced: np.ndarray, frame: float, energy: np.ndarray, config: SlicingConfig) -> list[tuple[float, float]]:
    """Utterance spans in seconds from per-frame speech decisions.

    Speech runs closer than ``join_gap_seconds`` are joined; a span longer than
    ``max_seconds`` is split at its quietest frame (recursively); spans shorter than
    ``min_seconds`` are dropped; each keeps ``pad_seconds`` of context on both sides.
    """
    gap = max(1, int(round(config.join_gap_seconds / frame)))
    runs = _runs(voiced)
    joined: list[list[int]] = []
    for a, b in runs:
        if joined and a - joined[-1][1] <= gap:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    longest = max(1, int(config.max_seconds / frame))
    out: list[tuple[int, int]] = []

    def split(a: int, b: int) -> None:
        if b - a <= longest:
            out.append((a, b))
            return
        lo, hi = a + (b - a) // 4, b - (b - a) // 4          # cut in the middle half
        cut = lo + int(np.argmin(energy[lo:hi]))
        split(a, cut)
        split(cut, b)

    for a, b in joined:
        split(a, b)
    pad = config.pad_seconds
    total = len(voiced) * frame
    return [(max(0.0, a * frame - pad), min(total, b * frame + pad)) for a, b in out
            if (b - a) * frame >= config.min_seconds]


def frame_energy(wave: np.ndarray, rate: int) -> np.ndarray:
    step = rate * FRAME_MS // 1000
    n = len(wave) // step
    frames = wave[:n * step].reshape(n, step).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


# ---- loudness ----------------------------------------------------------------------------------
def normalise_loudness(wave: np.ndarray, rate: int, target_dbfs: float) -> np.ndarray:
    """Gain so the RMS of the speech frames (those within 30 dB of the loudest) is
    ``target_dbfs``, lowered if needed to keep the peak under ``PEAK_DBFS``."""
    level = frame_energy(wave, rate)
    if level.size == 0:
        return wave
    active = level > level.max() - 30.0
    rms_db = 10 * math.log10(np.mean(10 ** (level[active] / 10)) + 1e-12)
    gain = 10 ** ((target_dbfs - rms_db) / 20)
    peak = float(np.abs(wave).max()) * gain
    ceiling = 10 ** (PEAK_DBFS / 20)
    if peak > ceiling:
        gain *= ceiling / peak
    return (wave * gain).astype(np.float32)


# ---- files -------------------------------------------------------------------------------------
def speaker_folders(root: Path) -> dict[str, list[Path]]:
    """Speaker name -> audio files under ``root/<speaker>/`` (recursively, sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder (expected one sub-folder per speaker)")
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if files:
            out[folder.name] = files
    if not out:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES]
        hint = (f"; the audio files directly in it ({', '.join(loose[:3])}...) need a folder per speaker"
                if loose else "")
        raise UsageError(f"{root}: no speaker folder with audio files in it{hint}")
    return out


def read_whole(path: Path) -> tuple[np.ndarray, int]:
    """A whole file, mono float32 at its own rate; :class:`BadInput` when it cannot be used."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:                   # soundfile raises several kinds
        raise BadInput(f"not a readable audio file ({' '.join(str(exc).split())[:120]})", file=path) from None
    if data.size == 0:
        raise BadInput("no audio in the file (0 frames)", file=path)
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise BadInput("audio contains NaN or infinite samples", file=path)
    return mono, int(rate)


def _resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return wave
    import soxr
    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32, copy=False)


def slice_voices(root: Path, out_dir: Path, config: SlicingConfig = SlicingConfig(),
                 progress: Callable[[Iterable, str], Iterable] = lambda items, _label: items) -> SlicingReport:
    """Slice every recording under ``root/<speaker>/`` into utterances under ``out_dir``."""
    import soundfile as sf

    config.validate()
    out_dir = Path(out_dir)
    folders = speaker_folders(root)
    report = SlicingReport(out_dir / "manifest.csv")
    jobs = [(speaker, path) for speaker, files in folders.items() for path in files]
    for speaker, path in progress(jobs, "slicing"):
        try:
            wave, rate = read_whole(path)
        except BadInput as err:
            report.skipped.append(err.message())
            continue
        voiced, frame = speech_frames(wave, rate, config.aggressiveness)
        energy = frame_energy(wave, rate)
        n = min(len(voiced), len(energy))
        spans = segments(voiced[:n], frame, energy[:n], config)
        if not spans:
            report.skipped.append(f"{path}: no speech of at least {config.min_seconds:g} s found")
            continue
        transcript = path.with_suffix(".txt")
        text = transcript.read_text(encoding="utf-8").strip() if transcript.is_file() and len(spans) == 1 else ""
        rel = path.relative_to(Path(root) / speaker).with_suffix("")
        for k, (a, b) in enumerate(spans):
            piece = wave[int(a * rate):int(b * rate)]
            out_rate = config.sample_rate or rate
            piece = normalise_loudness(_resample(piece, rate, out_rate), out_rate, config.target_dbfs)
            target = out_dir / "clips" / speaker / f"{'_'.join(rel.parts)}_{k:03d}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                sf.write(str(tmp), piece, out_rate, subtype="PCM_16", format="WAV")
            report.utterances.append(Utterance(speaker, path, round(a, 3), round(b, 3), target, text))
    if not report.utterances:
        raise UsageError(f"{root}: no speech found in any file" +
                         (f" (first problem: {report.skipped[0]})" if report.skipped else ""))
    write_manifest(report, out_dir)
    return report


def write_manifest(report: SlicingReport, out_dir: Path) -> Path:
    columns = ["audio", "speaker", "source", "start", "end"]
    if any(u.text for u in report.utterances):
        columns.insert(1, "text")
    with atomic_path(report.manifest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for u in report.utterances:
                writer.writerow({"audio": u.path.relative_to(out_dir).as_posix(), "speaker": u.speaker,
                                 "source": str(u.source), "start": f"{u.start:.3f}", "end": f"{u.end:.3f}",
                                 **({"text": u.text} if "text" in columns else {})})
    return report.manifest
