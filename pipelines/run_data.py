"""Reading data with a trained run's fitted modalities: a manifest, or rows given in Python."""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from polyvae.core.batch import partial_batch
from polyvae.core.dataset import TensorData, load_tensors, split_indices
from polyvae.core.errors import BadInput, BadManifest, DataWarning
from polyvae.core.manifest import near_misses, read_manifest
from polyvae.core.run import LoadedRun

from .ui import progress as default_progress


def read_rows(run: LoadedRun, manifest_path: Path, on_bad_input: str = "fail",
              progress=default_progress) -> TensorData:
    """Every usable row of ``manifest_path``, preprocessed with the run's statistics; a
    modality the manifest has no column for is missing in every row. The rows come from the
    manifest's data cache when an earlier command decoded them (``data.cache`` says which)."""
    manifest = read_manifest(manifest_path)
    present = {m: mod for m, mod in run.modalities.items() if manifest.has(m)}
    misses = near_misses(manifest.columns, [m for m in run.modalities if m not in present])
    for column, name in misses.items():
        warnings.warn(DataWarning(f"{manifest_path}: column '{column}' is not the run's '{name}' modality "
                                  f"(columns are matched exactly); rename it '{name}' to use it"), stacklevel=2)
    if not present:
        raise BadManifest(f"{manifest_path}: none of the run's modalities "
                          f"({', '.join(run.modalities)}) is a column")
    with notes_as_warnings(present.values()):
        data = load_tensors(manifest, present, on_bad_input, fit_rows=None, progress=progress)
    if data.cache is not None and data.cache.reused:
        for note in data.notes:             # what the first decode noted, said again
            warnings.warn(DataWarning(note), stacklevel=2)
    return _with_every_modality(run, data)


@contextlib.contextmanager
def notes_as_warnings(modalities):
    """What the modalities note about the data read inside the block (audio: clips longer
    than the run models, and so cut) as :class:`DataWarning` warnings."""
    before = {id(mod): set(mod.notes()) for mod in modalities}
    yield
    for mod in modalities:
        for note in mod.notes():
            if note not in before[id(mod)]:
                warnings.warn(DataWarning(note), stacklevel=4)


def rows_from_values(run: LoadedRun, rows: list[Mapping[str, Any]]) -> TensorData:
    """Rows given as dicts (modality -> a path, a string, an in-memory value; other keys are
    metadata such as ``label``), preprocessed like a manifest's rows."""
    with notes_as_warnings(run.modalities.values()):
        return _rows_from_values(run, rows)


def _rows_from_values(run: LoadedRun, rows: list[Mapping[str, Any]]) -> TensorData:
    values: dict[str, list] = {m: [] for m in run.modalities}
    which: dict[str, list[int]] = {m: [] for m in run.modalities}
    metadata: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key in run.modalities:
                try:
                    values[key].append(run.modalities[key].from_value(value))
                except BadInput as err:
                    file = value if isinstance(value, (str, Path)) and run.modalities[key].cell_is_path else None
                    raise err.located(file=file, row=i + 1, modality=key) from None
                which[key].append(i)
            else:
                metadata.setdefault(key, [""] * len(rows))[i] = str(value)
    given, present = {}, {}
    for m, idx in which.items():
        if not idx:
            continue
        x = run.modalities[m].preprocess(values[m])
        spec = run.config.data.tensors.get(m)
        full = spec.zeros(len(rows)) if spec is not None else torch.zeros((len(rows), *x.shape[1:]), dtype=x.dtype)
        full[idx] = x.to(full.dtype)
        present[m] = torch.zeros(len(rows), dtype=torch.bool)
        present[m][idx] = True
        given[m] = full
    batch = partial_batch(run.config.data.tensors, given, present, n=len(rows))
    return TensorData(batch.data, batch.present, list(range(1, len(rows) + 1)), metadata)


def _with_every_modality(run: LoadedRun, data: TensorData) -> TensorData:
    """``data`` with each run modality it lacks added as missing, in the run's order."""
    missing = partial_batch({m: s for m, s in run.config.data.tensors.items() if m not in data.data},
                            {}, n=len(data))
    data.data = {m: data.data[m] if m in data.data else missing.data[m] for m in run.modalities}
    data.present = {m: data.present[m] if m in data.present else missing.present[m] for m in run.modalities}
    return data


def training_manifest(run: LoadedRun) -> Path | None:
    """The manifest the run was trained on, when it is still there."""
    path = run.config.data.manifest
    return Path(path) if path and Path(path).is_file() else None


def is_training_manifest(run: LoadedRun, manifest_path: Path) -> bool:
    trained_on = run.config.data.manifest
    return bool(trained_on) and Path(trained_on).resolve() == Path(manifest_path).resolve()


def held_out(run: LoadedRun, data: TensorData) -> tuple[TensorData, TensorData]:
    """(training rows, held-out rows) of the training manifest, as the run split them: by the
    manifest row numbers it recorded, or (runs that predate the record) by its seeded split."""
    recorded = run.config.data.held_out_rows
    if recorded is None:
        train_idx, val_idx = split_indices(len(data), run.config.train.validation_fraction,
                                           run.config.train.seed)
    else:
        held = set(recorded)
        val_idx = [i for i, r in enumerate(data.rows) if r in held]
        train_idx = [i for i, r in enumerate(data.rows) if r not in held]
    return data.subset(train_idx), data.subset(val_idx)
