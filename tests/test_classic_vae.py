"""vae: the KL term and beta, prior samples, convex interpolation, the locally convex regulariser."""
from __future__ import annotations

import pytest
import torch

from test_classic_support import as_batch, build, digits, fit

from polyvae.core.errors import UsageError
from polyvae.plugins.models.classic import VariationalAutoencoder, convex_grid, convex_interpolation
from polyvae.plugins.models.classic.vae import gaussian_kl


def test_kl_by_hand():
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.5, -1.0]])
    expected = 0.5 * (1 + 4 + torch.exp(torch.tensor(0.5)) + torch.exp(torch.tensor(-1.0)) - 2 - 0.5 + 1.0)
    assert gaussian_kl(mu, logvar).tolist() == pytest.approx([0.0, expected.item()])


def test_loss_is_the_per_element_negative_elbo_with_beta():
    x, _ = digits()
    batch = as_batch(x[:32])
    losses = {}
    for beta in (1.0, 3.0):
        torch.manual_seed(0)
        model = build(VariationalAutoencoder, latent_dim=4, hidden_dim=32, beta=beta, kl_warmup_epochs=0)
        torch.manual_seed(1)
        losses[beta] = model(batch)
    one, three = losses[1.0], losses[3.0]
    assert torch.equal(one.terms["kl"], three.terms["kl"])
    assert (three.loss - one.loss).item() == pytest.approx(2.0 * one.terms["kl"].item() / 64, abs=1e-5)
    sigma = 0.1
    assert one.loss.item() == pytest.approx(
        (one.terms["recon"].item() * 64 / (2 * sigma ** 2) + one.terms["kl"].item()) / 64, rel=1e-4)


def test_kl_warmup_ramps_beta():
    model = build(VariationalAutoencoder, latent_dim=4, hidden_dim=16, beta=2.0, kl_warmup_epochs=4)
    x, _ = digits()
    assert model(as_batch(x[:8]), epoch=1.0).terms["beta"].item() == pytest.approx(0.5)
    assert model(as_batch(x[:8]), epoch=10.0).terms["beta"].item() == pytest.approx(2.0)


def test_kl_is_finite_positive_and_shrinks_with_beta():
    x, _ = digits()
    kls = {}
    for beta in (0.1, 4.0):
        torch.manual_seed(0)
        model = build(VariationalAutoencoder, latent_dim=8, hidden_dim=64, beta=beta, kl_warmup_epochs=0)
        history = fit(model, x[:600], epochs=5, lr=3e-3)
        assert history[-1] < history[0]
        with torch.no_grad():
            kl = model(as_batch(x[:600])).terms["kl"].item()
        assert 0.0 < kl < float("inf")
        kls[beta] = kl
    assert kls[4.0] < 0.5 * kls[0.1], kls


def test_generate_from_the_prior_and_from_given_rows():
    x, _ = digits()
    model = build(VariationalAutoencoder, latent_dim=4, hidden_dim=32).eval()
    nothing = as_batch(torch.zeros(5, 64), torch.zeros(5, dtype=torch.bool))
    a = model.generate(nothing, ["array"], torch.Generator().manual_seed(3))["array"]
    b = model.generate(nothing, ["array"], torch.Generator().manual_seed(3))["array"]
    c = model.generate(nothing, ["array"], torch.Generator().manual_seed(4))["array"]
    assert a.shape == (5, 64) and torch.equal(a, b) and not torch.equal(a, c)
    given = as_batch(x[:3])
    mean = model.generate(given, ["array"], sample=False)["array"]
    assert torch.allclose(mean, model.reconstruct(given)["array"])
    assert model.sample_prior(7).shape == (7, 64)
    with pytest.raises(UsageError, match="cannot generate text"):
        model.generate(given, ["text"])


def test_convex_interpolation_and_grid():
    x, _ = digits(images=True)
    model = build(VariationalAutoencoder, shape=(8, 8), latent_dim=4, hidden_dim=32).eval()
    path = convex_interpolation(model, x[0], x[1], steps=5)
    assert path.shape == (5, 8, 8)
    with torch.no_grad():
        ends = model.reconstruct(as_batch(x[:2]))["array"]
        mu = model.features(as_batch(x[:2]))
        middle = model.decode_z(0.5 * mu[:1] + 0.5 * mu[1:])
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)
    assert torch.allclose(path[2], middle[0], atol=1e-6)
    grid = convex_grid(model, x[:4], steps=3)
    assert grid.shape == (3, 3, 8, 8)
    with torch.no_grad():
        corners = model.reconstruct(as_batch(x[:4]))["array"]
    for (i, j), k in {(0, 0): 0, (0, 2): 1, (2, 0): 2, (2, 2): 3}.items():
        assert torch.allclose(grid[i, j], corners[k], atol=1e-6)


def test_locally_convex_regulariser_by_hand():
    x, _ = digits()
    batch = x[:6]
    present = torch.tensor([True, True, True, True, False, True])
    model = build(VariationalAutoencoder, latent_dim=3, hidden_dim=16, kl_warmup_epochs=0,
                  extra={"convex_weight": 2.0})
    torch.manual_seed(5)
    out = model(as_batch(batch, present))
    assert "convex" in out.terms
    # the same draws by hand: posterior noise first, then the mixing weights
    torch.manual_seed(5)
    mu, logvar = model.posterior(batch)
    torch.randn_like(mu)
    rows = present.nonzero().squeeze(1)
    m, xs = mu[rows], batch[rows]
    dist = torch.cdist(m, m)
    dist.fill_diagonal_(float("inf"))
    j = dist.argmin(1)
    a = torch.rand(len(rows), 1)
    expected = ((model.decode_z(a * m + (1 - a) * m[j]) - (a * xs + (1 - a) * xs[j])) ** 2).mean()
    assert out.terms["convex"].item() == pytest.approx(expected.item(), rel=1e-5)
    model.zero_grad()
    (out.loss - out.loss.detach()).backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0 and model.decoder[-2].weight.grad.abs().sum() > 0
    plain = build(VariationalAutoencoder, latent_dim=3, hidden_dim=16, kl_warmup_epochs=0)
    assert "convex" not in plain(as_batch(batch)).terms


def test_option_errors():
    with pytest.raises(UsageError, match="sigma"):
        build(VariationalAutoencoder, extra={"sigma": 0})
    with pytest.raises(UsageError, match="convex_weight must be float"):
        build(VariationalAutoencoder, extra={"convex_weight": "yes"})
