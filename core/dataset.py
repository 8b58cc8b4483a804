"""Manifest rows decoded once by the modality plugins, as tensors.

:func:`load_tensors` decodes into the on-disk cache (:mod:`.cache`, :mod:`.decoding`) and
reads batches from it; :func:`read_cells` and :func:`build_tensors` are the in-memory path,
used when the cache is off (``POLYVAE_DATA_CACHE=off``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .batch import Batch
from .columns import CachedColumn
from .config import TensorSpec
from .errors import BadInput, BadManifest, BadRows
from .manifest import Manifest
from .modality import Modality

Progress = Callable[[Iterable, str], Iterable]


def _no_progress(items: Iterable, _label: str) -> Iterable:
    return items


@dataclass
class TensorData:
    """Decoded rows: ``data[m]`` ``(N, *shape)``, ``present[m]`` bool ``(N,)``.

    ``data[m]`` is a tensor, or a :class:`~.columns.CachedColumn` (rows on disk in a compact
    dtype, decoded when indexed); :meth:`batch` and :meth:`subset` read only the rows they
    need. ``rows`` are the manifest row numbers kept (1-based), ``metadata`` the other
    columns, ``labels`` the rows' private-latent labels (:mod:`.labels`; set for training),
    ``notes`` what the modalities noted while decoding, ``cache`` where the rows live
    (:class:`~.decoding.CacheInfo`; None in memory).
    """

    data: dict[str, torch.Tensor | CachedColumn]
    present: dict[str, torch.Tensor]
    rows: list[int]
    metadata: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[BadInput] = field(default_factory=list)
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cache: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: torch.Tensor | list[int] | slice) -> Batch:
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices, dtype=torch.long)
        idx = indices if isinstance(indices, torch.Tensor) else torch.arange(len(self))[indices]
        return Batch({m: t[idx] for m, t in self.data.items()},
                     {m: p[idx] for m, p in self.present.items()}, idx, self.complete,
                     {m: l[idx] for m, l in self.labels.items()})

    def to(self, device: torch.device) -> "TensorData":
        """The rows with their tensors on ``device``; cached columns stay on disk for the CPU,
        and move to a GPU in their compact dtype (decoded there per batch)."""
        return TensorData({m: t.on(device) if isinstance(t, CachedColumn) else t.to(device)
                           for m, t in self.data.items()},
                          {m: p.to(device) for m, p in self.present.items()}, self.rows, self.metadata,
                          self.skipped, {m: l.to(device) for m, l in self.labels.items()},
                          self.notes, self.cache)

    def specs(self) -> dict[str, TensorSpec]:
        """Shape and dtype of each modality's examples."""
        return {m: TensorSpec(list(t.shape[1:]), str(t.dtype).removeprefix("torch."))
                for m, t in self.data.items()}

    @functools.cached_property
    def complete(self) -> bool:
        """Every row has every modality (checked once; the rows never change)."""
        return all(bool(p.all()) for p in self.present.values())

    def subset(self, indices: list[int] | torch.Tensor) -> "TensorData":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorData({m: t.take(idx) if isinstance(t, CachedColumn) else t[idx]
                           for m, t in self.data.items()},
                          {m: p[idx] for m, p in self.present.items()},
                          [self.rows[i] for i in idx.tolist()],
                          {k: [v[i] for i in idx.tolist()] for k, v in self.metadata.items()},
                          labels={m: l[idx] for m, l in self.labels.items()},
                          notes=self.notes, cache=self.cache)


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train/validation split of ``range(n)``."""
    gen = torch.Generator().manual_seed(seed + 7919)
    perm = torch.randperm(n, generator=gen).tolist()
    n_val = int(round(n * validation_fraction)) if n >= 10 else 0
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _non_finite(raw: object) -> bool:
    """True for a floating-point array or tensor holding NaN or inf (strings etc. are fine)."""
    if isinstance(raw, torch.Tensor):
        return bool(raw.is_floating_point() or raw.is_complex()) and not bool(torch.isfinite(raw).all())
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "fc":
        return not bool(np.isfinite(raw).all())
    if isinstance(raw, float):
        return not math.isfinite(raw)
    return False


def _cell_file(manifest: Manifest, mod: Modality, cell: str) -> Path:
    """What a message about a cell names: the file for path cells, else the manifest."""
    return (manifest.base_dir / cell.strip()) if mod.cell_is_path else manifest.path


def _read(mod: Modality, name: str, cell: str, base_dir: Path) -> object:
    """``mod.read``; a decoder that fails in a way the plugin did not foresee (a crafted file
    tripping an ``IndexError`` deep in a codec) still becomes a located :class:`BadInput`."""
    try:
        return mod.read(cell, base_dir)
    except BadInput as err:
        if mod.cell_is_path and "\\" in cell and not (base_dir / cell).exists():
            raise BadInput(f"{err.reason}. {backslash_hint(cell, base_dir)}", err.file, err.row,
                           err.modality) from None
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())[:160]
        raise BadInput(f"the {name} plugin could not read it ({type(exc).__name__}: {text})") from None


def backslash_hint(cell: str, base_dir: Path) -> str:
    """What to say about a path cell written with Windows backslashes."""
    posix = cell.replace("\\", "/")
    found = " (that file exists)" if (base_dir / posix).exists() else ""
    return (f"The path has backslashes, which only Windows reads as folder separators: write it "
            f"'{posix}'{found}; every system reads '/'")


#: bad cells a failing validation pass lists before it stops reading
MAX_LISTED = 20


def _fail(bad: list[BadInput]) -> None:
    if bad:
        raise BadRows(bad[:MAX_LISTED], len(bad)) if len(bad) > 1 else bad[0]


def read_cells(manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str = "fail",
               progress: Progress = _no_progress) -> tuple[dict[str, dict[int, object]], list[int], list[BadInput]]:
    """Decode every non-empty cell; the validation pass that runs before any training.

    Returns raw values by modality and row index, the kept row indices, and the bad cells
    skipped. With ``on_bad_input="fail"`` a bad cell raises :class:`BadInput` naming the file
    and row, once the pass has read every row (several bad cells: a :class:`BadRows` listing
    up to :data:`MAX_LISTED` of them); with ``"skip"`` its whole row is dropped and counted. A
    value a plugin returns with NaN or inf in it is a bad cell too, whatever the plugin.
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
                raw = _read(mod, name, cell, manifest.base_dir)
                if _non_finite(raw):
                    raise BadInput("non-finite values (NaN or inf) in the data")
                raws[name][i] = raw
            except BadInput as err:
                bad.append(err.located(file=_cell_file(manifest, mod, cell), row=i + 1, modality=name))
                bad_rows.add(i)
    if on_bad_input != "skip":
        _fail(bad)
    kept = [i for i in range(len(manifest)) if i not in bad_rows
            and any(i in raws[m] for m in modalities)]
    if not kept:
        _no_usable_rows(manifest, modalities, bad)
    return raws, kept, bad


