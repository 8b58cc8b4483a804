"""Cross-modal generation from a trained run: given values -> targets -> files."""
from __future__ import annotations

from pathlib import Path

import torch

from polyvae.core.batch import Batch
from polyvae.core.errors import BadInput, UsageError
from polyvae.core.run import LoadedRun


def given_batch(run: LoadedRun, given: list[tuple[str, str]], n: int, device="cpu") -> Batch:
    """A batch of ``n`` identical rows holding the given values (every other modality missing).

    With nothing given, every row is empty and the model samples from its prior.
    """
    mods = run.modalities
    names = [m for m, _ in given]
    for m in names:
        if m not in mods:
            raise UsageError(f"--given {m}=...: this run has no modality '{m}' "
                             f"(it has {', '.join(mods)})")
    if len(set(names)) != len(names):
        raise UsageError("each modality can be given once")
    data, present = {}, {}
    values = dict(given)
    for m, mod in mods.items():
        if m in values:
            try:
                raw = mod.value_from_cli(values[m])
            except BadInput as err:
                raise err.located(file=values[m] if mod.cell_is_path else None, modality=m) from None
            x = mod.preprocess([raw])
            if not bool(torch.isfinite(x.float()).all()):
                raise BadInput("non-finite values after preprocessing", file=values[m], modality=m)
            data[m] = x.expand(n, *x.shape[1:]).clone()
            present[m] = torch.ones(n, dtype=torch.bool)
        else:
            data[m] = _empty_like(run, m, n)
            present[m] = torch.zeros(n, dtype=torch.bool)
    return Batch(data, present).to(device)


def _empty_like(run: LoadedRun, m: str, n: int) -> torch.Tensor:
    """Zeros shaped like the modality's training tensors (masks make the encoder ignore them)."""
    spec = run.config.data.get("tensors", {}).get(m)
    if spec is None:
        raise UsageError(f"{run.path}: config.json does not record the tensor shape of '{m}'")
    return torch.zeros((n, *spec["shape"]), dtype=getattr(torch, spec["dtype"]))


@torch.no_grad()
def generate_files(run: LoadedRun, given: list[tuple[str, str]], targets: list[str], n: int,
                   out_dir: Path, seed: int = 0, sample: bool = True, device="cpu",
                   voice: str | None = None) -> list[Path]:
    """Write ``out_dir/<modality>_<k>.<ext>`` for every target and k < n; returns the paths.

    ``voice`` names a singer of the run: the audio is decoded with that singer's voice
    embedding as its private latent (``singers.json``).
    """
    names = {m for m, _ in given}
    if not targets:
        targets = [m for m in run.modalities if m not in names] or list(run.modalities)
    for t in targets:
        if t not in run.modalities:
            raise UsageError(f"--to {t}: this run has no modality '{t}' (it has {', '.join(run.modalities)})")
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    batch = given_batch(run, given, n, device)
    run.model.to(device).eval()
    extra = {}
    if voice is not None:
        from polyvae.pipelines.voice.singers import load_table
        table = load_table(run, device)
        extra["private"] = {table.modality: table.embedding(voice).to(device).view(1, -1).expand(n, -1)}
    outputs = run.model.generate(batch, targets, generator=generator, sample=sample, **extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for t in targets:
        mod = run.modalities[t]
        for k in range(n):
            path = out_dir / f"{t}_{k}.{mod.extension}"
            mod.render(outputs[t][k].cpu(), path)
            written.append(path)
    return written
