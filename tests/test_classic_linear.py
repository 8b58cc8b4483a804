"""linear-ae: gradient descent on squared error finds PCA's principal subspace on real digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from conftest import write_digits
from test_classic_support import build, digits, fit

from polyvae.core.config import RunConfig
from polyvae.core.errors import UsageError
from polyvae.core.plugins import get_registry
from polyvae.core.run import load_run
from polyvae.core.training import prepare_data, train
from polyvae.plugins.models.classic import LinearAutoencoder, compare_with_pca, principal_angles_degrees


def test_principal_angles_of_known_subspaces():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(10, 3)))
    mixed = basis @ rng.normal(size=(3, 3))                     # same span, other columns
    assert principal_angles_degrees(mixed, basis.T).max() < 1e-6
    assert principal_angles_degrees(mixed.T, basis.T).max() < 1e-6   # (k, n) weight accepted too
    other = np.eye(10)[:, 7:]                                    # a 3-d span ...
    inside = np.eye(10)[:, :3]
    assert np.allclose(principal_angles_degrees(other, inside.T), 90.0)
    tilted = inside.copy()
    tilted[:, 0] = np.cos(np.radians(30)) * np.eye(10)[0] + np.sin(np.radians(30)) * np.eye(10)[9]
    assert principal_angles_degrees(tilted, inside.T).max() == pytest.approx(30.0)


@pytest.mark.parametrize("k", [4, 10])
def test_learns_the_principal_subspace_of_digits(k):
    x, _ = digits()
    model = build(LinearAutoencoder, latent_dim=k, extra={"optimizer": "lbfgs", "lbfgs_iterations": 150})
    assert model.uses_backprop is False
    history = fit(model, x, epochs=2, batch_size=len(x))            # full-batch gradient descent
    result = compare_with_pca(model, x)
    assert result.max_angle_degrees < 1.0, result
    assert abs(result.relative_excess) < 0.01, result
    assert history[-1] == pytest.approx(result.model_mse, rel=1e-4)


def test_adam_on_minibatches_descends_towards_pca():
    x, _ = digits()
    model = build(LinearAutoencoder, latent_dim=4, extra={"optimizer": "loop"})
    assert model.uses_backprop is True
    before = compare_with_pca(model, x)
    fit(model, x, epochs=6, lr=1e-2)
    after = compare_with_pca(model, x)
    assert after.max_angle_degrees < before.max_angle_degrees - 20
    assert after.relative_excess < 0.25 * before.relative_excess


def test_running_mean_is_the_data_mean_after_an_epoch():
    x, _ = digits()
    model = build(LinearAutoencoder, latent_dim=4)
    present = torch.rand(len(x)) < 0.8
    fit(model, x, epochs=1, present=present)
    assert torch.allclose(model.data_mean, x[present].mean(0), atol=1e-5)
    assert int(model.rows_seen) == int(present.sum())


def test_refuses_a_code_wider_than_the_data():
    with pytest.raises(UsageError, match="latent-dim 8 exceeds the 5 values"):
        build(LinearAutoencoder, shape=(5,), latent_dim=8)


def test_decoder_basis_orientation_matches_pca_components():
    model = build(LinearAutoencoder, latent_dim=3)
    basis = model.decoder_basis()
    assert basis.shape == (64, 3)
    pca = PCA(3).fit(np.random.default_rng(0).normal(size=(50, 64)))
    assert principal_angles_degrees(basis, pca.components_).shape == (3,)


def test_through_the_training_loop(tmp_path):
    manifest = write_digits(tmp_path / "data", n=150, size=8, columns=("image", "label"))
    config = RunConfig()
    config.model.model, config.model.modalities, config.model.latent_dim = "linear-ae", ["image"], 4
    config.model.extra = {"optimizer": "lbfgs"}
    config.train.epochs, config.train.batch_size, config.train.device = 2, 1000, "cpu"
    config.modality_options = {"image": {"size": 8}}
    train(tmp_path / "run", manifest, config)
    run = load_run(tmp_path / "run")
    data = prepare_data(run.config, manifest, get_registry(), fit=False)
    result = compare_with_pca(run.model, data.train.data["image"])
    assert result.max_angle_degrees < 1.0 and abs(result.relative_excess) < 0.01, result


@pytest.mark.parametrize("k", [4, 8, 16])
def test_default_settings_reach_pca_and_training_says_how_close(tmp_path, k):
    """No optimizer, batch size or epochs set: full-batch L-BFGS on every row, started inside
    the data's span; 16x16 images resized from 8x8 digits are wide inputs with few directions
    of variance, the case where a random start stalled (issue 15)."""
    from polyvae.core.training import TrainingHooks
    from polyvae.core.verdict import read_verdict

    manifest = write_digits(tmp_path / "data", n=400, size=16, columns=("image", "label"))
    config = RunConfig()
    config.model.model, config.model.modalities, config.model.latent_dim = "linear-ae", ["image"], k
    config.train.device = "cpu"
    config.modality_options = {"image": {"size": 16}}
    said: list[str] = []
    model = train(tmp_path / "run", manifest, config, hooks=TrainingHooks(log=said.append, info=said.append))
    assert model.uses_backprop is False
    assert "--model linear-ae trains on all 360 training rows at once (--batch-size 64 is not used)" in said
    run = load_run(tmp_path / "run")
    data = prepare_data(run.config, manifest, get_registry(), fit=False)
    result = compare_with_pca(run.model, data.train.data["image"])
    assert result.max_angle_degrees < 1.0 and abs(result.relative_excess) < 0.01, result
    (note,) = [f for f in read_verdict(tmp_path / "run") if f.check == "pca"]
    assert note.level == "note" and note.figure == pytest.approx(result.max_angle_degrees, rel=1e-3)
    assert note.message in said
    assert note.message.startswith("linear-ae ended ") and \
        "degrees from PCA's principal subspace of the 360 training rows" in note.message


def test_a_run_far_from_pca_is_a_warning_that_says_what_to_change():
    x, _ = digits()
    model = build(LinearAutoencoder, latent_dim=4, extra={"optimizer": "loop"})     # untrained: far away
    from polyvae.core.dataset import TensorData
    (finding,) = model.training_verdict(TensorData({"array": x}, {"array": torch.ones(len(x), dtype=torch.bool)},
                                                   list(range(len(x)))), "cpu")
    assert finding.level == "warning" and finding.figure > 1.0
    assert "To get closer: train longer (--epochs), or set [model.extra] optimizer = \"lbfgs\"" in finding.message
