"""The embedded demo dataset (no download): handwritten digits, their words, sung digits.

``write_demo_dataset(out_dir, seed, size)`` writes PNGs of scikit-learn's bundled digits,
synthetic singing of the same digits by eight voices, and a ``manifest.csv`` with
columns image, text, audio, speaker, label. Used by ``polyvae data demo`` and ``polyvae demo``.
"""
from __future__ import annotations

from .digits import DIGIT_WORDS, digit_image, load_digit_set
from .singing import DIGIT_PHRASES, SAMPLE_RATE, SINGERS, Phrase, Singer, sing_digit, singer_by_name
from .writer import MANIFEST_COLUMNS, assign_singers, write_demo_dataset

__all__ = [
    "DIGIT_PHRASES", "DIGIT_WORDS", "MANIFEST_COLUMNS", "SAMPLE_RATE", "SINGERS", "Phrase", "Singer",
    "assign_singers", "digit_image", "load_digit_set", "sing_digit", "singer_by_name",
    "write_demo_dataset",
]
