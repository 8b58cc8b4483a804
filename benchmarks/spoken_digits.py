"""Spoken digits by synthetic voices, with a handwritten image and the word: a dataset for the
voice benchmarks (content from any speaker, text -> audio a recogniser reads).

    .venv/bin/python benchmarks/spoken_digits.py OUT [--reps 6] [--seed 0]

Needs Debian's ``espeak-ng``, ``flite`` and ``sox`` (not polyvae dependencies). Writes
``OUT/train/manifest.csv`` (the TRAIN voices) and ``OUT/unseen/manifest.csv`` (voices never
heard in training: other espeak-ng variants and flite's ``kal16``), columns image, text,
audio, speaker, label. Every rendition varies speaking rate and pitch; files are WAV at
16 kHz or 8 kHz (a quarter of them, telephone-like), images are scikit-learn's digits.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
from pathlib import Path

from polyvae.core.manifest import write_manifest

WORDS = "zero one two three four five six seven eight nine".split()
#: name -> (engine, voice)
TRAIN = {"m1": ("espeak", "en+m1"), "f2": ("espeak", "en+f2"), "m3": ("espeak", "en-us+m3"),
         "f4": ("espeak", "en+f4"), "croak": ("espeak", "en+croak"), "slt": ("flite", "slt"),
         "rms": ("flite", "rms"), "awb": ("flite", "awb")}
UNSEEN = {"m7": ("espeak", "en-us+m7"), "f5": ("espeak", "en+f5"), "klatt": ("espeak", "en+klatt3"),
          "kal": ("flite", "kal16")}


def speak(engine: str, voice: str, text: str, out: Path, rate: int, rng: random.Random | None = None,
          effects: tuple[str, ...] = ()) -> None:
    """``text`` said by espeak-ng or flite, written by sox as 16-bit mono at ``rate`` (then ``effects``);
    with ``rng``, speed and pitch (espeak-ng) or duration (flite) varied per call."""
    raw = Path(tempfile.mkstemp(suffix=".wav")[1])
    try:
        if engine == "espeak":
            vary = ["-s", str(rng.randint(130, 190)), "-p", str(rng.randint(30, 70))] if rng else []
            subprocess.run(["espeak-ng", "-v", voice, *vary, "-w", str(raw), text], check=True, capture_output=True)
        else:
            vary = ["--setf", f"duration_stretch={rng.uniform(0.8, 1.3):.2f}"] if rng else []
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw), *vary], check=True,
                           capture_output=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out), *effects], check=True,
                       capture_output=True)
    finally:
        raw.unlink(missing_ok=True)


def write_split(out: Path, voices: dict, reps: int, seed: int) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    by_label = {d: np.flatnonzero(digits.target == d) for d in range(10)}
    rng = random.Random(seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (engine, voice) in voices.items():
        for r in range(reps):
            for d, word in enumerate(WORDS):
                k = len(rows)
                rate = 8000 if rng.random() < 0.25 else 16000
                audio = f"audio/{name}_{d}_{r}.wav"
                speak(engine, voice, word, out / audio, rate, rng)
                index = int(rng.choice(list(by_label[d])))
                image = f"images/{k:05d}.png"
                Image.fromarray((digits.images[index] / 16 * 255).astype(np.uint8)).resize(
                    (32, 32), Image.Resampling.BICUBIC).save(out / image)
                rows.append({"image": image, "text": word, "audio": audio, "speaker": name, "label": str(d)})
    rng.shuffle(rows)
    manifest = out / "manifest.csv"
    write_manifest(manifest, rows, ["image", "text", "audio", "speaker", "label"])
    return manifest


def write_spoken_digits(out: Path, reps: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """(train manifest, unseen-voices manifest)."""
    return (write_split(Path(out) / "train", TRAIN, reps, seed),
            write_split(Path(out) / "unseen", UNSEEN, max(2, reps // 3), seed + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for manifest in write_spoken_digits(args.out, args.reps, args.seed):
        print(manifest)


if __name__ == "__main__":
    main()
