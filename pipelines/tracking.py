"""Experiment tracking beside ``metrics.jsonl``: ``--log tensorboard``.

TensorBoard event files go to ``RUN/tensorboard/`` (``tensorboard --logdir RUN/tensorboard``):

* every epoch, every number of the epoch's metrics line (``train/loss``, ``validation/kl``,
  ``seconds``, ...) as a scalar;
* at the first and last epoch and every :data:`SAMPLE_EVERY` epochs, samples of a few rows:
  each modality as the real row has it and as the model reconstructs it (and, for models that
  generate across modalities, from each other modality), written as what the modality's
  values are: images (``add_image``), sound (``add_audio``), text (``add_text``);
* at the last epoch, the latent projector (``add_embedding``): the latent means of up to
  :data:`PROJECTOR_ROWS` rows with their ``label`` (or ``speaker``) and, with an image
  modality, their images as thumbnails.

torch's ``SummaryWriter`` needs the ``tensorboard`` package (a dependency of polyvae).
A logging failure never stops training: it becomes a :class:`TrackingWarning` and the
run goes on.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from polyvae.core.errors import PolyvaeWarning, UsageError
from polyvae.core.models import CROSS_MODAL
from polyvae.core.training import EpochReport

from .report.samples import inference, label_column, latent_means, spread_rows

TENSORBOARD = "tensorboard"
#: what ``--log`` accepts (metrics.jsonl is always written)
LOGGERS = ("tensorboard",)
SAMPLE_EVERY = 10
SAMPLE_ROWS = 4
PROJECTOR_ROWS = 1000


class TrackingWarning(PolyvaeWarning):
    """A tracking write failed; training goes on (one ``Warning:`` line in the CLI)."""


def check_loggers(names: list[str]) -> None:
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UsageError(f"unknown --log {', '.join(unknown)}; choose from {', '.join(LOGGERS)} "
                         f"(metrics.jsonl is always written)")


class TensorBoardLog:
    """Writes one run's epochs to ``RUN/tensorboard/``; call :meth:`epoch` after each, :meth:`close` at the end."""

    def __init__(self, run_dir: Path, total_epochs: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:         # tensorboard is a dependency; a broken install says so
            raise UsageError(f"--log tensorboard needs the tensorboard package ({exc}); "
                             f"pip install tensorboard") from None
        self.folder = Path(run_dir) / TENSORBOARD
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.total = total_epochs

    def epoch(self, report: EpochReport) -> None:
        step = report.epoch
        for key, value in report.metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)
        if step == 1 or step == self.total or step % SAMPLE_EVERY == 0:
            self._attempt("samples", lambda: self.samples(report))
        if step == self.total:
            self._attempt("projector", lambda: self.projector(report))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def _attempt(self, what: str, write) -> None:
        try:
            write()
        except Exception as exc:           # tracking must never end a training run
            warnings.warn(f"tensorboard {what} skipped: {type(exc).__name__}: {exc}", TrackingWarning,
                          stacklevel=3)

    def samples(self, report: EpochReport) -> None:
        data = _rows_to_show(report)
        if len(data) == 0:
            return
        rows = data.subset(list(range(min(SAMPLE_ROWS, len(data)))))
        model, mods = report.model, report.data.modalities
        with inference(model) as device:
            batch = rows.batch(slice(None)).to(device)
            shown = [(f"{m}/real", m, batch.data[m], batch.present[m]) for m in mods]
            shown += [(f"{m}/reconstructed", m, x, batch.present[m]) for m, x in model.reconstruct(batch).items()]
            if model.supports(CROSS_MODAL) and len(mods) > 1:
                for source in mods:
                    targets = [t for t in mods if t != source]
                    out = model.generate(batch.only([source]), targets, sample=False)
                    shown += [(f"{t}/from_{source}", t, x, batch.present[source]) for t, x in out.items()]
        for tag, m, x, have in shown:
            if bool(have.any()):
                self._values(tag, mods[m].to_values(x[have].cpu()), report.epoch)

    def _values(self, tag: str, values: list, step: int) -> None:
        """Each value as TensorBoard shows its kind: images, sound, text (others are skipped)."""
        from PIL import Image

        from polyvae.core.sound import Audio

        if values and isinstance(values[0], Image.Image):
            arrays = [np.asarray(v.convert("RGB"), dtype=np.uint8) for v in values]
            self.writer.add_images(tag, np.stack(arrays), step, dataformats="NHWC")
        elif values and isinstance(values[0], Audio):
            for i, clip in enumerate(values):
                self.writer.add_audio(f"{tag}/{i}", torch.from_numpy(clip.samples).clamp(-1, 1)[None],
                                      step, sample_rate=clip.sample_rate)
        elif values and isinstance(values[0], str):
            self.writer.add_text(tag, "\n\n".join(f"{i}: `{v}`" for i, v in enumerate(values)), step)

    def projector(self, report: EpochReport) -> None:
        data = report.data.train if len(report.data.validation) < 100 else report.data.validation
        if len(data) < 2:
            return
        rows = spread_rows(len(data), PROJECTOR_ROWS)
        features = latent_means(report.model, data, rows)
        column = label_column(data)
        metadata = [str(data.metadata[column][i]) for i in rows] if column else [str(data.rows[i]) for i in rows]
        self.writer.add_embedding(torch.as_tensor(features), metadata=metadata,
                                  label_img=_thumbnails(report.data.modalities, data, rows),
                                  global_step=report.epoch, tag="latent_means")


def _rows_to_show(report: EpochReport):
    return report.data.validation if len(report.data.validation) >= SAMPLE_ROWS else report.data.train


def _thumbnails(mods, data, rows: list[int]) -> torch.Tensor | None:
    """``(N, 3, H, W)`` in [0, 1]: the rows' images, from the first modality whose values are
    images and that every row has (the projector shows them in place of dots)."""
    from PIL import Image

    for m, mod in mods.items():
        if not bool(data.present[m][rows].all()):
            continue
        values = mod.to_values(data.data[m][rows[:1]])
        if not (values and isinstance(values[0], Image.Image)):
            continue
        images = [np.asarray(v.convert("RGB"), dtype=np.float32) / 255.0 for v in mod.to_values(data.data[m][rows])]
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return None

