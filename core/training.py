"""The training loop: one process, one GPU, or many under torchrun (DDP).

It validates the whole manifest before the first epoch, writes the run directory after
each complete epoch (rank 0 only, atomically) and resumes from the last one.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from . import __version__
from .atomic import write_text_atomic
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .dataset import Progress, TensorData, _no_progress, load_tensors, split_indices
from .device import Distributed, init_distributed, resolve_device, shutdown_distributed
from .errors import TrainingDiverged, UsageError
from .manifest import read_manifest
from .modality import Modality
from .models import AutoencoderModel
from .plugins import Registry, get_registry
from .run import CONFIG, build_model, build_modalities, plugin_versions, read_config, save_run

METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint"


@dataclass
class EpochReport:
    epoch: int
    metrics: dict[str, float]
    model: AutoencoderModel
    data: "PreparedData"
    run_dir: Path


@dataclass
class TrainingHooks:
    """UI callbacks; the loop itself never prints."""

    progress: Progress = _no_progress
    #: called with (total_steps, label); returns an object with update(n) and close()
    step_bar: Callable[[int, str], Any] | None = None
    on_epoch_end: Callable[[EpochReport], None] | None = None
    log: Callable[[str], None] = lambda _msg: None


@dataclass
class PreparedData:
    modalities: dict[str, Modality]
    train: TensorData
    validation: TensorData
    skipped: list = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_data(config: RunConfig, manifest_path: Path, registry: Registry, fit: bool,
                 progress: Progress = _no_progress) -> PreparedData:
    """Validate and decode the manifest, fit the modalities on the training split if ``fit``."""
    manifest = read_manifest(manifest_path)
    if not config.model.modalities:
        config.model.modalities = [c for c in manifest.columns if c in registry.modalities]
        if not config.model.modalities:
            raise UsageError(f"{manifest_path}: no column is an installed modality "
                             f"({', '.join(sorted(registry.modalities))}); columns are "
                             f"{', '.join(manifest.columns)}")
    for name in config.model.modalities:
        registry.modality(name)
        if not manifest.has(name):
            raise UsageError(f"{manifest_path}: no column '{name}' (columns: {', '.join(manifest.columns)})")
    modalities = build_modalities(config, registry)
    if not fit:
        for name, mod in modalities.items():
            mod.load_state(config.modality_states.get(name, {}))
    seed = config.train.seed
    frac = config.train.validation_fraction

    def training_rows(kept: list[int]) -> list[int]:
        train_idx, _ = split_indices(len(kept), frac, seed)
        return [kept[i] for i in train_idx]

    data = load_tensors(manifest, modalities, config.train.on_bad_input,
                        fit_rows=training_rows if fit else None, progress=progress)
    train_idx, val_idx = split_indices(len(data), frac, seed)
    return PreparedData(modalities, data.subset(train_idx), data.subset(val_idx), data.skipped)


def _epoch_order(n: int, seed: int, epoch: int, ctx: Distributed) -> torch.Tensor:
    """Shuffled row order of an epoch, the same on every rank; each rank takes its stride."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen)
    if ctx.active:
        usable = (n // ctx.world_size) * ctx.world_size
        order = order[:usable][ctx.rank::ctx.world_size]
    return order


def _autocast(config: RunConfig, device: torch.device):
    mode = config.train.autocast
    if mode == "bf16" or (mode == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_loss(model: AutoencoderModel, data: TensorData, batch_size: int, epoch: float,
                  device: torch.device) -> dict[str, float]:
    """Mean loss terms over ``data`` in eval mode."""
    if len(data) == 0:
        return {}
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for start in range(0, len(data), batch_size):
        batch = data.batch(slice(start, start + batch_size)).to(device)
        out = model(batch, epoch)
        n = batch.size
        sums["loss"] = sums.get("loss", 0.0) + float(out.loss) * n
        for k, v in out.terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        count += n
    model.train()
    return {k: v / count for k, v in sums.items()}


def train(run_dir: str | Path, manifest_path: str | Path, config: RunConfig, *, resume: bool = False,
          hooks: TrainingHooks | None = None, registry: Registry | None = None) -> AutoencoderModel:
    """Train ``config`` on ``manifest_path`` into ``run_dir``; returns the trained model."""
    run_dir, manifest_path = Path(run_dir), Path(manifest_path)
    hooks = hooks or TrainingHooks()
    registry = registry or get_registry()
    if resume and (run_dir / CONFIG).exists():
        saved = read_config(run_dir)
        saved.train.epochs = config.train.epochs
        config = saved
    elif (run_dir / CONFIG).exists() and (run_dir / CHECKPOINT).exists() and not resume:
        raise UsageError(f"{run_dir} already holds a run; use --resume to continue it or pick a new folder")
    device = resolve_device(config.train.device)
    ctx, device = init_distributed(device)
    try:
        return _train(run_dir, manifest_path, config, resume, hooks, registry, device, ctx)
    finally:
        shutdown_distributed(ctx)


def _train(run_dir, manifest_path, config, resume, hooks, registry, device, ctx) -> AutoencoderModel:
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)
    seed_everything(config.train.seed)
    resuming = resume and bool(config.modality_states)
    data = prepare_data(config, manifest_path, registry, fit=not resuming, progress=hooks.progress)
    if data.skipped:
        hooks.log(f"skipped {len(data.skipped)} bad row(s); first: {data.skipped[0].message()}")
    config.modality_states = {m: mod.state() for m, mod in data.modalities.items()}
    config.plugins = plugin_versions(config, registry)
    config.polyvae_version = __version__
    config.data = {"manifest": str(manifest_path.resolve()), "train_rows": len(data.train),
                   "validation_rows": len(data.validation), "skipped_rows": len(data.skipped),
                   "tensors": {m: {"shape": list(t.shape[1:]), "dtype": str(t.dtype).removeprefix("torch.")}
                               for m, t in data.train.data.items()}}
    torch.manual_seed(config.train.seed)
    model = build_model(config, data.modalities, registry).to(device)
    optimizer = (torch.optim.Adam(model.parameters(), lr=config.train.learning_rate,
                                  weight_decay=config.train.weight_decay)
                 if model.uses_backprop and any(True for _ in model.parameters()) else None)
    start_epoch, history = 0, []
    if resume:
        meta = load_checkpoint(run_dir / CHECKPOINT, model, optimizer)
        if meta is not None:
            start_epoch, history = meta["epoch"], meta.get("history", [])
            hooks.log(f"resuming after epoch {start_epoch}")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / CONFIG, config.to_json())
        write_text_atomic(run_dir / METRICS, "".join(json.dumps(h) + "\n" for h in history))
    train_data = data.train
    train_dev = TensorData({m: t.to(device) for m, t in train_data.data.items()},
                           {m: p.to(device) for m, p in train_data.present.items()}, train_data.rows)
    net = model
    if ctx.active and model.uses_backprop:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bs = config.train.batch_size
    local_bs = max(1, bs // ctx.world_size)
    for epoch in range(start_epoch, config.train.epochs):
        t0 = time.perf_counter()
        order = _epoch_order(len(train_dev), config.train.seed, epoch, ctx).to(device)
        steps = max(1, math.ceil(len(order) / local_bs))
        bar = hooks.step_bar(steps, f"epoch {epoch + 1}/{config.train.epochs}") if hooks.step_bar and ctx.is_main else None
        sums: dict[str, float] = {}
        seen = 0
        model.train()
        for step in range(steps):
            idx = order[step * local_bs:(step + 1) * local_bs]
            if idx.numel() == 0:
                continue
            batch = train_dev.batch(idx)
            progress = epoch + step / steps
            with _autocast(config, device):
                out = net(batch, progress)
            if not torch.isfinite(out.loss):
                raise TrainingDiverged(
                    f"loss became {float(out.loss)} in epoch {epoch + 1}, step {step + 1}; "
                    f"the run directory keeps the last good epoch ({epoch}). Try a lower learning rate.")
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                if config.train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
                optimizer.step()
            n = idx.numel()
            seen += n
            sums["loss"] = sums.get("loss", 0.0) + float(out.loss.detach()) * n
            for k, v in out.terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            if bar is not None:
                bar.update(1)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{float(out.loss.detach()):.3f}")
        if bar is not None:
            bar.close()
        metrics = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 3),
                   "examples_per_second": round(seen * ctx.world_size / max(time.perf_counter() - t0, 1e-9), 1)}
        metrics.update({f"train/{k}": v / max(seen, 1) for k, v in sums.items()})
        if ctx.is_main:
            val = evaluate_loss(model, TensorData(data.validation.data, data.validation.present,
                                                  data.validation.rows), bs, epoch + 1, device)
            metrics.update({f"validation/{k}": v for k, v in val.items()})
            history.append(metrics)
            save_checkpoint(run_dir / CHECKPOINT, model, optimizer, epoch + 1,
                            {"history": history, "config": json.loads(config.to_json())})
            save_run(run_dir, config, model)
            write_text_atomic(run_dir / METRICS, "".join(json.dumps(h) + "\n" for h in history))
            if hooks.on_epoch_end:
                hooks.on_epoch_end(EpochReport(epoch + 1, metrics, model, data, run_dir))
    model.eval()
    return model
