"""Plots written into ``RUN/plots/`` as training goes (matplotlib Agg, no display).

Every epoch (at most every :data:`LOSSES_EVERY_SECONDS`, and always at the last one and with
the heavy plots): the loss terms so far (``losses.png``), read from ``metrics.jsonl``. At the last
epoch and every ``heavy_every`` epochs, the plots that need the model: the latent 2-D
projection coloured by label or singer (``latent.png``), the cross-modal grid of each given
example to images (``cross_<source>_to_<target>.png``), and spectrograms of audio generated
from the other modalities (``generated_<target>.png``); with audio, the voice-interpolation
strip (``interpolation.png``: the latent path between two singers, or two labels, decoded to
image and spectrogram per step).

A plot that fails never stops training: it is reported through a :class:`PlotWarning` and in
the returned list of messages, and the other plots are still written. Files are replaced
atomically, so a viewer never sees half a PNG.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Callable

from polyvae.core.modality import Modality
from polyvae.core.models import DECODE
from polyvae.core.run import read_config
from polyvae.core.training import METRICS, EpochReport

from .report.figures import (image_grid, interpolation_strip, latent_scatter, loss_curves, save_figure,
                             spectrogram_panel)
from .report.samples import (Rendered, cross_modal, endpoint_rows, interpolate_rows, label_column,
                             latent_means, prior_samples, project_2d, spread_rows)

PLOTS = "plots"
#: heavy plots (those that run the model) every this many epochs, and at the last one
HEAVY_EVERY = 10
#: rows encoded for the latent projection
LATENT_ROWS = 1000
#: the loss curves are redrawn at most this often (a drawing costs about half a second, a
#: twentieth of the demo's training when every short epoch drew one)
LOSSES_EVERY_SECONDS = 10.0


class PlotWarning(UserWarning):
    """A plot could not be drawn; training goes on."""


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """The per-epoch metrics of ``metrics.jsonl`` (a torn last line is ignored)."""
    path = Path(run_dir) / METRICS
    history = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                history.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return history


def is_heavy_epoch(epoch: int, total: int | None, every: int) -> bool:
    return epoch == total or (every > 0 and epoch % every == 0)


def write_epoch_plots(report: EpochReport, heavy_every: int = HEAVY_EVERY) -> list[str]:
    """Write this epoch's plots into ``RUN/plots/``; returns a message per plot that failed."""
    folder = Path(report.run_dir) / PLOTS
    messages: list[str] = []

    def attempt(name: str, draw: Callable[[], object]) -> None:
        try:
            draw()
        except Exception as exc:            # a plot must never end a training run
            message = f"plot '{name}' skipped at epoch {report.epoch}: {type(exc).__name__}: {exc}"
            warnings.warn(message, PlotWarning, stacklevel=3)
            messages.append(message)

    try:
        total = read_config(report.run_dir).train.epochs
    except Exception:
        total = None
    heavy = is_heavy_epoch(report.epoch, total, heavy_every)
    losses = folder / "losses.png"
    if heavy or not losses.exists() or time.time() - losses.stat().st_mtime >= LOSSES_EVERY_SECONDS:
        attempt("losses", lambda: save_figure(loss_curves(read_history(report.run_dir) or [report.metrics]),
                                              losses))
    if not heavy:
        return messages
    data = report.data.validation if len(report.data.validation) >= 100 else report.data.train
    mods = report.data.modalities
    attempt("latent", lambda: plot_latent(report.model, data, folder / "latent.png", report.epoch))
    for source, target in cross_modal_pairs(mods, "image"):
        attempt(f"cross {source}->{target}", lambda s=source, t=target: plot_cross_modal(
            report.model, mods, data, s, t, folder / f"cross_{s}_to_{t}.png"))
    for target in kind_modalities(mods, "audio"):
        attempt(f"generated {target}", lambda t=target: plot_generated_audio(
            report.model, mods, data, t, folder / f"generated_{t}.png"))
    if kind_modalities(mods, "audio") and report.model.supports(DECODE):
        attempt("interpolation", lambda: plot_interpolation(report.model, mods, data, folder / "interpolation.png"))
    return messages


