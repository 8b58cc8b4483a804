"""Write the demo dataset: PNG digits, their words, sung digits as WAV, and manifest.csv."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from polyvae.core.atomic import atomic_path
from polyvae.core.errors import BadInput

from .digits import DIGIT_WORDS, balanced_subset, digit_image, load_digit_set
from .singing import SAMPLE_RATE, SINGERS, sing_digit

MANIFEST_COLUMNS = ("image", "text", "audio", "speaker", "label")

Progress = Callable[[Iterable, str], Iterable]


def assign_singers(labels: np.ndarray, seed: int, n_singers: int = len(SINGERS)) -> np.ndarray:
    """A singer index per row: within each digit the singers take turns in a seeded order.

    The j-th row of digit c gets singer ``order[(j + c) % n_singers]``, so every singer sings
    every digit once the digit has ``n_singers`` rows, and every singer appears as soon as
    there are ``n_singers`` rows spread over the ten digits.
    """
    rng = np.random.default_rng([seed, 2])
    order = rng.permutation(n_singers)
    singers = np.empty(len(labels), dtype=np.int64)
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        turns = (np.arange(len(rows)) + int(digit)) % n_singers
        singers[rows] = order[turns]
    return singers


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of one clip: depends on the seed and the digit's index only."""
    return np.random.default_rng([seed, 3, index])


def wav_bytes(clip: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit PCM WAV file in memory (soundfile writing to a file would fsync each one)."""
    buffer = io.BytesIO()
    sf.write(buffer, clip, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def write_demo_dataset(out_dir: Path, seed: int = 0, size: int | None = None,
                       progress: Progress | None = None) -> Path:
    """Write ``size`` rows (default: all 1797) of the demo data under ``out_dir``.

    Files: ``images/NNNN.png`` (32x32 grayscale), ``audio/NNNN.wav`` (16 kHz mono, 1 s),
    ``manifest.csv`` with columns image, text, audio, speaker, label (paths relative to
    ``out_dir``; NNNN is the digit's index in scikit-learn's set). A smaller ``size`` takes
    a seeded, class-balanced subset. The same seed gives the same bytes. ``progress`` wraps
    the row loop (``progress(iterable, label) -> iterable``). Returns the manifest's path;
    the manifest is written last and atomically, so it only ever names complete files.
    """
    out_dir = Path(out_dir)
    digits = load_digit_set()
    total = len(digits)
    if size is None:
        size = total
    if not 1 <= size <= total:
        raise BadInput(f"the demo dataset has 1 to {total} rows; asked for {size}")
    indices = balanced_subset(digits.labels, size, seed) if size < total else np.arange(total)
    labels = digits.labels[indices]
    singer_of_row = assign_singers(labels, seed)

    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    positions: Iterable[int] = range(len(indices))
    if progress is not None:
        positions = progress(positions, "demo data")
    for position in positions:
        index, digit = int(indices[position]), int(labels[position])
        singer = SINGERS[singer_of_row[position]]
        image_path, audio_path = f"images/{index:04d}.png", f"audio/{index:04d}.wav"
        digit_image(digits.images[index]).save(out_dir / image_path, format="PNG")
        clip = sing_digit(singer, digit, clip_rng(seed, index))
        (out_dir / audio_path).write_bytes(wav_bytes(clip))
        rows.append({"image": image_path, "text": DIGIT_WORDS[digit], "audio": audio_path,
                     "speaker": singer.name, "label": str(digit)})

    manifest = out_dir / "manifest.csv"
    with atomic_path(manifest) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
    return manifest
