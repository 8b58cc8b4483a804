"""The summed Gaussian log-density (two passes over the data) against worked numbers and
against the elementwise density it replaces, with and without a mask, values and gradients."""
from __future__ import annotations

import math

import pytest
import torch

from polyvae.core.experts import gaussian_log_density, gaussian_log_density_sum


def test_worked_numbers():
    # one row, one channel of scale e^0 = 1, two positions off by 1 and 2:
    # -(1 + 4) / 2 - 2 * log(2 pi) / 2
    x = torch.tensor([[[0.0, 0.0]]])
    mean = torch.tensor([[[1.0, 2.0]]])
    got = gaussian_log_density_sum(x, mean, torch.zeros(1, 1, 1))
    assert got.shape == (1,)
    assert float(got) == pytest.approx(-2.5 - math.log(2 * math.pi))
    # scale e^1 and only the second position counted: -4 e^-2 / 2 - (1 + log(2 pi) / 2)
    masked = gaussian_log_density_sum(x, mean, torch.ones(1, 1, 1), torch.tensor([[[0.0, 1.0]]]))
    assert float(masked) == pytest.approx(-2 * math.exp(-2) - 1 - 0.5 * math.log(2 * math.pi))


@pytest.mark.parametrize("masked", [False, True])
def test_equals_the_elementwise_density_summed(masked):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 9, generator=gen, dtype=torch.float64)
    mean = torch.randn(6, 5, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    log_scale = (0.3 * torch.randn(1, 5, 1, generator=gen, dtype=torch.float64)).requires_grad_()
    mask = (torch.rand(6, 1, 9, generator=gen) > 0.4).double() if masked else None
    reference = gaussian_log_density(x, mean, log_scale)
    reference = (reference * mask if masked else reference).flatten(1).sum(1)
    got = gaussian_log_density_sum(x, mean, log_scale, mask)
    torch.testing.assert_close(got, reference)
    weights = torch.arange(1.0, 7.0, dtype=torch.float64)
    want = torch.autograd.grad((reference * weights).sum(), [mean, log_scale])
    have = torch.autograd.grad((got * weights).sum(), [mean, log_scale])
    for a, b in zip(have, want):
        torch.testing.assert_close(a, b)


def test_a_scale_that_varies_along_the_last_axis_is_refused():
    with pytest.raises(ValueError, match="last axis"):
        gaussian_log_density_sum(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(1, 3, 4))
