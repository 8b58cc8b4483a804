"""Training as the CLI runs it: config from defaults, a config file and flags; bars; plots."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from polyvae.core.config import RunConfig, load_config_file
from polyvae.core.training import EpochReport, TrainingHooks, train
from polyvae.core.device import Distributed

from .tracking import TensorBoardLog, check_loggers
from .ui import progress, step_bar


def build_config(config_file: Path | str | dict | None, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """Defaults, then the ``--config`` file's sections (or a dict of them), then explicit settings."""
    raw: dict[str, Any] = {"model": {}, "train": {}, "modality_options": {}}
    if config_file is not None:
        loaded = config_file if isinstance(config_file, dict) else load_config_file(Path(config_file))
        for section in raw:
            raw[section].update(loaded.get(section, {}))
    for section, values in overrides.items():
        raw[section].update({k: v for k, v in values.items() if v is not None})
    return RunConfig.from_dict(raw)


def epoch_line(metrics: dict[str, float]) -> str:
    parts = [f"epoch {metrics['epoch']:>3}", f"loss {metrics.get('train/loss', float('nan')):.2f}"]
    if "validation/loss" in metrics:
        parts.append(f"val {metrics['validation/loss']:.2f}")
    parts += [f"{k.split('/', 1)[1]} {v:.3f}" for k, v in metrics.items()
              if k.startswith("train/nll/")]
    if "train/kl" in metrics:
        parts.append(f"kl {metrics['train/kl']:.2f}")
    parts.append(f"{metrics['seconds']:.1f}s")
    return "  ".join(parts)


def run_training(run_dir: Path, manifest: Path, config: RunConfig, resume: bool = False,
                 quiet: bool = False, plots: bool = True):
    """Train with progress bars, a line per epoch, and plots written after each epoch."""
    import os
    main_process = os.environ.get("RANK", "0") == "0"

    last: list[EpochReport] = []
    check_loggers(config.train.log)
    tensorboard: list[TensorBoardLog] = []

    def on_epoch(report: EpochReport) -> None:
        last[:] = [report]
        if not quiet:
            click.echo(epoch_line(report.metrics), err=True)
        if "tensorboard" in config.train.log:
            if not tensorboard:                # made at the first epoch: only rank 0 gets here
                tensorboard.append(TensorBoardLog(run_dir, config.train.epochs))
            tensorboard[0].epoch(report)
        if plots:
            try:
                from .plots import write_epoch_plots
            except ImportError:
                return
            write_epoch_plots(report)

    hooks = TrainingHooks(
        progress=progress if main_process and not quiet else (lambda items, _label: items),
        step_bar=step_bar if main_process and not quiet else None,
        on_epoch_end=on_epoch,
        log=(lambda msg: click.echo(msg, err=True)) if main_process else (lambda msg: None),
        info=(lambda msg: click.echo(msg, err=True)) if main_process and not quiet else (lambda msg: None),
    )
    try:
        model = train(run_dir, manifest, config, resume=resume, hooks=hooks)
    finally:
        for log in tensorboard:
            log.close()
    if main_process and last:
        _write_singers(run_dir, manifest, model, last[0], quiet)
    return model


def _write_singers(run_dir: Path, manifest: Path, model, report: EpochReport, quiet: bool) -> None:
    """After training: ``singers.json`` (voice embedding per ``speaker``) when the run has a voice."""
    import torch

    from polyvae.pipelines.voice import warn_all
    from polyvae.pipelines.voice.singers import read_table, write_after_training

    device = next(iter(model.parameters()), torch.zeros(0)).device
    path = write_after_training(Path(run_dir), model, report.data.train, Path(manifest), device)
    if path is None:
        return
    if not quiet:
        click.echo(f"singers: {path}", err=True)
    warn_all(read_table(Path(run_dir)).warnings())
