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
#: values per chunk of a full-batch loss evaluation (bounds the activations' memory)
CHUNK_ELEMENTS = 1 << 22
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
        self._lbfgs: torch.optim.LBFGS | None = None

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
        if self.training and self.options.center:
            self._update_mean(x, present)
        if self.training and not self.uses_backprop:
            self._lbfgs_fit(x, present)
            with torch.no_grad():
                recon = self.loss(x, present)
            return LossOutput(recon, {"recon": recon})
        recon = self.loss(x, present)
        return LossOutput(recon, {"recon": recon.detach()})

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
        if not bool(present.any()):
            return
        if self._lbfgs is None:
            self._lbfgs = torch.optim.LBFGS(self.parameters(), lr=1.0,
                                            max_iter=self.options.lbfgs_iterations, history_size=50,
                                            tolerance_grad=0.0, tolerance_change=1e-12,
                                            line_search_fn="strong_wolfe")
        world = _world_size()

        rows = x[present]
        step = max(1, CHUNK_ELEMENTS // self.n_features)

        def closure() -> torch.Tensor:
            self._lbfgs.zero_grad()
            # squared error summed over a row's elements: the same optimum, better scaled steps;
            # in chunks of rows, so a full batch costs no more activation memory than a small one
            loss = torch.zeros((), device=x.device)
            for start in range(0, rows.shape[0], step):
                part = rows[start:start + step]
                chunk = row_mse(self.reconstruct_x(part), part).sum() * (self.n_features / rows.shape[0])
                chunk.backward()
                loss += chunk.detach()
            if world > 1:  # every rank steps on the mean gradient, so the replicas stay equal
                import torch.distributed as dist
                for p in self.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= world
                total = loss.detach().clone()
                dist.all_reduce(total)
                return total / world
            return loss

        with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
            self._lbfgs.step(closure)

    def training_verdict(self, train, device) -> list:
        """How far training ended from PCA's subspace of the training rows: a note, or a
        warning with what to change when it is more than a degree."""
        from polyvae.core.verdict import Finding

        x = train.data[self.modality_name][train.present[self.modality_name]]
        if x.shape[0] <= self.decoder.weight.shape[1]:
            return []
        result = compare_with_pca(self, x)
        line = (f"linear-ae ended {result.max_angle_degrees:.3g} degrees from PCA's principal subspace of "
                f"the {x.shape[0]} training rows (largest principal angle; its MSE is "
                f"{100 * result.relative_excess:.2g}% above PCA's)")
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
