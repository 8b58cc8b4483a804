"""Reading a manifest with a trained run's fitted modalities."""
from __future__ import annotations

from pathlib import Path

from polyvae.core.dataset import TensorData, load_tensors, split_indices
from polyvae.core.manifest import read_manifest
from polyvae.core.run import LoadedRun

from .ui import progress as default_progress


def read_rows(run: LoadedRun, manifest_path: Path, on_bad_input: str = "fail",
              progress=default_progress) -> TensorData:
    """Every usable row of ``manifest_path``, preprocessed with the run's statistics."""
    manifest = read_manifest(manifest_path)
    present = {m: mod for m, mod in run.modalities.items() if manifest.has(m)}
    if not present:
        from polyvae.core.errors import BadManifest
        raise BadManifest(f"{manifest_path}: none of the run's modalities "
                          f"({', '.join(run.modalities)}) is a column")
    data = load_tensors(manifest, present, on_bad_input, fit_rows=None, progress=progress)
    # modalities the manifest lacks are present nowhere, with the shape the run was trained on
    import torch
    for m in run.modalities:
        if m not in data.data:
            spec = run.config.data["tensors"][m]
            data.data[m] = torch.zeros((len(data), *spec["shape"]), dtype=getattr(torch, spec["dtype"]))
            data.present[m] = torch.zeros(len(data), dtype=torch.bool)
    data.data = {m: data.data[m] for m in run.modalities}
    data.present = {m: data.present[m] for m in run.modalities}
    return data


def is_training_manifest(run: LoadedRun, manifest_path: Path) -> bool:
    trained_on = run.config.data.get("manifest")
    return bool(trained_on) and Path(trained_on).resolve() == Path(manifest_path).resolve()


def held_out(run: LoadedRun, data: TensorData) -> tuple[TensorData, TensorData]:
    """(training rows, held-out rows) of the training manifest, as the run split them."""
    train_idx, val_idx = split_indices(len(data), run.config.train.validation_fraction,
                                       run.config.train.seed)
    return data.subset(train_idx), data.subset(val_idx)
