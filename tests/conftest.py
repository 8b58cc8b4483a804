"""Shared fixtures: small real datasets written to tmp folders, fixed seeds, one thread."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    yield


def write_digits(folder: Path, n: int = 120, size: int = 16, paired: float = 1.0, seed: int = 0,
                 columns=("image", "text", "label")) -> Path:
    """Real sklearn digits as PNGs + their words; ``paired`` share of rows keeps both modalities."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC).save(folder / "images" / f"{i:04d}.png")
        row = {"image": f"images/{i:04d}.png", "text": WORDS[digits.target[i]], "label": str(digits.target[i])}
        if rng.random() >= paired:
            row["image" if rng.random() < 0.5 else "text"] = ""
        rows.append(row)
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return manifest


@pytest.fixture
def digits_manifest(tmp_path) -> Path:
    return write_digits(tmp_path / "data")
