"""Fresh examples from a trained model: cross-modal generation, latent projection and latent
interpolation, rendered to file bytes through each modality's own ``render``.

Everything runs in eval mode under ``no_grad`` with the global random state forked, so calling
it between training epochs changes neither the model's mode nor the training's random stream.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from polyvae.core.batch import partial_batch
from polyvae.core.config import TensorSpec
from polyvae.core.dataset import TensorData
from polyvae.core.modality import Modality
from polyvae.core.models import DECODE

IMAGE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "bmp", "webp"}
AUDIO_EXTENSIONS = {"wav", "flac", "ogg", "mp3"}
TEXT_EXTENSIONS = {"txt", "csv", "json"}


@dataclass
class Rendered:
    """One rendered example: the bytes a modality's ``render`` wrote, and what kind they are."""

    extension: str
    data: bytes

    @property
    def kind(self) -> str:
        ext = self.extension.lower()
        if ext in IMAGE_EXTENSIONS:
            return "image"
        if ext in AUDIO_EXTENSIONS:
            return "audio"
        return "text" if ext in TEXT_EXTENSIONS else "file"

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace").strip()

    def image_array(self) -> np.ndarray:
        """``(H, W)`` or ``(H, W, 3)`` floats in [0, 1]."""
        from PIL import Image
        with Image.open(io.BytesIO(self.data)) as img:
            array = np.asarray(img.convert("L" if img.mode in ("L", "1", "P") else "RGB"), dtype=np.float32)
        return array / 255.0

    def waveform(self) -> tuple[np.ndarray, int]:
        import soundfile as sf
        wave, rate = sf.read(io.BytesIO(self.data), dtype="float32", always_2d=True)
        return wave.mean(axis=1), int(rate)


@dataclass
class CrossRow:
    """One given example and what the model generated from it, per target modality."""

    caption: str
    given: Rendered
    outputs: dict[str, list[Rendered]] = field(default_factory=dict)


def model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def inference(model: torch.nn.Module):
    """Eval mode, no gradients, forked random state; the previous mode is restored after."""
    was_training = model.training
    device = model_device(model)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        model.eval()
        try:
            yield device
        finally:
            model.train(was_training)


def render_all(modality: Modality, xs: torch.Tensor) -> list[Rendered]:
    """Render a batch ``(N, *shape)`` to bytes through the plugin (batched when it can)."""
    xs = xs.detach().cpu()
    with tempfile.TemporaryDirectory(prefix="polyvae-render-") as tmp:
        paths = [Path(tmp) / f"x{k}.{modality.extension}" for k in range(xs.shape[0])]
        modality.render_batch(xs, paths)
        return [Rendered(modality.extension, p.read_bytes()) for p in paths]


def label_column(data: TensorData) -> str | None:
    """``label``, else ``speaker``: the metadata column examples are grouped and coloured by."""
    for column in ("label", "speaker"):
        values = data.metadata.get(column)
        if values and any(values):
            return column
    return None


def pick_rows(data: TensorData, source: str, limit: int, column: str | None = None) -> list[int]:
    """One row per label value (sorted) where ``source`` is present; else the first distinct ones."""
    present = data.present[source].tolist()
    column = column or label_column(data)
    chosen: dict[object, int] = {}
    for i, has in enumerate(present):
        if not has:
            continue
        x = data.data[source][i]
        key = data.metadata[column][i] if column else (i if x.is_floating_point() else x.numpy().tobytes())
        chosen.setdefault(key, i)
    keys = sorted(chosen, key=natural_key) if column else list(chosen)
    return [chosen[k] for k in keys[:limit]]


def natural_key(key: object):
    """Sort key putting integers in numeric order before other strings ("2" < "10" < "a")."""
    text = str(key)
    return (0, int(text), "") if text.lstrip("-").isdigit() else (1, 0, text)


