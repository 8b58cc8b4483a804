"""The image half of the demo data: scikit-learn's bundled handwritten digits.

``sklearn.datasets.load_digits`` ships inside the scikit-learn package (1797 images of
8x8 pixels, values 0..16, from the UCI optical-recognition set), so nothing is
downloaded. Each image is scaled to 0..255 and upsampled smoothly to 32x32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: the text cell of each digit, indexed by the digit
DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four",
                                "five", "six", "seven", "eight", "nine")

IMAGE_SIZE = 32


@dataclass(frozen=True)
class DigitSet:
    """The bundled digits: ``images`` (N, 8, 8) floats in 0..16 and ``labels`` (N,) ints."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def load_digit_set() -> DigitSet:
    """All 1797 bundled digits, in scikit-learn's order (no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return DigitSet(images=np.asarray(digits.images, dtype=np.float64),
                    labels=np.asarray(digits.target, dtype=np.int64))


def digit_image(pixels: np.ndarray, size: int = IMAGE_SIZE) -> Image.Image:
    """An 8x8 array of 0..16 values as a ``size`` x ``size`` grayscale image (bicubic)."""
    grey = np.clip(np.rint(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).resize((size, size), Image.Resampling.BICUBIC)


def balanced_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of ``size`` rows, as even across classes as the class counts allow, sorted.

    Within each class the rows are a seeded random choice; when ``size`` is not a multiple
    of the number of classes, a seeded choice of classes gets one row more.
    """
    rng = np.random.default_rng([seed, 1])
    classes = np.unique(labels)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    chosen: list[int] = []
    while len(chosen) < size and any(pools):
        order = rng.permutation(len(classes))
        for k in order:
            if pools[k] and len(chosen) < size:
                chosen.append(int(pools[k].pop()))
    return np.sort(np.asarray(chosen, dtype=np.int64))