def _no_usable_rows(manifest: Manifest, modalities: dict[str, Modality], bad: list[BadInput]) -> None:
    what = ", ".join(modalities)
    detail = f"; {len(bad)} bad row(s) skipped, first: {bad[0].message()}" if bad else ""
    raise BadManifest(f"{manifest.path}: no usable rows (no row has a valid {what} cell{detail})")


def build_tensors(manifest: Manifest, modalities: dict[str, Modality], raws: dict[str, dict[int, object]],
                  kept: list[int], progress: Progress = _no_progress, on_bad_input: str = "fail") -> TensorData:
    """Preprocess raw values of ``kept`` rows into tensors (modalities must already be fitted).

    A row whose preprocessed values are not finite is a :class:`BadInput` (or, with
    ``on_bad_input="skip"``, dropped and listed in the result's ``skipped``).
    """
    values: dict[str, torch.Tensor] = {}
    have: dict[str, list[int]] = {}
    bad: list[BadInput] = []
    bad_rows: set[int] = set()
    for name, mod in modalities.items():
        have[name] = [i for i in kept if i in raws[name]]
        if not have[name]:
            raise BadManifest(f"{manifest.path}: column '{name}' has no usable cell")
        chunks = []
        for start in progress(range(0, len(have[name]), 256), f"preparing {name}"):
            chunks.append(mod.preprocess([raws[name][i] for i in have[name][start:start + 256]]))
        values[name] = torch.cat(chunks)
        finite = torch.isfinite(values[name].flatten(1).float()).all(1)
        for j in (~finite).nonzero().flatten().tolist():
            i = have[name][j]
            bad.append(BadInput("non-finite values (NaN or inf) after preprocessing",
                                file=_cell_file(manifest, mod, manifest.rows[i].get(name, "")),
                                row=i + 1, modality=name))
            bad_rows.add(i)
    if on_bad_input != "skip":
        _fail(sorted(bad, key=lambda e: (e.row or 0, e.modality or "")))
    if bad_rows:
        kept = [i for i in kept if i not in bad_rows]
        if not kept:
            _no_usable_rows(manifest, modalities, bad)
    position = {r: k for k, r in enumerate(kept)}
    data, present = {}, {}
    for name in modalities:
        keep = [j for j, i in enumerate(have[name]) if i in position]
        if not keep:
            raise BadManifest(f"{manifest.path}: column '{name}' has no usable cell")
        vals = values[name][torch.tensor(keep, dtype=torch.long)]
        full = torch.zeros((len(kept),) + tuple(vals.shape[1:]), dtype=vals.dtype)
        where = torch.tensor([position[have[name][j]] for j in keep], dtype=torch.long)
        full[where] = vals
        mask = torch.zeros(len(kept), dtype=torch.bool)
        mask[where] = True
        data[name], present[name] = full, mask
    metadata = {c: [manifest.rows[i].get(c, "") for i in kept]
                for c in manifest.columns if c not in modalities}
    return TensorData(data, present, [i + 1 for i in kept], metadata, skipped=bad)


def load_tensors(manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str = "fail",
                 fit_rows: Callable[[list[int]], list[int]] | None = None,
                 progress: Progress = _no_progress, *, fit_key: Any = None,
                 workers: int | None = None) -> TensorData:
    """Read, (optionally) fit on the rows ``fit_rows(kept)`` selects, preprocess.

    ``fit_rows=None`` means the modalities are already fitted (a trained run reading new data).
    The rows are decoded into the on-disk cache, or taken from it when an earlier load
    decoded the same files with the same modality settings and fitted states (see
    :mod:`.cache`); fitting goes through the cache only when ``fit_key`` (JSON-able) says
    which rows ``fit_rows`` picks. ``workers``: decoding processes (default: the cores).
    """
    if fit_rows is None or fit_key is not None:
        from .decoding import load_cached
        cached = load_cached(manifest, modalities, on_bad_input, fit_rows, fit_key, progress, workers)
        if cached is not None:
            return cached
    raws, kept, bad = read_cells(manifest, modalities, on_bad_input, progress)
    if fit_rows is not None:
        chosen = set(fit_rows(kept))
        for name, mod in modalities.items():
            values = [raws[name][i] for i in kept if i in chosen and i in raws[name]]
            if not values:
                values = [raws[name][i] for i in kept if i in raws[name]]
            mod.fit(values)
    tensors = build_tensors(manifest, modalities, raws, kept, progress, on_bad_input)
    tensors.skipped = sorted(bad + tensors.skipped, key=lambda e: (e.row or 0, e.modality or ""))
    return tensors
