"""A batch: the tensors of each modality plus which rows actually have it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .config import TensorSpec


@dataclass
class Batch:
    """``data[m]`` is ``(B, *shape_m)`` (zeros where missing); ``present[m]`` is bool ``(B,)``.

    ``complete`` promises that every row has every modality (all ``present`` masks True),
    known without looking at them; it lets the objective drop its masking and gathers.
    False only means "not promised". ``labels[m]`` ``(B,)`` long names each row's group for
    modality ``m``'s private latent (e.g. the singer; -1: none), during training only.
    """

    data: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    index: torch.Tensor | None = None
    complete: bool = False
    labels: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return next(iter(self.present.values())).shape[0]

    @property
    def modalities(self) -> list[str]:
        return list(self.data)

    def to(self, device) -> "Batch":
        return Batch({k: v.to(device, non_blocking=True) for k, v in self.data.items()},
                     {k: v.to(device, non_blocking=True) for k, v in self.present.items()},
                     None if self.index is None else self.index.to(device), self.complete,
                     {k: v.to(device, non_blocking=True) for k, v in self.labels.items()})

    def only(self, modalities) -> "Batch":
        """The same rows with every other modality marked missing."""
        keep = set(modalities)
        return Batch(self.data, {k: v & (k in keep) for k, v in self.present.items()}, self.index,
                     labels=self.labels)

    def select(self, rows: torch.Tensor) -> "Batch":
        return Batch({k: v[rows] for k, v in self.data.items()},
                     {k: v[rows] for k, v in self.present.items()},
                     None if self.index is None else self.index[rows], self.complete,
                     {k: v[rows] for k, v in self.labels.items()})


def partial_batch(specs: "dict[str, TensorSpec]", given: dict[str, torch.Tensor],
                  present: dict[str, torch.Tensor] | None = None, n: int | None = None) -> Batch:
    """A batch of every modality in ``specs``: ``given[m]`` ``(N, *shape)`` where supplied
    (present in the rows ``present[m]`` marks, every row by default), all-zero and missing
    for every other modality. ``n`` sets the row count when nothing is given (prior samples).

    The one way a batch with missing modalities is made (generation, voice commands,
    reading a manifest that lacks a column).
    """
    rows = next((t.shape[0] for t in given.values()), n)
    if rows is None:
        raise ValueError("partial_batch needs a given tensor or n")
    device = next((t.device for t in given.values()), None)
    data, mask = {}, {}
    for m, spec in specs.items():
        if m in given:
            data[m] = given[m]
            mask[m] = (present or {}).get(m)
            if mask[m] is None:
                mask[m] = torch.ones(rows, dtype=torch.bool, device=device)
        else:
            data[m] = spec.zeros(rows, device)
            mask[m] = torch.zeros(rows, dtype=torch.bool, device=device)
    return Batch(data, mask)
