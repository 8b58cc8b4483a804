"""``--model vae``: a single-modality variational autoencoder, and latent interpolation.

Encoder ``D -> hidden... -> (mu, logvar)``, decoder ``z -> ...hidden -> D``. The likelihood is
Gaussian with a fixed standard deviation ``sigma`` (squared error up to constants), so the
per-row negative ELBO is::

    sum_i (x_i - x_hat_i)^2 / (2 sigma^2)  +  beta * KL(q(z|x) || N(0, I))

and the loss is its mean over present rows divided by the number of elements D (the same
scale as the other models' per-element error). ``beta`` is the run's ``beta`` with its
``kl_warmup_epochs`` ramp.

Optional locally convex regulariser (``convex_weight > 0``): each row is paired with its
nearest neighbour in the batch (by posterior mean); for a random ``a`` in [0, 1] the decoded
mixture ``decode(a mu_i + (1 - a) mu_j)`` is pulled towards the mixture of the inputs
``a x_i + (1 - a) x_j``: its per-element squared error, divided by ``2 sigma^2`` like the
reconstruction term and weighted by ``convex_weight``, joins the loss. Short straight paths
in latent space then decode to blends of their ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.experts import GaussianExpert, kl_to_standard_normal
from polyvae.core.modality import Modality
from polyvae.core.models import DECODE, PRIOR, Encoding, GaussianPosterior, LossOutput
from polyvae.core.objective import beta_at

from .common import ACTIVATIONS, ClassicAutoencoder, check_choice, check_range, masked_mean, mlp, row_mse


@dataclass
class VAEOptions:
    """``config.extra`` of ``vae``."""

    #: widths of the hidden layers; default: [hidden_dim] of the run
    hidden: list[int] | None = None
    activation: str = "silu"
    #: "linear" (any data) or "sigmoid" (data in [0, 1]) decoder output
    output: str = "linear"
    #: standard deviation of the Gaussian likelihood (in data units)
    sigma: float = 0.1
    #: weight of the locally convex regulariser (0: off)
    convex_weight: float = 0.0

    def __post_init__(self):
        for key in ("activation", "output"):
            check_choice("vae", key, getattr(self, key), tuple(ACTIVATIONS))
        check_range("vae", "sigma", self.sigma, 0.0, 1e6, low_open=True)
        check_range("vae", "convex_weight", self.convex_weight, 0.0, 1e6)
        for width in self.hidden or []:
            check_range("vae", "hidden", width, 1, 1_000_000)


#: KL(N(mu, exp(logvar)) || N(0, I)) of each row, ``(B,)``: the engine's own (clamped) formula
gaussian_kl = kl_to_standard_normal


class VariationalAutoencoder(ClassicAutoencoder):
    """Gaussian encoder, Gaussian (fixed sigma) decoder, beta-weighted KL."""

    name = "vae"
    description = "variational autoencoder (beta, Gaussian likelihood); prior samples, interpolation"
    options_class = VAEOptions
    capabilities = frozenset({DECODE, PRIOR})

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, **context):
        super().__init__(modalities, config, **context)
        o = self.options
        hidden = [config.hidden_dim] if o.hidden is None else list(o.hidden)
        d = config.latent_dim
        self.encoder = mlp([self.n_features, *hidden, 2 * d], o.activation)
        self.decoder = mlp([d, *hidden[::-1], self.n_features], o.activation, o.output)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x), each ``(B, latent)``."""
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def encode(self, batch: Batch) -> Encoding:
        x, _ = self.inputs(batch)
        return Encoding(GaussianPosterior(GaussianExpert(*self.posterior(x))))

    def decode_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.unflatten(self.decoder(z))

    def forward(self, batch: Batch, epoch: float = 0.0) -> LossOutput:
        x, present = self.inputs(batch)
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        x_hat = self.decode_z(z)
        sse = (x_hat - x).flatten(1).pow(2).sum(1)
        kl = gaussian_kl(mu, logvar)
        beta = beta_at(self.config, epoch)
        nll = sse / (2 * self.options.sigma ** 2)
        loss = masked_mean(nll + beta * kl, present) / self.n_features
        terms = {"recon": masked_mean(sse / self.n_features, present).detach(),
                 "kl": masked_mean(kl, present).detach(),
                 "beta": torch.tensor(float(beta))}
        if self.options.convex_weight > 0:
            convex = self.convex_penalty(x, mu, present)
            # on the likelihood's scale: weight 1 counts a mixture's error like a reconstruction's
            loss = loss + self.options.convex_weight * convex / (2 * self.options.sigma ** 2)
            terms["convex"] = convex.detach()
        return LossOutput(loss, terms)

    def convex_penalty(self, x: torch.Tensor, mu: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Squared error between decoded latent mixtures of nearest neighbours and input mixtures."""
        rows = present.nonzero().squeeze(1)
        if rows.numel() < 2:
            return mu.sum() * 0.0
        m, xs = mu[rows], x[rows]
        dist = torch.cdist(m.detach(), m.detach())
        dist.fill_diagonal_(float("inf"))
        partner = dist.argmin(1)
        a = torch.rand(rows.numel(), 1, device=mu.device, dtype=mu.dtype)
        mixed = self.decode_z(a * m + (1 - a) * m[partner])
        a_x = a.view(-1, *([1] * (xs.dim() - 1)))
        target = a_x * xs + (1 - a_x) * xs[partner]
        return row_mse(mixed, target).mean()

    # ---- generation ---------------------------------------------------------------------
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` decoded samples of z ~ N(0, I), ``(n, *shape)``."""
        device = next(self.parameters()).device
        return self.decode_z(_normal((n, self.config.latent_dim), generator, device))

    def generate(self, given: Batch, targets: list[str], generator: torch.Generator | None = None,
                 sample: bool = True, private: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
        """Rows that have the modality: decoded from q(z|x) (a sample, or the mean); the
        others (or every row when nothing is given): decoded from the prior."""
        self.check_targets(targets)
        x, present = self.inputs(given)
        mu, logvar = self.posterior(x)
        noise = _normal(tuple(mu.shape), generator, mu.device) if sample else torch.zeros_like(mu)
        z = torch.where(present[:, None], mu + noise * (0.5 * logvar).exp(), noise)
        return {self.modality_name: self.decode_z(z)}


def _normal(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def _as_batch(model: VariationalAutoencoder, x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    if tuple(x.shape) == tuple(model.shape):
        x = x.unsqueeze(0)
    device = next(model.parameters()).device
    return x.to(device)


@torch.no_grad()
def convex_interpolation(model: VariationalAutoencoder, x_a: torch.Tensor, x_b: torch.Tensor,
                         steps: int = 8) -> torch.Tensor:
    """Decoded ``(1 - t) mu_a + t mu_b`` for ``steps`` values of t from 0 to 1, ``(steps, *shape)``.

    ``x_a``/``x_b`` are single examples (``shape`` or ``(1, *shape)``) in the modality's
    preprocessed space; ``mu`` are their posterior means.
    """
    if steps < 2:
        raise ValueError("steps must be at least 2")
    mu_a, mu_b = model.encode_x(_as_batch(model, x_a)), model.encode_x(_as_batch(model, x_b))
    t = torch.linspace(0, 1, steps, device=mu_a.device)[:, None]
    return model.decode_z((1 - t) * mu_a + t * mu_b)


@torch.no_grad()
def convex_grid(model: VariationalAutoencoder, corners: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Bilinear convex combinations of four examples' latent means, ``(steps, steps, *shape)``.

    ``corners`` ``(4, *shape)``: top-left, top-right, bottom-left, bottom-right. Cell (i, j)
    decodes ``sum_c w_c mu_c`` with weights ``(1-u)(1-v), (1-u)v, u(1-v), uv`` for
    ``u = i/(steps-1)``, ``v = j/(steps-1)``: every cell is a convex combination.
    """
    if steps < 2:
        raise ValueError("steps must be at least 2")
    mu = model.encode_x(_as_batch(model, corners))                       # (4, D)
    s = torch.linspace(0, 1, steps, device=mu.device)
    u, v = torch.meshgrid(s, s, indexing="ij")
    w = torch.stack([(1 - u) * (1 - v), (1 - u) * v, u * (1 - v), u * v], dim=-1)  # (S, S, 4)
    z = (w.reshape(-1, 4) @ mu)
    return model.decode_z(z).reshape(steps, steps, *model.shape)