def kind_modalities(mods: dict[str, Modality], kind: str) -> list[str]:
    """Modalities whose rendered files are images / audio / text."""
    return [m for m, mod in mods.items() if Rendered(mod.extension, b"").kind == kind]


def source_for(mods: dict[str, Modality], target: str) -> str | None:
    """What to generate ``target`` from: text when the run has it, else another modality."""
    others = [m for m in mods if m != target]
    texts = [m for m in others if m in kind_modalities(mods, "text")]
    return (texts or others or [None])[0]


def cross_modal_pairs(mods: dict[str, Modality], kind: str) -> list[tuple[str, str]]:
    pairs = []
    for target in kind_modalities(mods, kind):
        source = source_for(mods, target)
        if source is not None:
            pairs.append((source, target))
    return pairs


def plot_latent(model, data, path: Path, epoch: int | None = None) -> Path:
    rows = spread_rows(len(data), LATENT_ROWS)
    xy = project_2d(latent_means(model, data, rows))
    column = label_column(data)
    labels = [data.metadata[column][i] for i in rows] if column else None
    title = "latent means (PCA)" + (f", epoch {epoch}" if epoch is not None else "")
    return save_figure(latent_scatter(xy, labels, column, title), path)


def plot_cross_modal(model, mods, data, source: str, target: str, path: Path, samples: int = 6) -> Path:
    rows = cross_modal(model, mods, data, source, [target], samples={target: samples})
    if not rows:
        raise ValueError(f"no row has '{source}'")
    grid = [(row.caption, [r.image_array() for r in row.outputs[target]]) for row in rows]
    return save_figure(image_grid(grid, f"{source} \u2192 {target} ({samples} samples each)"), path)


def plot_generated_audio(model, mods, data, target: str, path: Path) -> Path:
    source = source_for(mods, target)
    if source is not None and bool(data.present[source].any()):
        rows = cross_modal(model, mods, data, source, [target])
        clips = [(f"{source}: {row.caption}", *row.outputs[target][0].waveform()) for row in rows]
        title = f"{target} generated from {source}"
    else:
        clips = [(f"prior sample {k}", *r.waveform())
                 for k, r in enumerate(prior_samples(model, mods, data.specs(), 5)[target])]
        title = f"{target} sampled from the prior"
    return save_figure(spectrogram_panel(clips, title), path)


def plot_interpolation(model, mods, data, path: Path, steps: int = 8) -> Path:
    """The straight latent path between two singers (or labels), decoded per step to images and audio."""
    column = "speaker" if any(data.metadata.get("speaker", [])) else None
    ends = endpoint_rows(data, list(mods), column)
    if ends is None:
        raise ValueError("fewer than two singers/labels to interpolate between")
    rows, a, b = ends
    targets = kind_modalities(mods, "image") + kind_modalities(mods, "audio")
    alphas, decoded = interpolate_rows(model, mods, rows, a, b, steps, targets)
    images = [step[m].image_array() for step in decoded for m in targets[:1] if step[m].kind == "image"]
    clips = [step[m].waveform() for step in decoded for m in kind_modalities(mods, "audio")[:1]]
    name = column or label_column(rows)
    start, end = ((f"{name} {rows.metadata[name][a]}", f"{name} {rows.metadata[name][b]}") if name
                  else (f"row {rows.rows[a]}", f"row {rows.rows[b]}"))
    shown = " and ".join(what for what, items in (("the decoded image (top)", images),
                                                  ("the decoded audio's spectrogram (bottom)", clips)) if items)
    title = (f"Interpolation: the straight latent path from {start} (\u03b1 = 0) to {end} (\u03b1 = 1) "
             f"in {steps} steps;\neach step shows {shown}")
    return save_figure(interpolation_strip(alphas, images, clips, title), path)
