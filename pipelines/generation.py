"""Cross-modal generation from a trained run: given values -> targets -> values or files."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from polyvae.core.batch import Batch, partial_batch
from polyvae.core.errors import BadInput, UsageError
from polyvae.core.models import PRIOR
from polyvae.core.run import LoadedRun

from .run_data import notes_as_warnings


def given_batch(run: LoadedRun, rows: list[Mapping[str, Any]], n: int = 1, device="cpu") -> Batch:
    """A batch of ``len(rows) * n`` rows: each given row repeated ``n`` times, holding its
    values (paths, strings, PIL images, :class:`~polyvae.core.sound.Audio`, arrays: whatever
    the modality's ``from_value`` takes); every modality a row does not give is missing.

    With no values at all every row is empty and the model samples from its prior.
    """
    mods = run.modalities
    for row in rows:
        for m in row:
            if m not in mods:
                raise UsageError(f"--given {m}=...: this run has no modality '{m}' "
                                 f"(it has {', '.join(mods)})")
    total = len(rows) * n
    given, present = {}, {}
    for m, mod in mods.items():
        which = [i for i, row in enumerate(rows) if m in row]
        if not which:
            continue
        raws = []
        with notes_as_warnings([mod]):          # e.g. a clip longer than the run models
            for i in which:
                value = rows[i][m]
                try:
                    raws.append(mod.from_value(value))
                except BadInput as err:
                    file = value if mod.cell_is_path and isinstance(value, (str, Path)) else None
                    raise err.located(file=file, modality=m) from None
            x = mod.preprocess(raws)
        if not bool(torch.isfinite(x.float()).all()):
            raise BadInput("non-finite values after preprocessing", modality=m)
        spec = run.config.data.tensors.get(m)
        full = spec.zeros(len(rows)) if spec is not None else torch.zeros((len(rows), *x.shape[1:]), dtype=x.dtype)
        full[which] = x.to(full.dtype)
        mask = torch.zeros(len(rows), dtype=torch.bool)
        mask[which] = True
        given[m] = full.repeat_interleave(n, dim=0)
        present[m] = mask.repeat_interleave(n, dim=0)
    missing = [m for m in mods if m not in given and m not in run.config.data.tensors]
    if missing:
        raise UsageError(f"{run.path}: config.json does not record the tensor shape of '{missing[0]}'")
    return partial_batch(run.config.data.tensors, given, present, n=total).to(device)


@torch.no_grad()
def generate_tensors(run: LoadedRun, rows: list[Mapping[str, Any]], targets: list[str], n: int,
                     seed: int = 0, sample: bool = True, device="cpu",
                     private: dict[str, torch.Tensor] | None = None) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Decoded targets ``(len(rows) * n, *shape)`` per target modality (rows in order, their
    ``n`` samples together), and the target list used (all modalities not given, by default).

    ``private[m]`` ``(P,)`` sets modality ``m``'s private latent (a singer's voice) for every row.
    """
    model = run.model
    names = {m for row in rows for m in row}
    if not targets:
        targets = [m for m in run.modalities if m not in names] or list(run.modalities)
    for t in targets:
        if t not in run.modalities:
            raise UsageError(f"--to {t}: this run has no modality '{t}' (it has {', '.join(run.modalities)})")
    if not names:
        model.require(PRIOR, "sample from a prior: give it a modality to start from (--given MOD=VALUE)")
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    batch = given_batch(run, rows or [{}], n, device)
    model.to(device).eval()
    extra = {}
    if private:
        extra["private"] = {m: w.to(device).view(1, -1).expand(batch.size, -1) for m, w in private.items()}
    return targets, model.generate(batch, targets, generator=generator, sample=sample, **extra)


def write_outputs(run: LoadedRun, outputs: dict[str, torch.Tensor], out_dir: Path) -> list[Path]:
    """``out_dir/<modality>_<k>.<ext>`` for every output row k; returns the paths, target by target."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for t, xs in outputs.items():
        mod = run.modalities[t]
        paths = [out_dir / f"{t}_{k}.{mod.extension}" for k in range(xs.shape[0])]
        mod.render_batch(xs.cpu(), paths)
        written += paths
    return written
