"""What every classic model shares: registration, missing rows, generation rules, run round trip,
anomaly scores."""
from __future__ import annotations

import pytest
import torch
from sklearn.metrics import roc_auc_score

from conftest import write_digits
from test_classic_support import ArrayModality, as_batch, build, digits, fit, split

from polyvae.core.config import ModelConfig, RunConfig
from polyvae.core.errors import UsageError
from polyvae.core.plugins import get_registry
from polyvae.core.run import load_run
from polyvae.core.training import train
from polyvae.plugins.models.classic import CLASSIC_MODELS, DenseAutoencoder

NAMES = ["linear-ae", "recirculation", "ae", "sparse-ae", "denoising-ae", "vae", "conv-ae"]
BY_NAME = {cls.name: cls for cls in CLASSIC_MODELS}


def test_every_model_is_registered():
    registry = get_registry()
    for name in NAMES:
        cls = registry.model(name)
        assert cls is BY_NAME[name] and cls.single_modality and cls.description
        assert registry.info[("model", name)].package == "polyvae"
    assert BY_NAME["recirculation"].uses_backprop is False


@pytest.mark.parametrize("name", NAMES)
def test_one_modality_only(name):
    mods = {"a": ArrayModality((8, 8)), "b": ArrayModality((8, 8))}
    with pytest.raises(UsageError, match=f"--model {name} takes exactly one modality"):
        BY_NAME[name](mods, ModelConfig(latent_dim=4))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "conv-ae"])
def test_refuses_integer_ids(name):
    with pytest.raises(UsageError, match=f"--model {name} needs continuous data; the 'array' modality"):
        build(BY_NAME[name], shape=(12,), discrete=True)


@pytest.mark.parametrize("name", NAMES)
def test_absent_rows_do_not_contribute(name):
    x, _ = digits(images=True)
    present = torch.tensor([True] * 10 + [False] * 6)
    results = []
    for fill in (0.0, 7.0):
        torch.manual_seed(0)
        model = build(BY_NAME[name], shape=(8, 8), latent_dim=4, hidden_dim=16)
        rows = x[:16].clone()
        rows[~present] = fill
        torch.manual_seed(1)
        out = model(as_batch(rows, present))
        if model.uses_backprop:
            out.loss.backward()
            state = [p.grad.clone() for p in model.parameters()]
        else:
            state = [p.detach().clone() for p in model.parameters()]
        results.append((out.loss.detach(), {k: v.detach() for k, v in out.terms.items()}, state))
    (loss_a, terms_a, state_a), (loss_b, terms_b, state_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    assert all(torch.allclose(terms_a[k], terms_b[k], atol=1e-6) for k in terms_a)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(state_a, state_b))


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_without_the_modality_costs_nothing(name):
    model = build(BY_NAME[name], shape=(8, 8), latent_dim=4, hidden_dim=16)
    out = model(as_batch(torch.rand(4, 8, 8), torch.zeros(4, dtype=torch.bool)))
    assert out.loss.item() == 0.0
    if model.uses_backprop:
        out.loss.backward()


def test_generation_rules_of_a_deterministic_autoencoder():
    model = build(DenseAutoencoder, latent_dim=4, hidden_dim=16).eval()
    x, _ = digits()
    with pytest.raises(UsageError, match="--model ae only reconstructs what it is given"):
        model.generate(as_batch(x[:2], torch.tensor([True, False])), ["array"])
    with pytest.raises(UsageError, match="trained on 'array' only"):
        model.generate(as_batch(x[:2]), ["image"])
    out = model.generate(as_batch(x[:2]), ["array"])["array"]
    assert torch.allclose(out, model.reconstruct(as_batch(x[:2]))["array"])
    codes = model.features(as_batch(x[:2]))
    assert torch.allclose(model.decode(codes, ["array"])["array"], out)
    errors = model.reconstruction_error(as_batch(x[:2]))["array"]
    assert errors.shape == (2,) and torch.allclose(errors, (out - x[:2]).pow(2).mean(1), atol=1e-6)


def test_option_types_are_checked():
    with pytest.raises(UsageError, match="hidden must be a list of int or null, got 12"):
        build(DenseAutoencoder, extra={"hidden": 12})
    with pytest.raises(UsageError, match="activation must be one of"):
        build(DenseAutoencoder, extra={"activation": "gelu"})
    model = build(DenseAutoencoder, extra={"hidden": [8], "output": "sigmoid"})
    assert model.options.hidden == [8] and model.options.output == "sigmoid"


def test_anomalies_nines_score_higher_after_training_on_zero_to_eight():
    x, y = digits()
    train_idx, test_idx = split(len(x))
    normal = train_idx[y[train_idx] != 9]
    torch.manual_seed(0)
    model = build(DenseAutoencoder, latent_dim=8, hidden_dim=64)
    fit(model, x[normal], epochs=30, lr=3e-3)
    with torch.no_grad():
        scores = model.reconstruction_error(as_batch(x[test_idx]))["array"]
    auc = roc_auc_score((y[test_idx] == 9).numpy(), scores.numpy())
    assert auc >= 0.80, auc


@pytest.fixture(scope="module")
def digit_manifest(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("classic") / "data", n=80, size=8, columns=("image", "label"))


@pytest.mark.parametrize("name", NAMES)
def test_trains_saves_and_reloads_on_images(name, digit_manifest, tmp_path):
    config = RunConfig()
    config.model.model, config.model.modalities = name, ["image"]
    config.model.latent_dim, config.model.hidden_dim = 4, 32
    config.train.epochs, config.train.batch_size, config.train.device = 2, 16, "cpu"
    config.modality_options = {"image": {"size": 8}}
    model = train(tmp_path / "run", digit_manifest, config)
    run = load_run(tmp_path / "run")
    images = torch.rand(3, 1, 8, 8)
    batch = as_batch(images)
    batch.data["image"], batch.present["image"] = batch.data.pop("array"), batch.present.pop("array")
    with torch.no_grad():
        again = run.model.reconstruct(batch)["image"]
        first = model.eval().reconstruct(batch)["image"]
        generated = run.model.generate(batch, ["image"], torch.Generator().manual_seed(0),
                                       sample=False)["image"]
    assert again.shape == (3, 1, 8, 8) and torch.allclose(again, first, atol=1e-6)
    assert generated.shape == (3, 1, 8, 8)
    run.modalities["image"].render(generated[0], tmp_path / "out.png")
    assert (tmp_path / "out.png").stat().st_size > 0
