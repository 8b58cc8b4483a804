"""conv-ae: shapes for images and odd-sized 2-D maps, refusals, and learning on digits."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from test_classic_support import as_batch, build, digits, fit

from polyvae.core.errors import UsageError
from polyvae.plugins.models.classic import ConvAutoencoder


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 8, 8), (13, 21), (64, 87)])
def test_output_has_the_input_shape(shape):
    model = build(ConvAutoencoder, shape=shape, latent_dim=6, extra={"channels": [4, 8]})
    x = torch.rand(2, *shape)
    assert model.features(as_batch(x)).shape == (2, 6)
    assert model.reconstruct(as_batch(x))["array"].shape == (2, *shape)
    out = model(as_batch(x))
    assert out.loss.shape == () and torch.isfinite(out.loss)


def test_layers_are_strided_convolutions():
    model = build(ConvAutoencoder, shape=(13, 21), latent_dim=6, extra={"channels": [4, 8, 16]})
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16] and convs[0].in_channels == 1
    assert [d.out_channels for d in deconvs] == [8, 4, 1]
    assert all(c.stride == (2, 2) for c in convs + deconvs)
    assert model.padded == (16, 24) and model.code_grid == (16, 2, 3)


def test_sigmoid_output_stays_in_unit_range():
    model = build(ConvAutoencoder, shape=(1, 8, 8), latent_dim=4, extra={"output": "sigmoid"})
    with torch.no_grad():
        y = model.reconstruct(as_batch(torch.randn(3, 1, 8, 8) * 10))["array"]
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_refuses_vectors_and_integer_ids():
    with pytest.raises(UsageError, match="conv-ae.*'array'.*\\(64,\\)"):
        build(ConvAutoencoder, shape=(64,))
    with pytest.raises(UsageError, match="conv-ae.*'array'.*integer ids"):
        build(ConvAutoencoder, shape=(20,), discrete=True)
    with pytest.raises(UsageError, match="conv-ae"):
        build(ConvAutoencoder, shape=(2, 3, 8, 8))
    with pytest.raises(UsageError, match="channels"):
        build(ConvAutoencoder, shape=(8, 8), extra={"channels": []})


def test_learns_digit_images():
    x, _ = digits(images=True)
    mean_image_error = float((x - x.mean(0)).pow(2).mean())
    model = build(ConvAutoencoder, shape=(8, 8), latent_dim=8, extra={"channels": [16, 32]})
    history = fit(model, x, epochs=4, lr=3e-3, batch_size=32)
    assert history[-1] < 0.7 * history[0] and history[-1] < 0.5 * mean_image_error, history
