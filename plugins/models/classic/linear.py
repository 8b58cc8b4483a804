"""``--model linear-ae``: a linear encoder and decoder trained on squared error.

At its optimum the decoder's columns span the same subspace as the top ``k`` principal
components of the (centred) training data (Baldi & Hornik 1989), so the model is PCA
learnt by gradient descent. :func:`compare_with_pca` measures how close a trained model is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.errors import UsageError
from polyvae.core.modality import Modality
from polyvae.core.models import LossOutput

from .common import ClassicAutoencoder, check_choice, check_range, masked_mean, row_mse
from .linear_lbfgs import LinearLBFGS


@dataclass
class LinearOptions:
    """``config.extra`` of ``linear-ae``."""

    #: biases on both layers
    bias: bool = True
    #: subtract the running mean of the training inputs before encoding and add it back after
    #: decoding, as PCA does; the learnt map is the same, the optimisation far better conditioned
    center: bool = True
    #: "auto": "lbfgs" on every training row at once (one step per epoch, whatever
    #: --batch-size says) when they fit in :data:`FULL_BATCH_ELEMENTS`, else "loop";
    #: "lbfgs": the model runs ``lbfgs_iterations`` L-BFGS iterations on each training batch
    #: itself (full-batch gradient descent when --batch-size covers the data; converges to the
    #: principal subspace in seconds where Adam's constant step leaves a few degrees of noise);
    #: "loop": the training loop's optimiser (Adam, one step per batch), like every model
    optimizer: str = "auto"
    lbfgs_iterations: int = 100

    def __post_init__(self):
        check_choice("linear-ae", "optimizer", self.optimizer, ("auto", "lbfgs", "loop"))
        check_range("linear-ae", "lbfgs_iterations", self.lbfgs_iterations, 1, 100_000)


#: "auto" trains on all rows at once up to this many values (rows x features; 512 MiB of
#: float32, copied once beside the training set already on the device)
FULL_BATCH_ELEMENTS = 1 << 27
#: a final angle to PCA's subspace above this is a warning in the run's verdict
PCA_ANGLE_WARNING_DEGREES = 1.0


class LinearAutoencoder(ClassicAutoencoder):
    """x -> z = W_e (x - mu) + b_e (k = latent_dim) -> W_d z + b_d + mu.

    ``mu`` is the running mean of the training inputs (a buffer, like batch norm's, saved with
    the weights; zero with ``center: false``).

    Initialised with ``W_d = W_e^T`` a random orthonormal basis, which skips the slow escape
    from the small-weight saddle that a default initialisation starts near.
    """

    name = "linear-ae"
    description = "linear encoder and decoder on squared error: learns the principal subspace (PCA)"
    options_class = LinearOptions

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, **context):
        super().__init__(modalities, config, **context)
        k, n = config.latent_dim, self.n_features
        if k > n:
            raise UsageError(f"--model linear-ae: --latent-dim {k} exceeds the {n} values of a "
                             f"'{self.modality_name}' row; a linear code that wide learns nothing")
        self.encoder = nn.Linear(n, k, bias=self.options.bias)
        self.decoder = nn.Linear(k, n, bias=self.options.bias)
        with torch.no_grad():
            basis, _ = torch.linalg.qr(torch.randn(n, k))
            self.decoder.weight.copy_(basis)
            self.encoder.weight.copy_(basis.T)
            if self.options.bias:
                self.encoder.bias.zero_()
                self.decoder.bias.zero_()
        self.register_buffer("data_mean", torch.zeros(n))
        self.register_buffer("rows_seen", torch.zeros((), dtype=torch.float64))
        # the instance attribute overrides the class default the training loop reads
        self.uses_backprop = self.options.optimizer == "loop"
        self._lbfgs: LinearLBFGS | None = None

    def training_batch_size(self, rows: int, requested: int) -> int:
        """``optimizer: auto``: every row in one batch when they fit, else Adam on ``requested``."""
        if self.options.optimizer != "auto":
            return requested
        if rows * self.n_features <= FULL_BATCH_ELEMENTS:
            return rows
        self.uses_backprop = True
        return requested

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1) - self.data_mean)

    def decode_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.unflatten(self.decoder(z) + self.data_mean)

    def loss(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return masked_mean(row_mse(self.reconstruct_x(x), x), present)

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        x, present = self.inputs(batch)
        first = self.training and float(self.rows_seen) == 0 and bool(present.any())
        if self.training and self.options.center:
            self._update_mean(x, present)
        if first:
            self._start_in_data_span(x, present)
        if self.training and not self.uses_backprop:
            self._lbfgs_fit(x, present)
            with torch.no_grad():
                recon = self.loss(x, present)
            return LossOutput(recon, {"recon": recon})
        recon = self.loss(x, present)
        return LossOutput(recon, {"recon": recon.detach()})

    @torch.no_grad()
    def _start_in_data_span(self, x: torch.Tensor, present: torch.Tensor) -> None:
        """Before the first training step: the decoder's columns (and the encoder's rows) become
        an orthonormal basis of k random combinations of the batch's centred rows.

        A random basis of a wide input (a 32x32 image resized from 8x8 has 1024 values but
        some 64 directions of variance) lies almost wholly where the data does not vary, so
        the gradient that would turn it is tiny; measured on the 32x32 digits at k = 16, L-BFGS
        then needs some 20 epochs just to leave the start (68 degrees from PCA after one).
        Random combinations of rows are no PCA (no eigen-decomposition, no power iteration):
        they only start the search inside the data's span. Rank 0's basis is shared in DDP.
        """
        rows = x[present].flatten(1).float() - self.data_mean
        k = self.decoder.weight.shape[1]
        mix = torch.randn(rows.shape[0], k, device=rows.device, dtype=rows.dtype)
        basis, _ = torch.linalg.qr(rows.T @ mix)
        if basis.shape[1] < k or not bool(torch.isfinite(basis).all()):
            return
        if _world_size() > 1:
            import torch.distributed as dist
            dist.broadcast(basis, src=0)
        self.decoder.weight.copy_(basis)
        self.encoder.weight.copy_(basis.T)

    @torch.no_grad()
    def _update_mean(self, x: torch.Tensor, present: torch.Tensor) -> None:
        """Cumulative mean of every training row seen (after an epoch: the data mean)."""
        weights = present.to(x.dtype)
        total = torch.cat([(x.flatten(1) * weights[:, None]).sum(0), weights.sum()[None]])
        if _world_size() > 1:
            import torch.distributed as dist
            dist.all_reduce(total)
        count = float(total[-1])
        if count == 0:
            return
        self.rows_seen += count
        step = count / float(self.rows_seen)
        self.data_mean += step * (total[:-1] / count - self.data_mean)

    def _lbfgs_fit(self, x: torch.Tensor, present: torch.Tensor) -> None:
        """``lbfgs_iterations`` iterations of full-batch L-BFGS on the present rows (:mod:`.linear_lbfgs`)."""
        if not bool(present.any()):
            return
        if self._lbfgs is None:
            weights = [p for p in (self.encoder.weight, self.encoder.bias, self.decoder.weight,
                                   self.decoder.bias) if p is not None]
            self._lbfgs = LinearLBFGS(weights, self.options.lbfgs_iterations)
        self._lbfgs.fit(x[present], self.data_mean, _world_size())

    def training_verdict(self, train, device) -> list:
        """How far training ended from PCA's subspace of the training rows: a note, or a
        warning with what to change when it is more than a degree."""
        from polyvae.core.verdict import Finding

        x = train.data[self.modality_name][train.present[self.modality_name]]
        if x.shape[0] <= self.decoder.weight.shape[1]:
            return []
        result = compare_with_pca(self, x)
        angle, excess = result.max_angle_degrees, 100 * max(result.relative_excess, 0.0)
        line = (f"linear-ae ended {'under 0.001' if angle < 1e-3 else f'{angle:.3g}'} degrees from PCA's "
                f"principal subspace of the {x.shape[0]} training rows (largest principal angle; its MSE is "
                f"{'under 0.0001' if excess < 1e-4 else f'{excess:.2g}'}% above PCA's)")
        if result.max_angle_degrees <= PCA_ANGLE_WARNING_DEGREES:
            return [Finding("pca", line, result.max_angle_degrees, level="note")]
        advice = ("train longer (--epochs), or set [model.extra] optimizer = \"lbfgs\" with "
                  "--batch-size at least the number of rows" if self.uses_backprop else
                  "train longer (--epochs), or raise [model.extra] lbfgs_iterations")
        return [Finding("pca", f"{line}. To get closer: {advice}. (Where PCA's eigenvalues "
                        f"k and k+1 are nearly equal the subspace itself is ill-defined.)",
                        result.max_angle_degrees)]

    def evaluation_figures(self, reference, rows, device, seed: int = 0) -> dict:
        """How far the learnt subspace is from PCA's on the reference rows (``pca_comparison``)."""
        x = reference.data[self.modality_name][reference.present[self.modality_name]]
        return {"pca_comparison": compare_with_pca(self, x).as_dict()}

    def decoder_basis(self) -> np.ndarray:
        """The decoder's weight ``(n_features, k)``; its columns span the learnt subspace."""
        return self.decoder.weight.detach().cpu().double().numpy()


