"""Reconstruction-error anomaly scores per manifest row, and ROC AUC when rows are marked."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from polyvae.core.dataset import TensorData
from polyvae.core.errors import UsageError
from polyvae.core.run import LoadedRun

TRUE_WORDS = {"1", "true", "yes", "y", "anomaly", "anomalous"}
FALSE_WORDS = {"0", "false", "no", "n", "normal", ""}


@dataclass
class AnomalyScores:
    rows: list[int]
    scores: np.ndarray                      # (N,) mean reconstruction error over present modalities
    per_modality: dict[str, np.ndarray]     # (N,) each, NaN where the modality is missing
    marked: np.ndarray | None               # (N,) bool, when the data says which rows are anomalous
    auc: float | None


@torch.no_grad()
def score_rows(run: LoadedRun, data: TensorData, batch_size: int = 256, device="cpu") -> dict[str, np.ndarray]:
    run.model.to(device).eval()
    out: dict[str, list[np.ndarray]] = {m: [] for m in run.modalities}
    for start in range(0, len(data), batch_size):
        batch = data.batch(slice(start, start + batch_size)).to(device)
        errors = run.model.reconstruction_error(batch)
        for m in run.modalities:
            err = errors.get(m)
            values = np.full(batch.size, np.nan) if err is None else err.float().cpu().numpy()
            values[~batch.present[m].cpu().numpy()] = np.nan
            out[m].append(values)
    return {m: np.concatenate(v) for m, v in out.items()}


def marked_rows(data: TensorData, anomalous_label: str | None) -> np.ndarray | None:
    """Which rows are anomalous: an ``anomaly`` column (1/0, true/false), or ``label == X``."""
    if anomalous_label is not None:
        labels = data.metadata.get("label")
        if not labels:
            raise UsageError("--anomalous-label needs a 'label' column in the manifest")
        return np.asarray(labels) == anomalous_label
    column = data.metadata.get("anomaly")
    if not column:
        return None
    values = [v.strip().lower() for v in column]
    bad = [v for v in values if v not in TRUE_WORDS | FALSE_WORDS]
    if bad:
        raise UsageError(f"column 'anomaly' must hold 1/0 or true/false, found '{bad[0]}'")
    return np.asarray([v in TRUE_WORDS for v in values])


def anomaly_scores(run: LoadedRun, data: TensorData, anomalous_label: str | None = None,
                   device="cpu") -> AnomalyScores:
    per = score_rows(run, data, device=device)
    stacked = np.stack(list(per.values()))
    scores = np.nanmean(np.where(np.isnan(stacked), np.nan, stacked), axis=0)
    marked = marked_rows(data, anomalous_label)
    auc = None
    if marked is not None and 0 < marked.sum() < len(marked):
        from sklearn.metrics import roc_auc_score
        auc = float(roc_auc_score(marked, scores))
    return AnomalyScores(data.rows, scores, per, marked, auc)


def write_scores(path, result: AnomalyScores) -> None:
    import csv
    from polyvae.core.atomic import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            header = ["row", "score", *[f"error_{m}" for m in result.per_modality]]
            if result.marked is not None:
                header.append("marked_anomalous")
            writer.writerow(header)
            for i, row in enumerate(result.rows):
                line = [row, f"{result.scores[i]:.6g}", *[("" if np.isnan(v[i]) else f"{v[i]:.6g}")
                                                        for v in result.per_modality.values()]]
                if result.marked is not None:
                    line.append(int(result.marked[i]))
                writer.writerow(line)
