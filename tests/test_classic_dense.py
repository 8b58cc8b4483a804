"""ae, sparse-ae and denoising-ae: each one's defining property, on real digits."""
from __future__ import annotations

import pytest
import torch

from test_classic_support import as_batch, build, digits, fit, split

from polyvae.core.errors import UsageError
from polyvae.plugins.models.classic import DenoisingAutoencoder, DenseAutoencoder, SparseAutoencoder
from polyvae.plugins.models.classic.common import psnr
from polyvae.plugins.models.classic.dense import corrupt, sparsity_penalty


def test_ae_reconstruction_error_falls():
    x, _ = digits()
    model = build(DenseAutoencoder, latent_dim=8, hidden_dim=64)
    history = fit(model, x[:600], epochs=6, lr=3e-3)
    assert history[-1] < 0.6 * history[0], history
    assert model.features(as_batch(x[:5])).shape == (5, 8)
    assert model.reconstruct(as_batch(x[:5]))["array"].shape == (5, 64)


def test_sparsity_penalties_by_hand():
    rho_hat = torch.tensor([0.05, 0.5, 0.2])
    assert sparsity_penalty(rho_hat, 0.05, "l1").item() == pytest.approx(0.0 + 0.45 + 0.15)
    kl = [0.05 * torch.log(torch.tensor(0.05 / q)) + 0.95 * torch.log(torch.tensor(0.95 / (1 - q)))
          for q in (0.05, 0.5, 0.2)]
    assert sparsity_penalty(rho_hat, 0.05, "kl").item() == pytest.approx(float(sum(kl)), rel=1e-5)
    assert sparsity_penalty(torch.full((4,), 0.05), 0.05, "kl").item() == pytest.approx(0.0, abs=1e-6)


def _mean_activation_after_training(cls, extra):
    x, _ = digits()
    torch.manual_seed(0)
    model = build(cls, latent_dim=32, hidden_dim=64, extra=extra)
    history = fit(model, x[:600], epochs=15, lr=1e-2)
    code = model.features(as_batch(x[:600])).detach()
    return code, history[-1]


@pytest.mark.parametrize("form, weight", [("kl", 0.003), ("l1", 0.003)])
def test_sparse_codes_are_sparse(form, weight):
    x, _ = digits()
    mean_image_error = float((x[:600] - x[:600].mean(0)).pow(2).mean())
    dense_code, _ = _mean_activation_after_training(DenseAutoencoder, {"code_activation": "sigmoid"})
    code, error = _mean_activation_after_training(
        SparseAutoencoder, {"sparsity": form, "sparsity_weight": weight, "rho": 0.05})
    assert float(code.mean()) < 0.25 * float(dense_code.mean())
    assert abs(float(code.mean()) - 0.05) < 0.04
    assert error < 0.9 * mean_image_error          # the sparse code still carries the digits


def test_sparse_terms_and_mean_activation():
    x, _ = digits()
    model = build(SparseAutoencoder, latent_dim=16, hidden_dim=32)
    out = model(as_batch(x[:64]))
    assert set(out.terms) == {"recon", "sparsity", "mean_activation"}
    assert out.loss.item() == pytest.approx(
        out.terms["recon"].item() + model.options.sparsity_weight * out.terms["sparsity"].item(), rel=1e-5)
    assert model.mean_activation(as_batch(x[:64])).shape == (16,)


def test_corruption_kinds():
    x = torch.full((200, 50), 0.5)
    gen = torch.Generator().manual_seed(0)
    noisy = corrupt(x, "gaussian", 0.3, gen)
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.05)
    masked = corrupt(x, "masking", 0.25, gen)
    assert (masked == 0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert corrupt(x, "gaussian", 2.0, gen, [0.0, 1.0]).min() >= 0.0


def test_denoising_gains_five_db_on_held_out_digits():
    x, _ = digits()
    train_idx, test_idx = split(len(x))
    torch.manual_seed(0)
    dae = build(DenoisingAutoencoder, latent_dim=32, hidden_dim=128,
                extra={"noise": "gaussian", "noise_level": 0.3, "output": "sigmoid"})
    torch.manual_seed(0)
    ae = build(DenseAutoencoder, latent_dim=32, hidden_dim=128, extra={"output": "sigmoid"})
    fit(dae, x[train_idx], epochs=25, lr=3e-3)
    fit(ae, x[train_idx], epochs=25, lr=3e-3)
    clean = x[test_idx]
    noisy = corrupt(clean, "gaussian", 0.3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        denoised = dae.generate(as_batch(noisy), ["array"])["array"].clamp(0, 1)
        plain = ae.reconstruct(as_batch(noisy))["array"].clamp(0, 1)
    before, after = psnr(noisy, clean).mean().item(), psnr(denoised, clean).mean().item()
    assert after - before >= 5.0, (before, after)
    assert after > psnr(plain, clean).mean().item() + 1.0, (after, psnr(plain, clean).mean().item())


def test_masking_noise_makes_it_robust_to_dropped_pixels():
    x, _ = digits()
    train_idx, test_idx = split(len(x))
    torch.manual_seed(0)
    dae = build(DenoisingAutoencoder, latent_dim=16, hidden_dim=64,
                extra={"noise": "masking", "noise_level": 0.3})
    torch.manual_seed(0)
    ae = build(DenseAutoencoder, latent_dim=16, hidden_dim=64)
    fit(dae, x[train_idx], epochs=15, lr=3e-3)
    fit(ae, x[train_idx], epochs=15, lr=3e-3)
    clean = x[test_idx]
    masked = corrupt(clean, "masking", 0.3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        dae_error = (dae.reconstruct(as_batch(masked))["array"] - clean).pow(2).mean().item()
        ae_error = (ae.reconstruct(as_batch(masked))["array"] - clean).pow(2).mean().item()
    assert dae_error < 0.8 * ae_error, (dae_error, ae_error)


def test_denoising_validation_noise_is_repeatable():
    x, _ = digits()
    model = build(DenoisingAutoencoder, latent_dim=8, hidden_dim=32).eval()
    with torch.no_grad():
        assert model(as_batch(x[:32])).loss == model(as_batch(x[:32])).loss


def test_option_errors():
    with pytest.raises(UsageError, match="sparse-ae.*sparsity"):
        build(SparseAutoencoder, extra={"sparsity": "l2"})
    with pytest.raises(UsageError, match="rho"):
        build(SparseAutoencoder, extra={"rho": 1.5})
    with pytest.raises(UsageError, match="noise"):
        build(DenoisingAutoencoder, extra={"noise": "salt"})
    with pytest.raises(UsageError, match="clip"):
        build(DenoisingAutoencoder, extra={"clip": [1, 0]})
    with pytest.raises(UsageError, match="hidden must be"):
        build(DenseAutoencoder, extra={"hidden": "64"})
    with pytest.raises(UsageError, match="unknown option.*rho"):
        build(DenseAutoencoder, extra={"rho": 0.1})
    assert build(DenseAutoencoder, extra={"hidden": [32, 16]}).encoder[2].out_features == 16