def _world_size() -> int:
    import torch.distributed as dist
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def principal_angles_degrees(decoder_weight, pca_components) -> np.ndarray:
    """Principal angles (degrees, largest first) between two k-dimensional subspaces.

    ``decoder_weight`` is ``(n_features, k)`` (columns span the subspace, as
    :meth:`LinearAutoencoder.decoder_basis` returns); ``pca_components`` is ``(k, n_features)``
    (rows, as scikit-learn's ``PCA.components_``). A ``(k, n_features)`` decoder weight is
    accepted too and transposed.
    """
    from scipy.linalg import subspace_angles

    a = np.asarray(_numpy(decoder_weight), dtype=np.float64)
    b = np.asarray(_numpy(pca_components), dtype=np.float64)
    n_features = b.shape[1]
    if a.shape[0] != n_features and a.shape[1] == n_features:
        a = a.T
    if a.shape[0] != n_features:
        raise ValueError(f"decoder weight {a.shape} and PCA components {b.shape} "
                         f"do not share a feature dimension")
    return np.degrees(subspace_angles(a, b.T))


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


@dataclass
class PCAComparison:
    """A trained linear-ae against scikit-learn PCA with as many components."""

    max_angle_degrees: float
    model_mse: float
    pca_mse: float

    @property
    def relative_excess(self) -> float:
        """(model MSE - PCA MSE) / PCA MSE: 0.01 means 1% worse than PCA."""
        return (self.model_mse - self.pca_mse) / self.pca_mse

    def as_dict(self) -> dict[str, float]:
        return {"max_principal_angle_degrees": self.max_angle_degrees, "model_mse": self.model_mse,
                "pca_mse": self.pca_mse, "relative_excess": self.relative_excess}


@torch.no_grad()
def compare_with_pca(model: LinearAutoencoder, x: torch.Tensor) -> PCAComparison:
    """Fit PCA (k = the model's latent size) on ``x`` ``(N, *shape)`` and compare.

    MSE is squared error averaged over all elements, for both the model's and PCA's
    reconstructions of ``x``.
    """
    from sklearn.decomposition import PCA

    flat = x.detach().float().flatten(1).cpu()
    data = flat.double().numpy()
    k = model.decoder.weight.shape[1]
    pca = PCA(n_components=k, svd_solver="full").fit(data)
    pca_recon = pca.inverse_transform(pca.transform(data))
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    model_recon = model.reconstruct_x(x.to(param.device).float()).flatten(1).double().cpu().numpy()
    model.train(was_training)
    angles = principal_angles_degrees(model.decoder_basis(), pca.components_)
    return PCAComparison(float(angles.max()), float(np.mean((model_recon - data) ** 2)),
                         float(np.mean((pca_recon - data) ** 2)))
