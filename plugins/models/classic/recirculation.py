"""``--model recirculation``: Hinton & McClelland (1987), "Learning Representations by Recirculation".

A visible group and a hidden group in a closed loop, trained without backpropagation.
Two passes around the loop, with ``f`` the unit function (sigmoid or identity):

    pass 1   h1 = f(x W1 + c)                          hidden, from the original visible vector
             y2 = lam * x + (1 - lam) * f(h1 W2 + b)    visible, "regressed" towards the original
    pass 2   h3 = f(y2 W1 + c)                         hidden, from the regressed vector

and each weight changes by the presynaptic activity times the change of its postsynaptic
unit between the passes (a local rule):

    dW2 = eta * h1^T (x - y2)        hidden -> visible
    dW1 = eta * y2^T (h1 - h3)       visible -> hidden
    db  = eta * (x - y2),  dc = eta * (h1 - h3)

averaged over the rows of a batch. ``W1`` is ``(visible, hidden)``, ``W2`` ``(hidden, visible)``.
The reconstruction the model reports and returns is the plain loop ``f(f(x W1 + c) W2 + b)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.modality import Modality
from polyvae.core.models import LossOutput

from .common import ClassicAutoencoder, check_choice, check_range, masked_mean, row_mse


@dataclass
class RecirculationOptions:
    """``config.extra`` of ``recirculation``."""

    #: "sigmoid" (data in [0, 1], e.g. images) or "linear" units, in both groups
    units: str = "sigmoid"
    #: the regression parameter lambda in [0, 1): share of the original visible vector kept in y2
    regression: float = 0.75
    #: learning rate eta of the local rule (this model ignores the training loop's learning rate)
    eta: float = 1.0
    #: hidden units; default: the run's latent_dim
    hidden: int | None = None
    #: biases on both groups (updated by the same rule, as weights from an always-on unit)
    bias: bool = True
    #: initial weights uniform in +-init_scale / sqrt(fan_in)
    init_scale: float = 1.0

    def __post_init__(self):
        check_choice("recirculation", "units", self.units, ("sigmoid", "linear"))
        check_range("recirculation", "regression", self.regression, 0.0, 1.0, high_open=True)
        check_range("recirculation", "eta", self.eta, 0.0, 1e6, low_open=True)
        if self.hidden is not None:
            check_range("recirculation", "hidden", self.hidden, 1, 1_000_000)


@dataclass
class RecirculationPasses:
    """Unit states of one recirculation step, each ``(B, units)``."""

    h1: torch.Tensor
    y2: torch.Tensor
    h3: torch.Tensor
    #: the visible states one more half-loop on, f(h3 W2 + b): diagnostic only, not used by the rule
    y4: torch.Tensor


class Recirculation(ClassicAutoencoder):
    """Two weight layers trained by the recirculation rule; ``uses_backprop = False``."""

    name = "recirculation"
    description = "Hinton & McClelland 1987 recirculation: two passes, local updates, no backprop"
    options_class = RecirculationOptions
    uses_backprop = False

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, **context):
        super().__init__(modalities, config, **context)
        o = self.options
        n, k = self.n_features, o.hidden or config.latent_dim

        def uniform(*shape, fan_in):
            return (torch.rand(*shape) * 2 - 1) * (o.init_scale / fan_in ** 0.5)

        # parameters without gradients: the state dict saves them, no optimiser touches them
        self.W1 = nn.Parameter(uniform(n, k, fan_in=n), requires_grad=False)
        self.W2 = nn.Parameter(uniform(k, n, fan_in=k), requires_grad=False)
        self.c = nn.Parameter(torch.zeros(k), requires_grad=False)
        self.b = nn.Parameter(torch.zeros(n), requires_grad=False)

    @property
    def latent_dim(self) -> int:
        return self.W1.shape[1]

    def unit(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(a) if self.options.units == "sigmoid" else a

    def hidden_of(self, v: torch.Tensor) -> torch.Tensor:
        return self.unit(v @ self.W1 + self.c)

    def visible_of(self, h: torch.Tensor) -> torch.Tensor:
        return self.unit(h @ self.W2 + self.b)

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_of(x.flatten(1))

    def decode_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.unflatten(self.visible_of(z))

    # ---- the procedure ------------------------------------------------------------------
    def passes(self, x: torch.Tensor) -> RecirculationPasses:
        """The two passes for flat visible vectors ``x`` ``(B, visible)``."""
        lam = self.options.regression
        h1 = self.hidden_of(x)
        y2 = lam * x + (1 - lam) * self.visible_of(h1)
        h3 = self.hidden_of(y2)
        return RecirculationPasses(h1, y2, h3, self.visible_of(h3))

    def updates(self, x: torch.Tensor, p: RecirculationPasses,
                weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The rule's changes ``{"W1", "W2", "c", "b"}``, averaged over rows (weighted by ``weights``)."""
        w = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if weights is None else weights.to(x.dtype)
        count = w.sum().clamp(min=1.0)
        eta = self.options.eta
        visible_error = (x - p.y2) * w[:, None]
        hidden_change = (p.h1 - p.h3) * w[:, None]
        out = {"W2": eta * p.h1.T @ visible_error / count,
               "W1": eta * p.y2.T @ hidden_change / count}
        if self.options.bias:
            out["b"] = eta * visible_error.sum(0) / count
            out["c"] = eta * hidden_change.sum(0) / count
        return out

    @torch.no_grad()
    def apply_updates(self, deltas: dict[str, torch.Tensor]) -> None:
        for name, delta in deltas.items():
            getattr(self, name).add_(delta.to(getattr(self, name).dtype))

    @torch.no_grad()
    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        """Reconstruction error of the batch; in training mode, then one local update."""
        x, present = self.inputs(batch)
        with torch.autocast(x.device.type, enabled=False):
            flat = x.flatten(1)
            recon = masked_mean(row_mse(self.visible_of(self.hidden_of(flat)), flat), present)
            if self.training:
                deltas = self.updates(flat, self.passes(flat), present)
                self.apply_updates(_mean_over_processes(deltas, present))
        return LossOutput(recon, {"recon": recon})


def _mean_over_processes(deltas: dict[str, torch.Tensor], present: torch.Tensor) -> dict[str, torch.Tensor]:
    """Under torchrun every process applies the row-weighted mean update of all processes."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return deltas
    count = present.sum().to(next(iter(deltas.values())).dtype)
    names = sorted(deltas)
    flat = torch.cat([(deltas[k] * count).flatten() for k in names] + [count[None]])
    dist.all_reduce(flat)
    total = flat[-1].clamp(min=1.0)
    out, start = {}, 0
    for k in names:
        size = deltas[k].numel()
        out[k] = (flat[start:start + size] / total).view_as(deltas[k])
        start += size
    return out