def endpoint_rows(data: TensorData, modalities: list[str], column: str | None = None
                  ) -> tuple[TensorData, int, int] | None:
    """Two rows to interpolate between: of the first and last ``column`` value (default: the
    label column), preferring rows that have every modality. Returns (rows they index, a, b)."""
    full = torch.ones(len(data), dtype=torch.bool)
    for m in modalities:
        full &= data.present[m]
    candidates = data.subset(full.nonzero().flatten().tolist()) if int(full.sum()) >= 2 else data
    source = max(modalities, key=lambda m: int(candidates.present[m].sum()))
    rows = pick_rows(candidates, source, limit=1000, column=column)
    return (candidates, rows[0], rows[-1]) if len(rows) >= 2 else None


def cross_modal(model, modalities: dict[str, Modality], data: TensorData, source: str,
                targets: list[str], samples: dict[str, int] | None = None, limit: int = 10,
                seed: int = 0) -> list[CrossRow]:
    """Generate ``targets`` from ``source`` alone, for one example per label."""
    samples = samples or {}
    rows = pick_rows(data, source, limit)
    if not rows:
        return []
    k = max([samples.get(t, 1) for t in targets] + [1])
    out: list[CrossRow] = []
    with inference(model) as device:
        given = render_all(modalities[source], data.data[source][rows])
        generator = torch.Generator(device=device).manual_seed(seed)
        batch = data.batch([i for i in rows for _ in range(k)]).only([source]).to(device)
        result = model.generate(batch, targets, generator=generator, sample=True)
        rendered = {}
        for t in targets:
            keep = [r * k + j for r in range(len(rows)) for j in range(samples.get(t, 1))]
            rendered[t] = render_all(modalities[t], result[t][keep].cpu())
    column = label_column(data)
    for r, i in enumerate(rows):
        caption = given[r].text() if given[r].kind == "text" else (
            f"{column} {data.metadata[column][i]}" if column else f"row {data.rows[i]}")
        row = CrossRow(caption, given[r])
        for t in targets:
            n = samples.get(t, 1)
            row.outputs[t] = rendered[t][r * n:(r + 1) * n]
        out.append(row)
    return out


def prior_samples(model, modalities: dict[str, Modality], specs: dict[str, TensorSpec], n: int,
                  seed: int = 0) -> dict[str, list[Rendered]]:
    """Samples from the prior (nothing given) for every modality; needs no data."""
    with inference(model) as device:
        generator = torch.Generator(device=device).manual_seed(seed)
        empty = partial_batch(specs, {}, n=n).to(device)
        out = model.generate(empty, list(modalities), generator=generator)
        return {m: render_all(modalities[m], out[m].cpu()) for m in modalities}


def spread_rows(n: int, limit: int, seed: int = 0) -> list[int]:
    """Up to ``limit`` row indices out of ``n``, a fixed random choice, in order."""
    if n <= limit:
        return list(range(n))
    gen = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=gen)[:limit].tolist())


def latent_means(model, data: TensorData, rows: list[int], batch_size: int = 256) -> np.ndarray:
    with inference(model) as device:
        chunks = [model.features(data.batch(rows[s:s + batch_size]).to(device)).float().cpu()
                  for s in range(0, len(rows), batch_size)]
    return torch.cat(chunks).numpy()


def project_2d(features: np.ndarray) -> np.ndarray:
    """PCA to two components (padding with zeros when the latent has fewer dimensions)."""
    if features.shape[1] > 2 and features.shape[0] > 2:
        from sklearn.decomposition import PCA
        return PCA(2, random_state=0).fit_transform(features)
    xy = np.zeros((features.shape[0], 2), dtype=np.float64)
    xy[:, : min(2, features.shape[1])] = features[:, :2]
    return xy


def interpolate_rows(model, modalities: dict[str, Modality], data: TensorData, a: int, b: int,
                     steps: int, targets: list[str]) -> tuple[list[float], list[dict[str, Rendered]]]:
    """Decode ``targets`` along the straight latent path between the means of rows ``a`` and ``b``."""
    from polyvae.pipelines.interpolation import alphas, lerp
    model.require(DECODE, "decode latents")
    with inference(model) as device:
        z = model.features(data.batch([a, b]).to(device))
        t = alphas(steps)
        decoded = model.decode(lerp(z[0], z[1], t.to(device)), targets)
        rendered = {m: render_all(modalities[m], decoded[m].cpu()) for m in targets}
    return [round(float(x), 4) for x in t], [{m: rendered[m][k] for m in targets} for k in range(steps)]
