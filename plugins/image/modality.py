"""Images from any file PIL reads, resized to a square, as (C, S, S) floats in [0, 1]."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from polyvae.core.errors import BadInput, UsageError
from polyvae.core.experts import gaussian_log_density
from polyvae.core.modality import Modality, with_defaults

from .networks import ImageDecoder, ImageEncoder, ResidualImageDecoder, ResidualImageEncoder

#: arch: "residual" (residual blocks at the coarse grids), "plain" (two convolutions each
#: way, the networks of runs saved before the option; such runs load as plain) or "auto":
#: residual from RESIDUAL_FROM px up, plain below (at 32 px the residual blocks cost the demo's
#: image networks 1.18x the time and did not read shapes better: benchmarks/RESULTS.md)
#: likelihood: "bernoulli", "gaussian" (one learned noise level) or "auto": Gaussian for colour
#: images, Bernoulli for grayscale (see :meth:`ImageModality.resolved_likelihood`)
OPTIONS = {"size": 32, "channels": "auto", "likelihood": "auto", "width": 32, "hidden": 256,
           "private_dim": 0, "arch": "auto"}
RESIDUAL_FROM = 64
NETWORKS = {"plain": (ImageEncoder, ImageDecoder), "residual": (ResidualImageEncoder, ResidualImageDecoder)}
LIKELIHOODS = ("bernoulli", "gaussian")


class ImageModality(Modality):
    """``image``: grayscale or RGB; Bernoulli or Gaussian pixel likelihood (by default Gaussian
    for colour, Bernoulli for grayscale)."""

    name = "image"
    extension = "png"
    cell_is_path = True
    version = "1"
    description = "images (any format PIL reads), conv encoder/decoder (residual from 64 px), Gaussian (colour) or Bernoulli (grayscale) pixels"

    def __init__(self, **options: Any):
        merged = with_defaults("image", options, OPTIONS)
        super().__init__(**merged)
        self.size = int(merged["size"])
        if self.size < 8 or self.size % 4:
            raise UsageError(f"image size must be a multiple of 4 and at least 8, got {self.size}")
        if merged["likelihood"] not in (*LIKELIHOODS, "auto"):
            raise UsageError(f"image likelihood must be bernoulli, gaussian or auto, got {merged['likelihood']}")
        if merged["arch"] not in (*NETWORKS, "auto"):
            raise UsageError(f"image arch must be {', '.join(NETWORKS)} or auto, got {merged['arch']}")
        self.channels = None if merged["channels"] == "auto" else int(merged["channels"])
        self.arch = merged["arch"] if merged["arch"] != "auto" else \
            ("residual" if self.size >= RESIDUAL_FROM else "plain")
        #: "bernoulli" or "gaussian"; "auto" until the channels are known (:meth:`fit`)
        self.likelihood = merged["likelihood"]
        if self.likelihood == "auto" and self.channels is not None:
            self.likelihood = self.resolved_likelihood(self.channels)
        #: what a run saved before the state recorded its likelihood was trained with
        self._saved_likelihood = options.get("likelihood", "bernoulli")

    # ---- data ---------------------------------------------------------------------------
    def read(self, cell: str, base_dir: Path) -> np.ndarray:
        path = Path(base_dir) / cell
        if not path.exists():
            raise BadInput("image file not found")
        if path.is_dir():
            raise BadInput("is a folder, not an image file")
        if path.stat().st_size == 0:
            raise BadInput("empty file (0 bytes)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    img.load()
                    return self._from_pil(img)
        except UnidentifiedImageError:
            raise BadInput("not an image PIL can read (wrong extension or corrupt file?)") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise BadInput(f"cannot decode image ({exc})") from None

    def from_object(self, value: Any) -> np.ndarray:
        """A PIL image, or a numpy array ``(H, W)``, ``(H, W, 1|3|4)`` of uint8 (0-255) or of
        floats in [0, 1], as :meth:`read` would make of a file holding it."""
        if isinstance(value, Image.Image):
            return self._from_pil(value)
        if isinstance(value, np.ndarray):
            a = value
            if a.ndim == 3 and a.shape[-1] == 1:
                a = a[..., 0]
            if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or 0 in a.shape:
                raise BadInput(f"an image array must be (H, W) or (H, W, 1|3|4), got shape {a.shape}")
            if a.dtype.kind == "f":
                if not np.isfinite(a).all():
                    raise BadInput("non-finite pixel values (NaN or inf)")
                a = np.clip(a, 0.0, 1.0) * 255.0 + 0.5
            elif a.dtype.kind not in "ui" and a.dtype != bool:
                raise BadInput(f"an image array must hold numbers, got {a.dtype}")
            return self._from_pil(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)))
        return super().from_object(value)

    def _from_pil(self, img: Image.Image) -> np.ndarray:
        gray = img.mode in ("1", "L", "LA", "I", "I;16", "F") or (img.mode == "P" and _palette_is_gray(img))
        rgb = _to_rgb(img)
        if rgb.width == 0 or rgb.height == 0:
            raise BadInput("image has zero width or height")
        resized = rgb.resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.uint8)
        return array[..., :1] if gray else array

    def fit(self, raws: list[np.ndarray]) -> None:
        if self.channels is None:
            self.channels = 1 if all(r.shape[-1] == 1 for r in raws) else 3
        if self.likelihood == "auto":
            self.likelihood = self.resolved_likelihood(self.channels)

    @staticmethod
    def resolved_likelihood(channels: int) -> str:
        """What ``likelihood = "auto"`` means for images of ``channels`` channels.

        Colour pixels are continuous values, and a Bernoulli likelihood on them (a
        mis-specified one: Loaiza-Ganem & Cunningham 2019) trains a decoder whose
        means blur small shapes; a Gaussian with one learned noise level draws them sharp
        (captioned 32 px shapes, shape from text over 3 sample seeds: 0.912 Bernoulli,
        0.953 Gaussian; benchmarks/RESULTS.md section 7). Grayscale images (digits, the
        demo, Fashion-MNIST) keep the Bernoulli likelihood they were measured with."""
        return "gaussian" if channels == 3 else "bernoulli"

    def preprocess(self, raws: list[np.ndarray]) -> torch.Tensor:
        c = self._channels()
        arrays = [r if r.shape[-1] == c else (np.repeat(r, 3, -1) if c == 3 else
                                             r.mean(-1, keepdims=True).astype(np.uint8)) for r in raws]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return batch

    def state(self) -> dict[str, Any]:
        return {"channels": self._channels(), "size": self.size, "arch": self.arch, "likelihood": self.likelihood}

    def load_state(self, state: dict[str, Any]) -> None:
        """A state saved before the ``arch`` option (no such key) rebuilds the plain networks,
        with the likelihood its options named (Bernoulli when they named none)."""
        if state:
            self.channels = int(state["channels"])
            self.arch = state.get("arch", "plain")
            saved = state.get("likelihood", self._saved_likelihood)
            self.likelihood = self.resolved_likelihood(self.channels) if saved == "auto" else saved
            if self.arch not in NETWORKS or self.likelihood not in LIKELIHOODS:
                raise ValueError(f"unknown image arch {self.arch!r} or likelihood {self.likelihood!r}")

    def num_elements(self) -> int:
        """Pixels, not values: a colour pixel's three values are one observation of a colour
        and count once when likelihoods are balanced. Counting them three times made a 32 px
        colour image weigh a third of a grayscale one's per pixel, and its decoder drew blurred
        blobs (captioned 32 px shapes, Bernoulli pixels, shape from text: 0.907 counting values,
        0.947 counting pixels, one sample seed; benchmarks/RESULTS.md section 7)."""
        return self.size * self.size

    def data_shape(self) -> tuple[int, ...]:
        return (self._channels(), self.size, self.size)

    def _channels(self) -> int:
        if self.channels is None:
            raise UsageError("image modality used before fit(): number of channels unknown")
        return self.channels

    # ---- networks -----------------------------------------------------------------------
    def build_encoder(self, latent_dim: int) -> torch.nn.Module:
        encoder = NETWORKS[self.arch][0]
        return encoder(self._channels(), self.size, latent_dim + self.private_dim,
                       self.options["width"], self.options["hidden"])

    def build_decoder(self, input_dim: int) -> torch.nn.Module:
        decoder = NETWORKS[self.arch][1]
        return decoder(self._channels(), self.size, input_dim, self.options["width"],
                       self.options["hidden"], gaussian=self.likelihood == "gaussian")

    def log_likelihood(self, params, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if isinstance(params, tuple):
            mean, log_sigma = params
            log_sigma = log_sigma.float().clamp(-7.0, 2.0)
            return gaussian_log_density(x, mean.float(), log_sigma).flatten(1).sum(1)
        return -F.binary_cross_entropy_with_logits(params.float(), x, reduction="none").flatten(1).sum(1)

    def generate(self, decoder: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        out = decoder(h)
        if isinstance(out, tuple):
            return out[0].float().clamp(0, 1)
        return torch.sigmoid(out.float())

    # ---- files --------------------------------------------------------------------------
    def to_image(self, x: torch.Tensor) -> Image.Image:
        """One decoded example ``(C, S, S)`` in [0, 1] as a PIL image (grayscale or RGB)."""
        array = (x.detach().float().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
        array = np.transpose(array, (1, 2, 0))
        return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)

    def to_values(self, xs: torch.Tensor) -> list[Image.Image]:
        return [self.to_image(x) for x in xs]

    def render(self, x: torch.Tensor, path: Path) -> None:
        self.to_image(x).save(path)


def _palette_is_gray(img: Image.Image) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with transparency composited on white (scans and icons often carry alpha)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I", "I;16", "F"):
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():
            raise BadInput("non-finite pixel values (NaN or inf)")
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")
