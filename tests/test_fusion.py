"""Fusion plugins: PoE hand numbers, MoE/MoPoE weights and components, mixture density and KL."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from polyvae.core import plugins
from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.experts import ExpertStack, product_of_experts, standard_normal_log_prob
from polyvae.core.fusion import FusedPosterior
from polyvae.core.modality import Modality
from polyvae.core.mvae import MultimodalVAE
from polyvae.plugins.fusion.moe import MixtureOfExperts
from polyvae.plugins.fusion.mopoe import MixtureOfProductsOfExperts, all_subsets
from polyvae.plugins.fusion.poe import ProductOfExperts

FUSIONS = [ProductOfExperts, MixtureOfExperts, MixtureOfProductsOfExperts]


def stack_of(mu, logvar, present, dtype=torch.float64) -> ExpertStack:
    return ExpertStack(torch.as_tensor(mu, dtype=dtype), torch.as_tensor(logvar, dtype=dtype),
                       torch.as_tensor(present, dtype=torch.bool))


def random_stack(m=3, b=4, d=2, seed=0, dtype=torch.float64) -> ExpertStack:
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(m, b, d, generator=gen, dtype=dtype) * 2
    logvar = torch.randn(m, b, d, generator=gen, dtype=dtype)
    return ExpertStack(mu, logvar, torch.ones(m, b, dtype=torch.bool))


# rows: all three present, {0, 2}, {1}, nothing
PATTERN = [[True, True, False, False],
           [True, False, True, False],
           [True, True, False, False]]


def test_fusions_are_registered_with_descriptions():
    registry = plugins.build_registry(entry_points=False)
    for cls in FUSIONS:
        assert registry.fusion(cls.name) is cls
        info = registry.info[("fusion", cls.name)]
        assert info.kind == "fusion" and info.description


def test_poe_worked_example():
    # N(2, 1) x N(0, 4) x prior N(0, 1): precision 2.25, mean 2 / 2.25
    stack = stack_of([[[2.0]], [[0.0]]], [[[0.0]], [[math.log(4.0)]]], [[True], [True]])
    post = ProductOfExperts().fuse(stack)
    assert post.num_components == 1
    assert post.mu.item() == pytest.approx(0.8889, abs=1e-4)
    assert post.logvar.exp().item() == pytest.approx(0.4444, abs=1e-4)
    assert post.weights.item() == 1.0


def test_poe_with_a_masked_expert_equals_poe_without_it():
    full = random_stack(3, 5, 4, seed=1)
    full.present[1, :] = False
    full.mu[1] = 1e6                      # whatever a masked expert holds must not matter
    without = ExpertStack(full.mu[[0, 2]], full.logvar[[0, 2]], full.present[[0, 2]])
    a, b = product_of_experts(full), product_of_experts(without)
    torch.testing.assert_close(a.mu, b.mu)
    torch.testing.assert_close(a.logvar, b.logvar)


def test_moe_components_and_weights():
    stack = random_stack(3, 4, 2, seed=2)
    stack.present[:] = torch.tensor(PATTERN)
    post = MixtureOfExperts().fuse(stack)
    assert post.num_components == 3
    expected = torch.tensor([[1 / 3, 1 / 2, 0, 1],
                             [1 / 3, 0, 1, 0],
                             [1 / 3, 1 / 2, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(post.weights, expected)
    # present experts are their own components; the empty row's component 0 is N(0, I)
    torch.testing.assert_close(post.mu[0, 0], stack.mu[0, 0])
    torch.testing.assert_close(post.logvar[2, 1], stack.logvar[2, 1])
    assert torch.all(post.mu[:, 3] == 0) and torch.all(post.logvar[:, 3] == 0)
    torch.testing.assert_close(post.mean()[1], (stack.mu[0, 1] + stack.mu[2, 1]) / 2)


def test_mopoe_components_and_weights():
    stack = random_stack(3, 4, 2, seed=3)
    stack.present[:] = torch.tensor(PATTERN)
    post = MixtureOfProductsOfExperts().fuse(stack)
    subsets = all_subsets(3)
    assert post.num_components == 7 and subsets.shape == (7, 3)
    assert sorted(tuple(s) for s in subsets.int().tolist()) == sorted(
        (a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1) if a or b or c)
    torch.testing.assert_close(post.weights.sum(0), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(post.weights[:, 0], torch.full((7,), 1 / 7, dtype=torch.float64))
    # row 1 has {0, 2}: exactly the subsets {0}, {2}, {0, 2}, a third each
    sets = [tuple(np.flatnonzero(s)) for s in subsets.numpy()]
    weighted = {sets[c]: w for c, w in enumerate(post.weights[:, 1].tolist()) if w > 0}
    assert weighted == pytest.approx({(0,): 1 / 3, (2,): 1 / 3, (0, 2): 1 / 3})
    # row 2 has only {1}; row 3 nothing: one component with weight 1, the prior
    assert post.weights[sets.index((1,)), 2] == 1.0
    assert post.weights[:, 3].tolist() == [1.0] + [0.0] * 6
    torch.testing.assert_close(post.mu[0, 3], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(post.logvar[0, 3], torch.zeros(2, dtype=torch.float64))
    # the {0, 2} component is the PoE (with prior) of experts 0 and 2
    c = sets.index((0, 2))
    poe = product_of_experts(ExpertStack(stack.mu[[0, 2], 1:2], stack.logvar[[0, 2], 1:2],
                                         torch.ones(2, 1, dtype=torch.bool)))
    torch.testing.assert_close(post.mu[c, 1], poe.mu[0])
    torch.testing.assert_close(post.logvar[c, 1], poe.logvar[0])


def direct_mixture_log_prob(post: FusedPosterior, z: np.ndarray) -> np.ndarray:
    """log sum_c w_c prod_d N(z_d; mu, sigma), one row at a time, in plain numpy."""
    mu, var, w = post.mu.numpy(), post.logvar.exp().numpy(), post.weights.numpy()
    out = np.zeros(z.shape[0])
    for b in range(z.shape[0]):
        total = 0.0
        for c in range(mu.shape[0]):
            dens = np.prod(np.exp(-0.5 * (z[b] - mu[c, b]) ** 2 / var[c, b]) / np.sqrt(2 * np.pi * var[c, b]))
            total += w[c, b] * dens
        out[b] = np.log(total)
    return out


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda c: c.name)
def test_mixture_log_prob_matches_direct_computation(fusion):
    stack = random_stack(3, 4, 2, seed=4)
    stack.present[:] = torch.tensor(PATTERN)
    post = fusion().fuse(stack)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    np.testing.assert_allclose(post.log_prob(z).numpy(), direct_mixture_log_prob(post, z.numpy()),
                               rtol=1e-10)


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda c: c.name)
def test_stratified_samples_shapes_and_component_means(fusion):
    stack = random_stack(3, 2, 3, seed=6, dtype=torch.float32)
    post = fusion().fuse(stack)
    C = {"poe": 1, "moe": 3, "mopoe": 7}[fusion.name]
    gen = torch.Generator().manual_seed(7)
    assert post.rsample_stratified(gen).shape == (C, 2, 3)
    assert post.sample(gen).shape == (2, 3)
    draws = torch.stack([post.rsample_stratified(gen) for _ in range(4000)])
    sd = post.logvar.exp().sqrt()
    assert torch.all((draws.mean(0) - post.mu).abs() <= 5 * sd / math.sqrt(4000))


def test_mixture_kl_monte_carlo_matches_numerical_integral():
    # MoE of N(1.5, 0.5^2) and N(-1, 1) in one dimension, KL to N(0, 1) by quadrature
    rows = 40000
    stack = stack_of(torch.tensor([[[1.5]], [[-1.0]]]).expand(2, rows, 1),
                     torch.tensor([[[math.log(0.25)]], [[0.0]]]).expand(2, rows, 1),
                     torch.ones(2, rows))
    post = MixtureOfExperts().fuse(stack)
    grid = np.linspace(-12, 12, 200001)
    q = 0.5 * np.exp(-0.5 * (grid - 1.5) ** 2 / 0.25) / np.sqrt(2 * np.pi * 0.25) \
        + 0.5 * np.exp(-0.5 * (grid + 1) ** 2) / np.sqrt(2 * np.pi)
    p = np.exp(-0.5 * grid ** 2) / np.sqrt(2 * np.pi)
    exact = float(np.sum(q * np.log(q / p)) * (grid[1] - grid[0]))
    z = post.rsample_stratified(torch.Generator().manual_seed(8))
    kl = (post.weights * post.kl_per_component(z)).sum(0)          # stratified estimate per row
    assert kl.mean().item() == pytest.approx(exact, abs=0.01)
    # convexity: below the weighted KLs of the components (1.443 and 0.5), which MC would hit
    # if the mixture density were replaced by the component's own
    assert 0.3 < exact < 0.5 * (0.5 * (2.25 + 0.25 - 1 - math.log(0.25)) + 0.5) - 0.5


def test_single_component_kl_is_exact():
    stack = random_stack(2, 3, 4, seed=9)
    post = ProductOfExperts().fuse(stack)
    g = product_of_experts(stack)
    torch.testing.assert_close(post.kl_per_component()[0], g.kl_to_standard_normal())


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_variances_stay_finite(fusion, dtype):
    mu = torch.tensor([[[3.0, -2.0]], [[-1.0, 5.0]], [[0.5, 0.0]]], dtype=dtype).expand(3, 4, 2).clone()
    logvar = torch.tensor([[[-30.0, 30.0]], [[30.0, -30.0]], [[-30.0, -30.0]]], dtype=dtype).expand(3, 4, 2).clone()
    logvar[2, 1] = 1000.0                 # beyond the clamp too
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    stack = ExpertStack(mu, logvar, torch.tensor(PATTERN))
    post = fusion().fuse(stack)
    assert torch.isfinite(post.mu).all() and torch.isfinite(post.logvar).all()
    torch.testing.assert_close(post.weights.sum(0), torch.ones(4, dtype=post.weights.dtype))
    z = post.rsample_stratified(torch.Generator().manual_seed(10))
    kl = post.kl_per_component(z)
    assert torch.isfinite(z).all() and torch.isfinite(kl).all()
    assert torch.isfinite(post.log_prob(post.mean())).all()
    (post.weights * kl).sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(logvar.grad).all()
    # masked experts get no gradient at all
    masked = ~stack.present
    assert torch.all(mu.grad[masked] == 0) and torch.all(logvar.grad[masked] == 0)


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda c: c.name)
def test_a_row_with_nothing_present_is_the_prior(fusion):
    stack = random_stack(2, 3, 2, seed=11)
    stack.present[:, 1] = False
    post = fusion().fuse(stack)
    z = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    torch.testing.assert_close(post.log_prob(z)[:, 1], standard_normal_log_prob(z[:, 1]))
    torch.testing.assert_close(post.mean()[1], torch.zeros(2, dtype=torch.float64))


class Point(Modality):
    """A 2-number modality with linear networks and a unit-variance Gaussian likelihood."""

    extension = "txt"

    def read(self, cell, base_dir):
        return [float(v) for v in cell.split()]

    def preprocess(self, raws):
        return torch.tensor(raws)

    def num_elements(self):
        return 2

    def build_encoder(self, latent_dim):
        class Enc(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(2, 2 * latent_dim)

            def forward(self, x):
                return self.net(x).chunk(2, dim=-1)
        return Enc()

    def build_decoder(self, input_dim):
        class Dec(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(input_dim, 2)

            def forward(self, h, x=None):
                return self.net(h)
        return Dec()

    def log_likelihood(self, params, x):
        return -0.5 * (params - x).pow(2).sum(1)

    def generate(self, decoder, h):
        return decoder(h)

    def render(self, x, path):
        path.write_text(" ".join(map(str, x.tolist())))


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda c: c.name)
def test_mvae_trains_through_each_fusion_with_missing_modalities(fusion):
    names = ["a", "b", "c"]
    mods = {n: type(n, (Point,), {"name": n})() for n in names}
    model = MultimodalVAE(mods, ModelConfig(modalities=names, latent_dim=2, k_subsets=1,
                                            kl_warmup_epochs=0), fusion=fusion())
    gen = torch.Generator().manual_seed(13)
    source = torch.randn(64, 2, generator=gen)
    data = {n: source * (i + 1) for i, n in enumerate(names)}
    present = {n: torch.rand(64, generator=gen) < 0.7 for n in names}
    present["a"][:4] = False
    present["b"][:4] = False
    present["c"][:4] = False                         # four rows with nothing at all
    batch = Batch({n: torch.where(present[n][:, None], data[n], 0.0) for n in names}, present)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        out = model(batch)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert model.encode(batch).mean().shape == (64, 2)
