"""Manifest rows decoded once by the modality plugins and cached as tensors."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from .batch import Batch
from .errors import BadInput, BadManifest
from .manifest import Manifest
from .modality import Modality

Progress = Callable[[Iterable, str], Iterable]


def _no_progress(items: Iterable, _label: str) -> Iterable:
    return items


@dataclass
class TensorData:
    """Decoded rows: ``data[m]`` ``(N, *shape)``, ``present[m]`` bool ``(N,)``.

    ``rows`` are the manifest row numbers kept (1-based), ``metadata`` the other columns.
    """

    data: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    rows: list[int]
    metadata: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[BadInput] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: torch.Tensor | list[int] | slice) -> Batch:
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.long)
        idx = indices if isinstance(indices, torch.Tensor) else torch.arange(len(self))[indices]
        return Batch({m: t[idx] for m, t in self.data.items()},
                     {m: p[idx] for m, p in self.present.items()}, idx)

    def subset(self, indices: list[int] | torch.Tensor) -> "TensorData":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorData({m: t[idx] for m, t in self.data.items()},
                          {m: p[idx] for m, p in self.present.items()},
                          [self.rows[i] for i in idx.tolist()],
                          {k: [v[i] for i in idx.tolist()] for k, v in self.metadata.items()})


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train/validation split of ``range(n)``."""
    gen = torch.Generator().manual_seed(seed + 7919)
    perm = torch.randperm(n, generator=gen).tolist()
    n_val = int(round(n * validation_fraction)) if n >= 10 else 0
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def read_cells(manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str = "fail",
               progress: Progress = _no_progress) -> tuple[dict[str, dict[int, object]], list[int], list[BadInput]]:
    """Decode every non-empty cell; the validation pass that runs before any training.

    Returns raw values by modality and row index, the kept row indices, and the bad cells
    skipped. With ``on_bad_input="fail"`` the first bad cell raises :class:`BadInput` naming
    the file and row; with ``"skip"`` its whole row is dropped and counted.
    """
    raws: dict[str, dict[int, object]] = {m: {} for m in modalities}
    bad: list[BadInput] = []
    bad_rows: set[int] = set()
    for i in progress(range(len(manifest)), "reading"):
        row = manifest.rows[i]
        for name, mod in modalities.items():
            cell = row.get(name, "") or ""
            if mod.cell_is_path:
                cell = cell.strip()
            if cell == "":
                continue
            try:
                raws[name][i] = mod.read(cell, manifest.base_dir)
            except BadInput as err:
                located = err.located(file=(manifest.base_dir / cell) if mod.cell_is_path else manifest.path,
                                      row=i + 1, modality=name)
                if on_bad_input != "skip":
                    raise located from None
                bad.append(located)
                bad_rows.add(i)
    kept = [i for i in range(len(manifest)) if i not in bad_rows
            and any(i in raws[m] for m in modalities)]
    if not kept:
        what = ", ".join(modalities)
        raise BadManifest(f"{manifest.path}: no usable rows (no row has a valid {what} cell"
                          + (f"; {len(bad)} bad cell(s) skipped" if bad else "") + ")")
    return raws, kept, bad


def build_tensors(manifest: Manifest, modalities: dict[str, Modality], raws: dict[str, dict[int, object]],
                  kept: list[int], progress: Progress = _no_progress) -> TensorData:
    """Preprocess raw values of ``kept`` rows into tensors (modalities must already be fitted)."""
    data, present = {}, {}
    for name, mod in modalities.items():
        have = [i for i in kept if i in raws[name]]
        if not have:
            raise BadManifest(f"{manifest.path}: column '{name}' has no usable cell")
        chunks = []
        for start in progress(range(0, len(have), 256), f"preparing {name}"):
            chunks.append(mod.preprocess([raws[name][i] for i in have[start:start + 256]]))
        values = torch.cat(chunks)
        finite = torch.isfinite(values.flatten(1).float()).all(1)
        if not bool(finite.all()):
            i = have[int((~finite).nonzero()[0])]
            cell = manifest.rows[i].get(name, "")
            raise BadInput("non-finite values after preprocessing",
                           file=(manifest.base_dir / cell) if mod.cell_is_path else manifest.path,
                           row=i + 1, modality=name)
        full = torch.zeros((len(kept),) + tuple(values.shape[1:]), dtype=values.dtype)
        position = {r: k for k, r in enumerate(kept)}
        where = torch.tensor([position[i] for i in have], dtype=torch.long)
        full[where] = values
        mask = torch.zeros(len(kept), dtype=torch.bool)
        mask[where] = True
        data[name], present[name] = full, mask
    metadata = {c: [manifest.rows[i].get(c, "") for i in kept]
                for c in manifest.columns if c not in modalities}
    return TensorData(data, present, [i + 1 for i in kept], metadata)


def load_tensors(manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str = "fail",
                 fit_rows: Callable[[list[int]], list[int]] | None = None,
                 progress: Progress = _no_progress) -> TensorData:
    """Read, (optionally) fit on the rows ``fit_rows(kept)`` selects, preprocess.

    ``fit_rows=None`` means the modalities are already fitted (a trained run reading new data).
    """
    raws, kept, bad = read_cells(manifest, modalities, on_bad_input, progress)
    if fit_rows is not None:
        chosen = set(fit_rows(kept))
        for name, mod in modalities.items():
            values = [raws[name][i] for i in kept if i in chosen and i in raws[name]]
            if not values:
                values = [raws[name][i] for i in kept if i in raws[name]]
            mod.fit(values)
    tensors = build_tensors(manifest, modalities, raws, kept, progress)
    tensors.skipped = bad
    return tensors
