"""Shared helpers of the benchmark scripts: machine description, load, timing, matmul peak, data.

Not a benchmark itself. The scripts in this folder are run by hand (never by the test
suite); each one's docstring gives its exact command. They import this module as
``common`` (run them from the repository root as ``.venv/bin/python benchmarks/<script>.py``).

The machine the figures in ``RESULTS.md`` come from is shared: every script prints the
1-minute load average next to its figures, and compares a candidate with its reference in
*interleaved* rounds (A, B, A, B, ...) so that a load change hits both alike; ratios are
medians of per-round ratios.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# ---- machine -----------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load() -> float:
    """1-minute load average (other processes compete for the same cores)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_line(threads: int) -> str:
    flags = cpu_flags()
    simd = "avx512_bf16" if "avx512_bf16" in flags else ("avx512f" if "avx512f" in flags else "no avx512")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu_name()}, {os.cpu_count()} logical cores ({simd}), torch {torch.__version__}, "
            f"{threads} thread(s), {gpu}, load {load():.2f}")


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads (0: all cores); returns the number used."""
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def sync(device: torch.device | str = "cpu") -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ---- timing ------------------------------------------------------------------------------
@dataclass
class Rounds:
    """Per-round measurements of one candidate (a rate: higher is better)."""

    name: str
    values: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def spread(self) -> str:
        if not self.values:
            return "-"
        lo, hi = min(self.values), max(self.values)
        return f"{lo:.0f}..{hi:.0f}" if lo >= 100 else f"{lo:.4g}..{hi:.4g}"


def interleaved(candidates: dict[str, Callable[[], float]], rounds: int) -> dict[str, Rounds]:
    """Call every candidate once per round, in turn; each returns its rate for that round."""
    out = {name: Rounds(name) for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            out[name].loads.append(load())
            out[name].values.append(fn())
    return out


def ratio_of_rounds(a: Rounds, b: Rounds) -> float:
    """Median over rounds of a/b (same-round pairs, so a load change cancels)."""
    pairs = [x / y for x, y in zip(a.values, b.values) if y > 0]
    return statistics.median(pairs) if pairs else float("nan")


def rate(fn: Callable[[], None], units_per_call: float, seconds: float = 1.0, min_calls: int = 3,
         device: torch.device | str = "cpu") -> float:
    """Units per second of ``fn`` over at least ``seconds`` and ``min_calls`` calls."""
    sync(device)
    start = time.perf_counter()
    calls = 0
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    sync(device)
    return units_per_call * calls / (time.perf_counter() - start)


# ---- peak --------------------------------------------------------------------------------
def matmul_peak(dtype: torch.dtype, device: torch.device | str = "cpu", sizes=(512, 1024, 2048),
                seconds: float = 0.7, repeats: int = 3) -> float:
    """Best FLOP/s of a square ``torch.matmul`` over a few sizes and repeats (the attainable peak)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(3):
            a @ b
        for _ in range(repeats):
            best = max(best, rate(lambda: a @ b, 2.0 * n ** 3, seconds, device=device))
    return best


# ---- data --------------------------------------------------------------------------------
@dataclass
class Digits:
    """sklearn's bundled digits: images ``(N, 8, 8)`` in [0, 1], their words and labels."""

    images: torch.Tensor
    words: list[str]
    labels: np.ndarray


def digits(binary: bool = False) -> Digits:
    """All 1,797 digits; ``binary`` thresholds pixels at 0.5 (MultiVae's Bernoulli wants 0/1)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.tensor(raw.images / 16.0, dtype=torch.float32)
    if binary:
        images = (images >= 0.5).float()
    labels = np.asarray(raw.target)
    return Digits(images, [DIGIT_WORDS[int(y)] for y in labels], labels)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"
