"""Row labels for private latents: the group (e.g. the singer) a row's private latent should name.

A modality with a private latent may name a metadata column whose values that latent
should tell apart (:attr:`~polyvae.core.modality.Modality.private_label_column`; audio:
``speaker``). Without it the voice latent of short, varied clips learns what most changes
a spectrogram overall (how much of the clip is silence, the recording's bandwidth) before
it learns who is singing; the labels the user already gives steer it to the voice.

The label names are fitted on the training rows (sorted; ``config.json`` keeps them as
``private_labels``). Each row gets the index of its value, or -1 where the cell is empty,
the modality is missing, or the value was never seen in training.
"""
from __future__ import annotations

import torch
from torch import nn

from .dataset import TensorData
from .modality import Modality


def label_columns(modalities: dict[str, Modality]) -> dict[str, str]:
    """Modality -> the metadata column its private latent is asked to tell apart."""
    return {m: mod.private_label_column for m, mod in modalities.items()
            if mod.private_dim and mod.private_label_column}


def _cells(data: TensorData, modality: str, column: str) -> list[str]:
    values = data.metadata.get(column) or [""] * len(data)
    present = data.present[modality].tolist()
    return [v.strip() if here else "" for v, here in zip(values, present)]


def fit_label_names(data: TensorData, modalities: dict[str, Modality]) -> dict[str, list[str]]:
    """Sorted label values of each labelled modality's rows; modalities with fewer than two are left out."""
    names = {}
    for m, column in label_columns(modalities).items():
        values = sorted({v for v in _cells(data, m, column) if v})
        if len(values) >= 2:
            names[m] = values
    return names


def label_ids(data: TensorData, modalities: dict[str, Modality],
              names: dict[str, list[str]]) -> dict[str, torch.Tensor]:
    """``(N,)`` long index into ``names[m]`` per row (-1: no usable label)."""
    ids = {}
    for m, column in label_columns(modalities).items():
        if m not in names:
            continue
        index = {name: i for i, name in enumerate(names[m])}
        ids[m] = torch.tensor([index.get(v, -1) for v in _cells(data, m, column)], dtype=torch.long)
    return ids


class LabelHead(nn.Module):
    """A learnt centre per label value in a private latent's space, and how sharply a
    latent mean is assigned to the nearest: logits ``-s * |mu - c_k|^2 / 2``.

    The sharpness ``s`` is learnt too, so labels the latent already separates are
    recognised by sharpening the logits rather than by pushing the voices apart.
    """

    def __init__(self, count: int, dim: int):
        super().__init__()
        self.centres = nn.Parameter(torch.randn(count, dim))
        self.log_sharpness = nn.Parameter(torch.zeros(()))

    def logits(self, mu: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` latent means -> ``(B, K)`` logits over the label values."""
        distance = (mu[:, None, :] - self.centres[None].to(mu.dtype)).pow(2).sum(-1)
        return -0.5 * self.log_sharpness.exp().to(mu.dtype) * distance
