"""The ``vector`` modality: a fixed-length row of numbers per example.

Values are standardised per feature with the mean and standard deviation fitted on the
training rows (kept in the run's ``config.json`` through :meth:`VectorModality.state`),
encoded by an MLP to a Gaussian expert, and decoded by an MLP to the mean of a diagonal
Gaussian with a learned log-variance per feature. Rendering undoes the standardisation
and writes one CSV line.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyvae.core.errors import BadInput, UsageError
from polyvae.core.modality import Modality

from . import __version__
from .cells import read_vector
from .networks import LOGVAR_MAX, LOGVAR_MIN, VectorDecoder, VectorEncoder

OPTIONS = {"hidden": 128, "layers": 2, "private_dim": 0, "standardize": True}
#: features whose spread is below this (relative to their size) are constant: not scaled
MIN_STD = 1e-8


class VectorModality(Modality):
    """``vector``: tabular features or a precomputed embedding, one per manifest row."""

    name = "vector"
    extension = "csv"
    #: a cell holds the numbers or a path, told apart by its ending (see ``cells.py``);
    #: paths are resolved against the manifest's folder inside :meth:`read`
    cell_is_path = False
    version = __version__
    description = "row of numbers (tabular features, embeddings) inline or from .npy; MLP, Gaussian"

    def __init__(self, **options: Any):
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise UsageError(f"unknown vector option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(OPTIONS))}")
        merged = {**OPTIONS, **options}
        super().__init__(**merged)
        if int(merged["hidden"]) < 1 or int(merged["layers"]) < 0:
            raise UsageError("vector options: hidden must be >= 1 and layers >= 0")
        self.dim: int | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        # Length of the first vector read before fitting, so that a later row of another
        # length is reported at its own row, during the validation pass.
        self._first_length: int | None = None

    # ---- data ---------------------------------------------------------------------------
    def read(self, cell: str, base_dir: Path) -> np.ndarray:
        values = read_vector(cell, base_dir)
        expected = self.dim or self._first_length
        if expected is None:
            self._first_length = values.size
        elif values.size != expected:
            source = "the trained model" if self.dim else "the first vector read"
            raise BadInput(f"vector has {values.size} values, but {source} has {expected}")
        return values

    def fit(self, raws: list[np.ndarray]) -> None:
        if not raws:
            raise BadInput("no vectors to fit the vector modality on")
        lengths = Counter(r.size for r in raws)
        if len(lengths) > 1:
            listed = ", ".join(f"{n} values in {k} row(s)" for n, k in lengths.most_common())
            raise BadInput(f"vectors have different lengths: {listed}")
        stacked = np.stack(raws)
        self.dim = stacked.shape[1]
        if self.options["standardize"]:
            mean = stacked.mean(0)
            std = stacked.std(0)
            flat = ~np.isfinite(std) | (std <= MIN_STD * np.maximum(1.0, np.abs(mean)))
            self.mean, self.std = mean, np.where(flat, 1.0, std)
        else:
            self.mean, self.std = np.zeros(self.dim), np.ones(self.dim)

    def preprocess(self, raws: list[np.ndarray]) -> torch.Tensor:
        dim = self._dim()
        for r in raws:
            if r.size != dim:
                raise BadInput(f"vector has {r.size} values, but the modality was fitted on {dim}")
        x = (np.stack(raws) - self.mean) / self.std
        return torch.from_numpy(x.astype(np.float32))

    def state(self) -> dict[str, Any]:
        self._dim()
        return {"dim": self.dim, "mean": self.mean.tolist(), "std": self.std.tolist()}

    def load_state(self, state: dict[str, Any]) -> None:
        if state:
            self.dim = int(state["dim"])
            self.mean = np.asarray(state["mean"], dtype=np.float64)
            self.std = np.asarray(state["std"], dtype=np.float64)
            if self.mean.shape != (self.dim,) or self.std.shape != (self.dim,):
                raise UsageError(f"vector state: mean/std do not have {self.dim} entries")

    def num_elements(self) -> int:
        return self._dim()

    def data_shape(self) -> tuple[int, ...]:
        return (self._dim(),)

    def _dim(self) -> int:
        if self.dim is None:
            raise UsageError("vector modality used before fit(): its length is unknown")
        return self.dim

    # ---- networks -----------------------------------------------------------------------
    def build_encoder(self, latent_dim: int) -> torch.nn.Module:
        return VectorEncoder(self._dim(), latent_dim + self.private_dim,
                             int(self.options["hidden"]), int(self.options["layers"]))

    def build_decoder(self, input_dim: int) -> torch.nn.Module:
        return VectorDecoder(input_dim, self._dim(), int(self.options["hidden"]),
                             int(self.options["layers"]))

    def log_likelihood(self, params, x: torch.Tensor) -> torch.Tensor:
        mean, logvar = params
        logvar = logvar.float().clamp(LOGVAR_MIN, LOGVAR_MAX)
        per = -0.5 * (math.log(2 * math.pi) + logvar + (x.float() - mean.float()).pow(2) * torch.exp(-logvar))
        return per.sum(1)

    def generate(self, decoder: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        return decoder(h)[0].float()

    # ---- files --------------------------------------------------------------------------
    def to_original_units(self, x: torch.Tensor) -> np.ndarray:
        """Undo the standardisation of a ``(dim,)`` or ``(N, dim)`` tensor."""
        self._dim()
        return x.detach().cpu().double().numpy() * self.std + self.mean

    def render(self, x: torch.Tensor, path: Path) -> None:
        values = self.to_original_units(x.reshape(-1))
        Path(path).write_text(",".join(f"{v:.9g}" for v in values) + "\n")
