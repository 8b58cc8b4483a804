"""Shared helpers of the classic-model tests: an in-test modality and real digits as tensors.

(No tests here; the name keeps it next to the files that import it.)
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.modality import Modality


class ArrayModality(Modality):
    """Float rows of a fixed shape (vectors or 2-D maps), or integer ids with ``discrete=True``."""

    name = "array"
    extension = "npy"

    def __init__(self, shape=(64,), discrete: bool = False, **options):
        super().__init__(**options)
        self.shape = tuple(shape)
        self.discrete = discrete

    def read(self, cell: str, base_dir: Path):
        return np.load(Path(base_dir) / cell)

    def preprocess(self, raws):
        return torch.as_tensor(np.stack(raws), dtype=torch.long if self.discrete else torch.float32)

    def data_shape(self):
        return self.shape

    def num_elements(self):
        return math.prod(self.shape)

    def build_encoder(self, latent_dim):
        raise NotImplementedError("only the classic models use this test modality")

    def build_decoder(self, input_dim):
        raise NotImplementedError("only the classic models use this test modality")

    def log_likelihood(self, params, x):
        raise NotImplementedError

    def generate(self, decoder, h):
        raise NotImplementedError

    def render(self, x, path):
        np.save(path, x.detach().cpu().numpy())


def build(cls, shape=(64,), discrete: bool = False, **config):
    """A classic model ``cls`` on one :class:`ArrayModality`; ``config`` sets ModelConfig fields."""
    extra = config.pop("extra", {})
    return cls({"array": ArrayModality(shape, discrete)}, ModelConfig(extra=extra, **config))


def as_batch(x: torch.Tensor, present: torch.Tensor | None = None) -> Batch:
    if present is None:
        present = torch.ones(x.shape[0], dtype=torch.bool)
    return Batch({"array": x}, {"array": present})


def digits(images: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's real 8x8 digits scaled to [0, 1]: ``(1797, 64)`` (or ``(1797, 8, 8)``), labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images if images else data.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(data.target)


def split(n: int, held_out: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(n * (1 - held_out))
    return perm[:cut], perm[cut:]


def fit(model, x: torch.Tensor, epochs: int, lr: float = 2e-3, batch_size: int = 64, seed: int = 0,
        present: torch.Tensor | None = None) -> list[float]:
    """Minibatch training as the training loop does it (Adam when the model backpropagates);
    returns the full-data reconstruction error (mean squared error) after each epoch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr) if model.uses_backprop else None
    present = torch.ones(len(x), dtype=torch.bool) if present is None else present
    history = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            out = model(as_batch(x[idx], present[idx]))
            if opt is not None:
                opt.zero_grad()
                out.loss.backward()
                opt.step()
        history.append(recon_error(model, x[present]))
    model.eval()
    return history


@torch.no_grad()
def recon_error(model, x: torch.Tensor) -> float:
    was = model.training
    model.eval()
    error = float(model.reconstruction_error(as_batch(x))["array"].mean())
    model.train(was)
    return error
