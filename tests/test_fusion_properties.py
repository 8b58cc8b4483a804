"""Properties every fusion must keep, checked on generated expert stacks (deterministic).

Mixtures are compared as distributions (density at probe points and mean), since a
permutation or a dropped expert reorders or removes components without changing q(z).
"""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polyvae.core.experts import ExpertStack
from polyvae.plugins.fusion.moe import MixtureOfExperts
from polyvae.plugins.fusion.mopoe import MixtureOfProductsOfExperts, all_subsets
from polyvae.plugins.fusion.poe import ProductOfExperts

FUSIONS = [ProductOfExperts(), MixtureOfExperts(), MixtureOfProductsOfExperts()]
FAST = settings(derandomize=True, max_examples=40, deadline=None)


@st.composite
def stacks(draw, min_experts=1, max_experts=4, lo=-6.0, hi=6.0, extreme=False):
    """An expert stack with random present masks; logvars in [lo, hi] (or only lo/hi)."""
    m = draw(st.integers(min_experts, max_experts))
    b = draw(st.integers(1, 4))
    d = draw(st.integers(1, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31 - 1)))
    mu = torch.randn(m, b, d, generator=gen, dtype=torch.float64) * draw(st.floats(0.1, 5.0))
    a, z = sorted((draw(st.floats(lo, hi)), draw(st.floats(lo, hi))))
    if extreme:
        logvar = torch.where(torch.rand(m, b, d, generator=gen) < 0.5, lo, hi).double()
    else:
        logvar = a + (z - a) * torch.rand(m, b, d, generator=gen, dtype=torch.float64)
    present = torch.rand(m, b, generator=gen) < draw(st.floats(0.2, 1.0))
    return ExpertStack(mu, logvar, present)


def probes(stack: ExpertStack, n: int = 6) -> torch.Tensor:
    """Points ``(n, B, D)`` near the experts where two densities are compared."""
    gen = torch.Generator().manual_seed(0)
    centre = stack.mu.mean(0)
    return centre + torch.randn((n,) + tuple(centre.shape), generator=gen, dtype=centre.dtype)


def assert_same_distribution(a, b):
    torch.testing.assert_close(a.mean(), b.mean(), rtol=1e-6, atol=1e-8)
    z = probes(ExpertStack(a.mu, a.logvar, a.weights > 0))
    torch.testing.assert_close(a.log_prob(z), b.log_prob(z), rtol=1e-6, atol=1e-6)


@FAST
@given(stacks(min_experts=2), st.randoms(use_true_random=False))
def test_permuting_experts_changes_nothing(stack, rnd):
    order = list(range(stack.num_experts))
    rnd.shuffle(order)
    permuted = ExpertStack(stack.mu[order], stack.logvar[order], stack.present[order])
    for fusion in FUSIONS:
        assert_same_distribution(fusion.fuse(stack), fusion.fuse(permuted))


@FAST
@given(stacks(lo=-30.0, hi=30.0))
def test_precisions_add(stack):
    """PoE: 1/var = 1 + sum of present 1/var_i; MoPoE: the same for each weighted subset."""
    precision = torch.where(stack.present[..., None], torch.exp(-stack.logvar), 0.0)   # (M, B, D)
    poe = ProductOfExperts().fuse(stack)
    torch.testing.assert_close(torch.exp(-poe.logvar[0]), 1.0 + precision.sum(0), rtol=1e-9, atol=0)
    mopoe = MixtureOfProductsOfExperts().fuse(stack)
    subsets = all_subsets(stack.num_experts).double()                                   # (C, M)
    expected = 1.0 + torch.einsum("cm,mbd->cbd", subsets, precision)
    weighted = mopoe.weights > 0
    torch.testing.assert_close(torch.exp(-mopoe.logvar)[weighted], expected[weighted], rtol=1e-9, atol=0)


@FAST
@given(stacks(max_experts=3), st.data())
def test_a_missing_expert_equals_its_absence(stack, data):
    """Adding an expert that is masked out everywhere (holding anything) changes nothing."""
    m, b, d = stack.mu.shape
    where = data.draw(st.integers(0, m))
    junk = data.draw(st.sampled_from([0.0, 1e6, -1e6]))
    mu = torch.cat([stack.mu[:where], torch.full((1, b, d), junk, dtype=torch.float64), stack.mu[where:]])
    logvar = torch.cat([stack.logvar[:where], torch.full((1, b, d), -junk, dtype=torch.float64),
                        stack.logvar[where:]])
    present = torch.cat([stack.present[:where], torch.zeros(1, b, dtype=torch.bool), stack.present[where:]])
    padded = ExpertStack(mu, logvar, present)
    for fusion in FUSIONS:
        assert_same_distribution(fusion.fuse(stack), fusion.fuse(padded))


@FAST
@given(stacks(lo=-30.0, hi=30.0, extreme=True), st.booleans())
def test_results_stay_finite_for_any_logvar(stack, single):
    if single:
        stack = ExpertStack(stack.mu.float(), stack.logvar.float(), stack.present)
    for fusion in FUSIONS:
        post = fusion.fuse(stack)
        assert torch.isfinite(post.mu).all() and torch.isfinite(post.logvar).all()
        torch.testing.assert_close(post.weights.sum(0), torch.ones_like(post.weights[0]))
        assert (post.weights >= 0).all()
        z = post.rsample_stratified(torch.Generator().manual_seed(1))
        assert torch.isfinite(z).all()
        assert torch.isfinite(post.log_prob(z)).all()
        assert torch.isfinite(post.kl_per_component(z)).all()
