"""Paths through latent space: convex (linear) and spherical interpolation, decoded per step."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyvae.core.atomic import write_text_atomic
from polyvae.core.errors import UsageError
from polyvae.core.models import DECODE
from polyvae.core.run import LoadedRun

from .generation import given_batch


#: file suffixes that make ``interpolate --from/--to`` an image interpolation
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def alphas(steps: int) -> torch.Tensor:
    if steps < 2:
        raise UsageError("--steps must be at least 2 (the two endpoints)")
    return torch.linspace(0.0, 1.0, steps)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Convex combinations ``(1 - t) a + t b`` for each t: ``(len(t), D)``; t=0 gives a exactly."""
    t = t.to(a.dtype).view(-1, 1)
    return (1.0 - t) * a.view(1, -1) + t * b.view(1, -1)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake): constant speed along the great circle, norms blended.

    Falls back to :func:`lerp` when a and b are (anti)parallel. Endpoints are exact.
    """
    t = t.to(a.dtype).view(-1, 1)
    na, nb = a.norm(), b.norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        return lerp(a, b, t.view(-1))
    cos = torch.clamp((a / na) @ (b / nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    if float(torch.sin(omega).abs()) < 1e-6:
        return lerp(a, b, t.view(-1))
    direction = (torch.sin((1 - t) * omega) * (a / na) + torch.sin(t * omega) * (b / nb)) / torch.sin(omega)
    out = direction * ((1 - t) * na + t * nb)
    out[t.view(-1) == 0] = a
    out[t.view(-1) == 1] = b
    return out


def path_between(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "linear":
        return lerp(a, b, t)
    if kind == "spherical":
        return slerp(a, b, t)
    raise UsageError(f"--path must be linear or spherical, got {kind}")


@dataclass
class ImagePath:
    """An image interpolation: alpha per step, the decoded steps, and the files when written."""

    alphas: list[float]
    images: torch.Tensor                     # (K, C, H, W) decoded steps
    files: list[Path] = field(default_factory=list)
    strip: Path | None = None
    manifest: Path | None = None


@torch.no_grad()
def interpolate_images(run: LoadedRun, image_a: Any, image_b: Any, steps: int, out_dir: Path | None = None,
                       kind: str = "linear", device="cpu") -> ImagePath:
    """Encode two images, walk the latent path, decode an image per step; with ``out_dir``
    also write ``step_KK.png``, ``strip.png`` and ``path.json`` there."""
    if "image" not in run.modalities:
        raise UsageError("this run has no image modality to interpolate")
    model = run.model.to(device).eval()
    model.require(DECODE, "decode latents")
    za = model.features(given_batch(run, [{"image": image_a}], 1, device))[0]
    zb = model.features(given_batch(run, [{"image": image_b}], 1, device))[0]
    t = alphas(steps)
    z = path_between(za, zb, t.to(device), kind)
    decoded = model.decode(z, ["image"])["image"].cpu()
    result = ImagePath([round(float(a), 6) for a in t], decoded)
    if out_dir is None:
        return result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mod = run.modalities["image"]
    result.files = [out_dir / f"step_{k:02d}.png" for k in range(steps)]
    mod.render_batch(decoded, result.files)
    result.strip = out_dir / "strip.png"
    _image_strip(decoded, result.strip)
    record = {"from": _label(image_a), "to": _label(image_b), "path": kind,
              "alpha": [round(float(a), 6) for a in t],
              "latent_distance_to_from": [float((zi - za).norm()) for zi in z],
              "latent_distance_to_to": [float((zi - zb).norm()) for zi in z],
              "files": [f.name for f in result.files]}
    result.manifest = out_dir / "path.json"
    write_text_atomic(result.manifest, json.dumps(record, indent=2))
    return result


def _label(value: Any) -> str:
    """How an end of a path is named in path.json: its file, or its kind of object."""
    return str(value) if isinstance(value, (str, Path)) else f"<{type(value).__name__}>"


def _image_strip(images: torch.Tensor, path: Path) -> None:
    """Steps side by side, scaled up so small images are visible."""
    from PIL import Image
    arr = (images.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)      # (K, C, H, W)
    k, c, h, w = arr.shape
    scale = max(1, 96 // h)
    row = np.concatenate(list(np.transpose(arr, (0, 2, 3, 1))), axis=1)
    img = Image.fromarray(row[..., 0] if c == 1 else row)
    img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(path)
