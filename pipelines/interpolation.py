"""Paths through latent space: convex (linear) and spherical interpolation, decoded per step."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polyvae.core.atomic import write_text_atomic
from polyvae.core.errors import UsageError
from polyvae.core.run import LoadedRun

from .generation import given_batch


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
    alphas: list[float]
    files: list[Path]
    strip: Path
    manifest: Path


@torch.no_grad()
def interpolate_images(run: LoadedRun, image_a: str, image_b: str, steps: int, out_dir: Path,
                       kind: str = "linear", device="cpu") -> ImagePath:
    """Encode two images, walk the latent path, decode an image per step; strip + path.json."""
    if "image" not in run.modalities:
        raise UsageError("this run has no image modality to interpolate")
    model = run.model.to(device).eval()
    za = model.encode(given_batch(run, [("image", image_a)], 1, device))[0]
    zb = model.encode(given_batch(run, [("image", image_b)], 1, device))[0]
    t = alphas(steps)
    z = path_between(za, zb, t.to(device), kind)
    decoded = _decode(model, z, "image")
    out_dir.mkdir(parents=True, exist_ok=True)
    mod = run.modalities["image"]
    files = []
    for k in range(steps):
        files.append(out_dir / f"step_{k:02d}.png")
        mod.render(decoded[k].cpu(), files[-1])
    strip = out_dir / "strip.png"
    _image_strip(decoded.cpu(), strip)
    record = {"from": image_a, "to": image_b, "path": kind, "alpha": [round(float(a), 6) for a in t],
              "latent_distance_to_from": [float((zi - za).norm()) for zi in z],
              "latent_distance_to_to": [float((zi - zb).norm()) for zi in z],
              "files": [f.name for f in files]}
    manifest = out_dir / "path.json"
    write_text_atomic(manifest, json.dumps(record, indent=2))
    return ImagePath([float(a) for a in t], files, strip, manifest)


def _decode(model, z: torch.Tensor, target: str) -> torch.Tensor:
    if hasattr(model, "decode"):
        return model.decode(z, [target])[target]
    raise UsageError(f"--model {getattr(model, 'name', '?')} cannot decode latents")


def _image_strip(images: torch.Tensor, path: Path) -> None:
    """Steps side by side, scaled up so small images are visible."""
    from PIL import Image
    arr = (images.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)      # (K, C, H, W)
    k, c, h, w = arr.shape
    scale = max(1, 96 // h)
    row = np.concatenate(list(np.transpose(arr, (0, 2, 3, 1))), axis=1)
    img = Image.fromarray(row[..., 0] if c == 1 else row)
    img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(path)
