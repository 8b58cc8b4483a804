"""The classic single-modality autoencoders (``--model linear-ae|recirculation|ae|sparse-ae|
denoising-ae|vae|conv-ae``); see docs/classic-models.md."""
from __future__ import annotations

from .conv import ConvAutoencoder
from .dense import DenoisingAutoencoder, DenseAutoencoder, SparseAutoencoder
from .linear import LinearAutoencoder, compare_with_pca, principal_angles_degrees
from .recirculation import Recirculation
from .vae import VariationalAutoencoder, convex_grid, convex_interpolation

#: every classic model class, in the order ``polyvae plugins`` lists them
CLASSIC_MODELS = (LinearAutoencoder, Recirculation, DenseAutoencoder, SparseAutoencoder,
                  DenoisingAutoencoder, VariationalAutoencoder, ConvAutoencoder)

__all__ = ["CLASSIC_MODELS", "ConvAutoencoder", "DenoisingAutoencoder", "DenseAutoencoder",
           "LinearAutoencoder", "Recirculation", "SparseAutoencoder", "VariationalAutoencoder",
           "compare_with_pca", "convex_grid", "convex_interpolation", "principal_angles_degrees"]
