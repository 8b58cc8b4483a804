"""A batch: the tensors of each modality plus which rows actually have it."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


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
