"""The training loop: one process, one GPU, or many under torchrun (DDP).

It validates the whole manifest before the first epoch, writes the run directory after
each complete epoch (rank 0 only, atomically) and resumes from the last one.

Randomness that shapes the weights (reparameterisation noise, subset sampling, dropout)
is drawn from the torch RNG re-seeded at every step from ``(seed, epoch, step, rank)``, and
the row order of an epoch from ``(seed, epoch)``. So nothing that runs between steps (the
validation pass, plots, a checkpoint round-trip) can change what training draws, and a run
resumed after ``kill -9`` ends with the same weights as one never interrupted.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from . import __version__
from .atomic import remove_stale_temporaries, write_text_atomic
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig, RunData
from .dataset import Progress, TensorData, _no_progress, load_tensors, split_indices
from .device import (Distributed, any_rank, average_parameters, barrier, bf16_native, check_compile_possible,
                     dump_rank_state, gather_sums, init_distributed, resolve_device,
                     shutdown_distributed)
from .errors import DataWarning, TrainingDiverged, UsageError
from .labels import fit_label_names, label_ids
from .manifest import METADATA_COLUMNS, near_misses, read_manifest
from .modality import Modality
from .models import AutoencoderModel
from .plugins import Registry, get_registry
from .run import CONFIG, build_model, build_modalities, check_plugins, plugin_versions, read_config, save_run
from .verdict import announce, training_verdict, write_verdict

METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint"
SCHEDULES = ("constant", "cosine")
#: settings of how to run (not what to train) that ``--resume`` takes from the command line
RESUME_OVERRIDES = ("epochs", "device", "on_bad_input")


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
    #: what a user must see even when quiet (rows skipped, data cut, resuming)
    log: Callable[[str], None] = lambda _msg: None
    #: what training tells along the way (rows held out, columns not used, the verdict's notes)
    info: Callable[[str], None] = lambda _msg: None


@dataclass
class PreparedData:
    modalities: dict[str, Modality]
    train: TensorData
    validation: TensorData
    skipped: list = field(default_factory=list)
    #: what the modalities noted while decoding; where the decoded rows live (.decoding.CacheInfo)
    notes: list = field(default_factory=list)
    cache: Any = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """The torch seed of one training step: a hash of where the step is, so it never depends
    on what ran before it."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{step}:{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seed_generators(seed: int, device: torch.device) -> None:
    """Seed the generators a step on ``device`` draws from (``torch.manual_seed`` also visits
    every other backend, a measurable share of a small CPU step)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def prepare_data(config: RunConfig, manifest_path: Path, registry: Registry, fit: bool,
                 progress: Progress = _no_progress) -> PreparedData:
    """Validate and decode the manifest, fit the modalities on the training split if ``fit``."""
    manifest = read_manifest(manifest_path)
    misses = near_misses(manifest.columns, [*registry.modalities, *METADATA_COLUMNS])
    for column, name in misses.items():
        warnings.warn(DataWarning(f"{manifest_path}: column '{column}' is not used; columns are "
                                  f"matched exactly, so it is not the '{name}' "
                                  f"{'modality' if name in registry.modalities else 'column'}: "
                                  f"rename it '{name}' to use it"), stacklevel=2)
    if not config.model.modalities:
        config.model.modalities = [c for c in manifest.columns if c in registry.modalities]
        if not config.model.modalities:
            raise UsageError(f"{manifest_path}: no column is an installed modality "
                             f"({', '.join(sorted(registry.modalities))}); columns are "
                             f"{', '.join(manifest.columns)}")
    for name in config.model.modalities:
        registry.modality(name)
        if not manifest.has(name):
            hint = next((f"; rename '{c}' to '{name}'" for c, n in misses.items() if n == name), "")
            raise UsageError(f"{manifest_path}: no column '{name}' (columns: {', '.join(manifest.columns)}{hint})")
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
                        fit_rows=training_rows if fit else None, progress=progress,
                        fit_key={"seed": seed, "validation_fraction": frac})
    train_idx, val_idx = split_indices(len(data), frac, seed)
    return PreparedData(modalities, data.subset(train_idx), data.subset(val_idx), data.skipped,
                        data.notes, data.cache)


def epoch_order(n: int, seed: int, epoch: int, ctx: Distributed) -> torch.Tensor:
    """This rank's rows of an epoch, from a :class:`DistributedSampler` over ``range(n)``.

    Every rank shuffles alike and takes every ``world_size``-th row (the tail that does not
    divide evenly is dropped), so step ``s`` of all ranks together covers exactly the rows
    of step ``s`` of one process with the same global batch.
    """
    sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def _autocast(config: RunConfig, device: torch.device):
    mode = config.train.autocast
    if mode == "bf16" or (mode == "auto" and bf16_native(device)):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _scheduler(config: RunConfig, optimizer: torch.optim.Optimizer | None):
    kind = config.train.lr_schedule
    if kind not in SCHEDULES:
        raise UsageError(f"unknown lr_schedule '{kind}'; use {' or '.join(SCHEDULES)}")
    if optimizer is None or kind == "constant":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.train.epochs))


@torch.no_grad()
def evaluate_loss(model: AutoencoderModel, data: TensorData, batch_size: int, epoch: float,
                  device: torch.device, seed: int = 0) -> dict[str, float]:
    """Mean loss terms over ``data`` in eval mode.

    Its noise comes from ``seed`` in a forked RNG, so the numbers are reproducible and the
    caller's RNG state is left exactly as it was.
    """
    if len(data) == 0:
        return {}
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor | float] = {}     # tensors until the end, as in training
    count = 0
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, len(data), batch_size):
            batch = data.batch(slice(start, start + batch_size)).to(device)
            out = model(batch, epoch)
            n = batch.size
            for k, v in {"loss": out.loss, **out.terms}.items():
                sums[k] = sums.get(k, 0.0) + torch.as_tensor(v).detach().double() * n
            count += n
    model.train(was_training)
    return {k: float(v) / count for k, v in sums.items()}


def train(run_dir: str | Path, manifest_path: str | Path, config: RunConfig, *, resume: bool = False,
          hooks: TrainingHooks | None = None, registry: Registry | None = None) -> AutoencoderModel:
    """Train ``config`` on ``manifest_path`` into ``run_dir``; returns the trained model.

    With ``resume`` and a run in ``run_dir``, the run's own ``config.json`` is used (only
    the settings in :data:`RESUME_OVERRIDES` come from ``config``) and training continues
    after the last complete epoch in ``run_dir/checkpoint``.
    """
    run_dir, manifest_path = Path(run_dir), Path(manifest_path)
    hooks = hooks or TrainingHooks()
    registry = registry or get_registry()
    if resume and (run_dir / CONFIG).exists():
        saved = read_config(run_dir)
        check_plugins(saved, registry)
        for key in RESUME_OVERRIDES:
            setattr(saved.train, key, getattr(config.train, key))
        config = saved
    elif (run_dir / CONFIG).exists() and (run_dir / CHECKPOINT).exists() and not resume:
        raise UsageError(f"{run_dir} already holds a run; use --resume to continue it or pick a new folder")
    device = resolve_device(config.train.device)
    if config.train.compile:
        check_compile_possible(device, config.train.compile_backend)     # before any data is read
    ctx, device = init_distributed(device)
    try:
        return _train(run_dir, manifest_path, config, resume, hooks, registry, device, ctx)
    finally:
        shutdown_distributed(ctx)


def _describe_data(config: RunConfig, manifest_path: Path, data: PreparedData, ctx: Distributed) -> RunData:
    return RunData(manifest=str(manifest_path.resolve()), train_rows=len(data.train),
                   validation_rows=len(data.validation), skipped_rows=len(data.skipped),
                   skipped=[e.message() for e in data.skipped[:100]], processes=ctx.world_size,
                   tensors=data.train.specs(),
                   held_out_rows=list(data.validation.rows))


def held_out_note(train_rows: int, validation_rows: int, fraction: float) -> str:
    """What training says about the rows it held out."""
    total = train_rows + validation_rows
    if validation_rows == 0:
        return (f"held out no rows for validation ({total} rows; a split needs at least 10): the "
                f"validation figures and `polyvae evaluate` on this manifest use training rows")
    return (f"held out {validation_rows} of {total} rows for validation ([train] validation_fraction "
            f"{fraction:g}); `polyvae evaluate` on this manifest is measured on them")


def _diverged(what: str, epoch: int, step: int | None, run_dir: Path, last_good: int) -> TrainingDiverged:
    where = f"in epoch {epoch + 1}, step {step + 1}" if step is not None else f"at the end of epoch {epoch + 1}"
    kept = (f"{run_dir} keeps epoch {last_good}, the last good one" if last_good > 0
            else "no epoch completed, so nothing was saved")
    return TrainingDiverged(f"{what} {where}; training stopped and {kept}. "
                            f"Try a lower learning rate (--lr) or check the data for extreme values.")


def _train(run_dir: Path, manifest_path: Path, config: RunConfig, resume: bool, hooks: TrainingHooks,
           registry: Registry, device: torch.device, ctx: Distributed) -> AutoencoderModel:
    if config.train.num_threads > 0:
        torch.set_num_threads(config.train.num_threads)
    seed = config.train.seed
    seed_everything(seed)
    resuming = resume and bool(config.modality_states)
    data = prepare_data(config, manifest_path, registry, fit=not resuming, progress=hooks.progress)
    if data.skipped:
        hooks.log(f"skipped {len(data.skipped)} bad row(s) (--on-bad-input skip); "
                  f"first: {data.skipped[0].message()}")
    for note in dict.fromkeys([*data.notes, *(n for mod in data.modalities.values() for n in mod.notes())]):
        hooks.log(note)
    if data.cache is not None:
        hooks.info(data.cache.describe())
    hooks.info(held_out_note(len(data.train), len(data.validation), config.train.validation_fraction))
    unused = [c for c in data.train.metadata if c not in METADATA_COLUMNS]
    for what, columns in (("a modality not in --modalities", [c for c in unused if c in registry.modalities]),
                          ("kept as metadata", [c for c in unused if c not in registry.modalities])):
        if columns:
            hooks.info(f"not trained on: column{'s' if len(columns) > 1 else ''} "
                      f"{', '.join(repr(c) for c in columns)} ({what})")
    if len(data.train) < ctx.world_size:
        raise UsageError(f"{len(data.train)} training row(s) cannot be shared by {ctx.world_size} processes")
    config.modality_states = {m: mod.state() for m, mod in data.modalities.items()}
    if not resuming:
        config.private_labels = fit_label_names(data.train, data.modalities)
    for part in (data.train, data.validation):
        part.labels = label_ids(part, data.modalities, config.private_labels)
    config.plugins = plugin_versions(config, registry)
    config.polyvae_version = __version__
    config.data = _describe_data(config, manifest_path, data, ctx)
    config.data.cache = data.cache.to_json() if data.cache is not None else {}
    torch.manual_seed(seed)
    model = build_model(config, data.modalities, registry).to(device)
    batch_size = model.training_batch_size(len(data.train), config.train.batch_size)
    if batch_size != config.train.batch_size:
        size = f"all {len(data.train)} training rows at once" if batch_size >= len(data.train) \
            else f"batches of {batch_size} rows"
        hooks.info(f"--model {config.model.model} trains on {size} "
                  f"(--batch-size {config.train.batch_size} is not used)")
    # fused Adam: one kernel for all parameters instead of ~10 small ops per tensor
    # (about a sixth of a small MLP step on CPU; benchmarks/RESULTS.md)
    optimizer = (torch.optim.Adam(model.parameters(), lr=config.train.learning_rate,
                                  weight_decay=config.train.weight_decay,
                                  fused=device.type in ("cpu", "cuda"))
                 if model.uses_backprop and any(True for _ in model.parameters()) else None)
    if config.train.compile:
        # opt-in, in place (state_dict keys unchanged); no gain measured on CPU
        model.compile(backend=config.train.compile_backend)
    scheduler = _scheduler(config, optimizer)
    start_epoch, history = 0, []
    if resume:
        meta = load_checkpoint(run_dir / CHECKPOINT, model, optimizer, scheduler)
        if meta is not None:
            start_epoch, history = meta["epoch"], meta.get("history", [])
            hooks.log(f"resuming after epoch {start_epoch} (settings from {run_dir / CONFIG})")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)
        write_text_atomic(run_dir / CONFIG, config.to_json())
        write_text_atomic(run_dir / METRICS, "".join(json.dumps(h) + "\n" for h in history))
    train_dev = data.train.to(device)       # cached rows stay on disk for the CPU, read per batch
    net: torch.nn.Module = model
    if ctx.active and model.uses_backprop:
        # weakly paired data: a rank's batch may lack a modality, leaving its decoder unused
        fully_paired = all(bool(p.all()) for p in data.train.present.values())
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=not fully_paired)
    local_bs = max(1, batch_size // ctx.world_size)
    if config.train.micro_batches < 1:
        raise UsageError(f"micro_batches must be at least 1, got {config.train.micro_batches}")
    micro = config.train.micro_batches if optimizer is not None else 1
    for epoch in range(start_epoch, config.train.epochs):
        t0 = time.perf_counter()
        order = epoch_order(len(train_dev), seed, epoch, ctx).to(device)
        steps = max(1, math.ceil(len(order) / local_bs))
        bar = hooks.step_bar(steps, f"epoch {epoch + 1}/{config.train.epochs}") \
            if hooks.step_bar and ctx.is_main else None
        model.train()
        seen, sums = _train_epoch(net, model, optimizer, train_dev, order, local_bs, micro, config,
                                  ctx, epoch, run_dir, bar, device)
        if bar is not None:
            bar.close()
        if scheduler is not None:
            scheduler.step()
        seen, sums = gather_sums(ctx, seen, sums)
        if not all(bool(torch.isfinite(p).all()) for p in model.state_dict().values() if p.is_floating_point()):
            raise _diverged("the weights became non-finite", epoch, None, run_dir, epoch)
        elapsed = max(time.perf_counter() - t0, 1e-9)
        metrics = {"epoch": epoch + 1, "seconds": round(elapsed, 3),
                   "examples_per_second": round(seen / elapsed, 1)}
        metrics.update({f"train/{k}": v / max(seen, 1) for k, v in sums.items()})
        val: dict[str, float] = {}
        if ctx.is_main:
            val = evaluate_loss(model, data.validation, config.train.batch_size, epoch + 1, device, seed=seed)
        if any_rank(ctx, not all(math.isfinite(v) for v in val.values()), device):
            raise _diverged("the validation loss became non-finite", epoch, None, run_dir, epoch)
        if ctx.is_main:
            metrics.update({f"validation/{k}": v for k, v in val.items()})
            history.append(metrics)
            save_run(run_dir, config, model)
            save_checkpoint(run_dir / CHECKPOINT, model, optimizer, epoch + 1,
                            {"history": history}, scheduler=scheduler)
            write_text_atomic(run_dir / METRICS, "".join(json.dumps(h) + "\n" for h in history))
            if hooks.on_epoch_end:
                hooks.on_epoch_end(EpochReport(epoch + 1, metrics, model, data, run_dir))
    model.eval()
    if ctx.is_main and history:
        findings = training_verdict(model, history, data.train, data.validation, device, run_dir)
        announce(findings, hooks.info)
        write_verdict(run_dir, findings)
    dump_rank_state(model, ctx, run_dir)
    barrier(ctx)
    return model


def _train_epoch(net: torch.nn.Module, model: AutoencoderModel, optimizer: torch.optim.Optimizer | None,
                 train_dev: TensorData, order: torch.Tensor, local_bs: int, micro: int, config: RunConfig,
                 ctx: Distributed, epoch: int, run_dir: Path, bar: Any, device: torch.device
                 ) -> tuple[int, dict[str, float]]:
    """One epoch over this rank's ``order``; returns rows seen and loss-term sums (rank-local)."""
    seed = config.train.seed
    steps = max(1, math.ceil(len(order) / local_bs))
    sums: dict[str, torch.Tensor | float] = {}     # loss terms stay tensors until the epoch ends
    seen = 0
    params = [p for p in model.parameters() if p.requires_grad]
    for step in range(steps):
        idx = order[step * local_bs:(step + 1) * local_bs]
        if idx.numel() == 0:
            continue
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        parts = [(m, part) for m, part in ((m, idx[m::micro]) for m in range(micro)) if part.numel()]
        for k, (m, part) in enumerate(parts):
            # noise of a shard = (rank, micro-batch) of the global batch: one process with
            # W*A micro-batches draws what W processes with A micro-batches each draw
            seed_generators(step_seed(seed, epoch, step, ctx.rank + ctx.world_size * m), device)
            quiet = net.no_sync() if net is not model and k < len(parts) - 1 else contextlib.nullcontext()
            with quiet:
                with _autocast(config, device):
                    out = net(train_dev.batch(part), epoch + step / steps)
                loss = float(out.loss.detach())
                if any_rank(ctx, not math.isfinite(loss), device):
                    what = f"the loss became {loss}" if not math.isfinite(loss) else \
                        "the loss became non-finite on another process"
                    raise _diverged(what, epoch, step, run_dir, epoch)
                if optimizer is not None:
                    (out.loss * (part.numel() / idx.numel())).backward()
            seen += part.numel()
            sums["loss"] = sums.get("loss", 0.0) + loss * part.numel()
            for key, v in out.terms.items():
                sums[key] = sums.get(key, 0.0) + torch.as_tensor(v).detach().double() * part.numel()
        if optimizer is not None:
            # gradients are already averaged over ranks here, so every rank agrees
            grads = [p.grad for p in params if p.grad is not None]
            total = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
            norm = float(total)
            if not math.isfinite(norm):
                raise _diverged("the gradient became non-finite", epoch, step, run_dir, epoch)
            if 0 < config.train.grad_clip < norm:       # rescale only when over the limit
                torch.nn.utils.clip_grads_with_norm_(params, config.train.grad_clip, total)
            optimizer.step()
        elif ctx.active:
            average_parameters(model, ctx)
        if bar is not None:
            bar.update(1)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss:.3f}")
    return seen, {k: float(v) for k, v in sums.items()}
