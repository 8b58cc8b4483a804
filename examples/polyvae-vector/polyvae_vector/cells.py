"""Turning one manifest cell into a 1-D float64 array.

A cell is either a file path or the numbers themselves, told apart by the ending alone:

* it ends in ``.npy``, ``.csv`` or ``.txt`` (any case): a path, relative to the
  manifest's folder (or absolute). ``.npy`` holds a 1-D numeric array (saved with
  ``numpy.save``; pickled object arrays are refused); ``.csv``/``.txt`` hold numbers in
  the inline format below, which is what the plugin's ``render`` writes;
* anything else: numbers separated by spaces, commas or semicolons (``0.5 1.5 -2``,
  ``0.5,1.5,-2``, ``0.5; 1.5; -2``). A number never ends in one of those extensions,
  so no cell is ambiguous. Decimal commas are not supported: ``1,5`` is two numbers.

Every problem raises :class:`BadInput` with a reason; the caller adds file and row.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from polyvae.core.errors import BadInput

FILE_SUFFIXES = (".npy", ".csv", ".txt")
SEPARATORS = re.compile(r"[\s,;]+")
#: largest magnitude that survives the conversion to float32 for the networks
FLOAT32_MAX = float(np.finfo(np.float32).max)
FORMAT_HINT = ("a vector cell holds numbers separated by spaces, commas or semicolons, "
               "or a path ending in .npy, .csv or .txt")


def is_file_cell(cell: str) -> bool:
    """True when ``cell`` names a file rather than holding the numbers."""
    return cell.strip().lower().endswith(FILE_SUFFIXES)


def parse_numbers(text: str, where: str = "cell") -> np.ndarray:
    """Numbers separated by whitespace, commas or semicolons -> float64 array."""
    tokens = [t for t in SEPARATORS.split(text.strip()) if t]
    if not tokens:
        raise BadInput(f"no numbers in {where} ({FORMAT_HINT})")
    values = np.empty(len(tokens), dtype=np.float64)
    for i, token in enumerate(tokens):
        try:
            values[i] = float(token)
        except ValueError:
            raise BadInput(f"'{_short(token)}' in {where} is not a number ({FORMAT_HINT})") from None
    return values


def load_file(path: Path) -> np.ndarray:
    """A ``.npy`` array or a text file of numbers -> float64 array (not yet checked)."""
    if not path.exists():
        raise BadInput(f"vector file not found: {path}")
    if path.is_dir():
        raise BadInput(f"{path} is a folder, not a vector file")
    if path.suffix.lower() != ".npy":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read {path} as text ({exc})") from None
        return parse_numbers(text, where=str(path))
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInput(f"cannot read {path} as a .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):         # an .npz archive under a .npy name
        raise BadInput(f"{path} is not a single .npy array")
    if array.ndim != 1:
        raise BadInput(f"{path} holds an array of shape {array.shape}; expected a 1-D array")
    if array.dtype.kind not in "biuf":
        raise BadInput(f"{path} holds {array.dtype} values; expected numbers")
    return array.astype(np.float64)


def read_vector(cell: str, base_dir: Path) -> np.ndarray:
    """One cell -> a non-empty, finite, float32-representable float64 vector."""
    text = cell.strip()
    if not text:
        raise BadInput("empty vector cell")
    values = load_file(Path(base_dir) / text) if is_file_cell(text) else parse_numbers(text)
    if values.size == 0:
        raise BadInput("empty vector (0 values)")
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise BadInput(f"non-finite value {values[i]} at position {i + 1} of {values.size}")
    big = np.abs(values) > FLOAT32_MAX
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise BadInput(f"value {values[i]:g} at position {i + 1} is too large for float32")
    return values


def _short(token: str, limit: int = 40) -> str:
    return token if len(token) <= limit else token[:limit] + "..."
