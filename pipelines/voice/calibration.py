"""What a voice distance means: percentiles and a same-voice threshold fitted on training clips.

For every training clip, its distance to its own singer's embedding (leaving the clip out of
that embedding, so a singer with few clips is not flattered) is a *genuine* score, and its
distance to every other singer's embedding an *impostor* score. From them:

* **percentile** of a distance ``d`` to singer ``k``: the share of other singers' clips that
  are farther from ``k`` than ``d`` (99: closer to ``k`` than 99% of other people's clips);
* **threshold**: the distance at which the share of genuine clips rejected equals the share of
  impostor clips accepted (the equal error rate, EER); a recording closer than it to a singer
  is "probably the same voice".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

#: at most this many sorted impostor distances are kept per singer (quantiles of the rest)
KEEP = 400


@dataclass
class Calibration:
    threshold: float
    eer: float
    impostors: dict[str, np.ndarray] = field(default_factory=dict)     # per singer, sorted
    genuine: dict[str, np.ndarray] = field(default_factory=dict)       # per singer, sorted

    def percentile(self, singer: str, distance: float) -> float | None:
        """Share (0-100) of other singers' training clips farther from ``singer`` than ``distance``."""
        others = self.impostors.get(singer)
        if others is None or others.size == 0:
            return None
        return round(100.0 * float(np.mean(others > distance)), 1)

    def same_voice(self, distance: float) -> bool:
        return distance < self.threshold

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "eer": self.eer,
                "impostors": {k: [round(float(v), 5) for v in a] for k, a in self.impostors.items()},
                "genuine": {k: [round(float(v), 5) for v in a] for k, a in self.genuine.items()}}

    @classmethod
    def from_json(cls, raw: dict) -> "Calibration":
        return cls(float(raw["threshold"]), float(raw["eer"]),
                   {k: np.asarray(v, dtype=np.float64) for k, v in raw.get("impostors", {}).items()},
                   {k: np.asarray(v, dtype=np.float64) for k, v in raw.get("genuine", {}).items()})


def equal_error_threshold(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(threshold, EER): accept ``d < threshold``; the threshold where the false-rejection rate
    of genuine scores meets the false-acceptance rate of impostor scores (midpoint between
    neighbouring scores; when they do not overlap at all, halfway across the gap)."""
    genuine, impostor = np.sort(np.asarray(genuine, float)), np.sort(np.asarray(impostor, float))
    if genuine.size == 0 or impostor.size == 0:
        return float("inf") if impostor.size == 0 else float(impostor[0]), float("nan")
    candidates = np.unique(np.concatenate([genuine, impostor]))
    cuts = np.concatenate([[candidates[0] - 1e-9], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-9]])
    frr = 1.0 - np.searchsorted(genuine, cuts, side="left") / genuine.size      # genuine >= cut: rejected
    far = np.searchsorted(impostor, cuts, side="left") / impostor.size          # impostor < cut: accepted
    best = int(np.argmin(np.abs(frr - far) + 1e-6 * np.abs(cuts)))
    if frr[best] == 0.0 and far[best] == 0.0:
        lo, hi = genuine.max(), impostor.min()
        return float((lo + hi) / 2), 0.0
    return float(cuts[best]), float((frr[best] + far[best]) / 2)


def _quantiles(values: np.ndarray) -> np.ndarray:
    values = np.sort(values)
    if values.size <= KEEP:
        return values
    return np.quantile(values, np.linspace(0, 1, KEEP))


def calibrate(latents: torch.Tensor, speakers: list[str], embeddings: dict[str, tuple[torch.Tensor, int]],
              distance) -> Calibration:
    """Genuine (leave-one-out) and impostor distances of training clips ``latents`` ``(N, P)``
    whose singers are ``speakers``; ``distance(w, e)`` is the table's metric."""
    names = sorted(embeddings)
    matrix = torch.stack([embeddings[n][0] for n in names])                      # (K, P)
    d = distance(latents[:, None, :], matrix[None]).double().numpy()             # (N, K)
    index = {n: i for i, n in enumerate(names)}
    genuine: dict[str, list[float]] = {n: [] for n in names}
    impostor: dict[str, list[float]] = {n: [] for n in names}
    for i, s in enumerate(speakers):
        if s not in index:
            continue
        own, count = embeddings[s]
        if count >= 2:                           # the singer's embedding without this clip
            loo = (own * count - latents[i]) / (count - 1)
            genuine[s].append(float(distance(latents[i], loo)))
        for n in names:
            if n != s:
                impostor[n].append(float(d[i, index[n]]))
    all_genuine = np.concatenate([np.asarray(v) for v in genuine.values()] or [np.zeros(0)])
    all_impostor = np.concatenate([np.asarray(v) for v in impostor.values()] or [np.zeros(0)])
    threshold, eer = equal_error_threshold(all_genuine, all_impostor)
    return Calibration(threshold, eer, {n: _quantiles(np.asarray(v)) for n, v in impostor.items()},
                       {n: _quantiles(np.asarray(v)) for n, v in genuine.items()})
