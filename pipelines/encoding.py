"""Latent means per manifest row: features and dimensionality reduction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from polyvae.core.dataset import TensorData
from polyvae.core.errors import UsageError
from polyvae.core.run import LoadedRun


@torch.no_grad()
@torch.no_grad()
def encode_rows(run: LoadedRun, data: TensorData, batch_size: int = 256, device="cpu") -> np.ndarray:
    """``(rows, latent_dim)`` latent means from each row's present modalities."""
    run.model.to(device).eval()
    out = []
    for start in range(0, len(data), batch_size):
        out.append(run.model.features(data.batch(slice(start, start + batch_size)).to(device)).float().cpu())
    return torch.cat(out).numpy()


def write_features(path: Path, features: np.ndarray, rows: list[int]) -> None:
    """``.npy`` (array) or ``.csv`` (manifest row number, then z_0..z_{D-1})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, features)
    elif suffix == ".csv":
        header = "row," + ",".join(f"z{i}" for i in range(features.shape[1]))
        table = np.column_stack([np.asarray(rows), features])
        np.savetxt(path, table, delimiter=",", header=header, comments="",
                   fmt=["%d"] + ["%.6g"] * features.shape[1])
    else:
        raise UsageError(f"--out {path}: use a .npy or .csv file name")


def colour_column(data: TensorData) -> str | None:
    for column in ("label", "speaker"):
        values = data.metadata.get(column)
        if values and any(values):
            return column
    return None


def plot_features(path: Path, features: np.ndarray, data: TensorData, title: str = "latent means") -> Path:
    """A 2-D PCA projection coloured by ``label`` (or ``speaker``), saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    xy = features[:, :2] if features.shape[1] <= 2 else PCA(2, random_state=0).fit_transform(features)
    if xy.shape[1] == 1:
        xy = np.column_stack([xy[:, 0], np.zeros(len(xy))])
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    column = colour_column(data)
    if column:
        values = np.asarray(data.metadata[column])
        for value in sorted(set(values)):
            sel = values == value
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8, label=value or "(none)", alpha=0.75)
        ax.legend(title=column, fontsize=7, markerscale=2, loc="best", ncol=2)
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.75)
    ax.set_title(title)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
