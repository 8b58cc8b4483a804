"""recirculation: the 2-1-2 worked example, the local rule, no backprop, and learning on digits."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import write_digits
from test_classic_support import as_batch, build, digits, fit, recon_error, split

from polyvae.core.config import RunConfig
from polyvae.core.errors import UsageError
from polyvae.core.training import train
from polyvae.plugins.models.classic import Recirculation

WORKED = {"units": "linear", "regression": 0.0, "eta": 0.1, "bias": False}


def worked_example(**extra) -> Recirculation:
    model = build(Recirculation, shape=(2,), latent_dim=1, extra={**WORKED, **extra})
    with torch.no_grad():
        model.W1.copy_(torch.tensor([[0.1], [-0.1]]))
        model.W2.copy_(torch.tensor([[0.2, -0.3]]))
    return model


def test_worked_example_forward_numbers():
    model = worked_example()
    p = model.passes(torch.tensor([[1.0, 0.0]]))
    assert p.h1.item() == pytest.approx(0.1)
    assert p.y2.tolist()[0] == pytest.approx([0.02, -0.03])
    assert p.h3.item() == pytest.approx(0.005)
    assert p.y4.tolist()[0] == pytest.approx([0.001, -0.0015])


def test_worked_example_update_follows_the_rule():
    model = worked_example()
    x = torch.tensor([[1.0, 0.0]])
    deltas = model.updates(x, model.passes(x))
    # dW2 = eta h1 (x - y2) = 0.1 * 0.1 * [0.98, 0.03]; dW1 = eta y2 (h1 - h3) = 0.1 * 0.095 * [0.02, -0.03]
    assert deltas["W2"].tolist()[0] == pytest.approx([0.0098, 0.0003])
    assert [r[0] for r in deltas["W1"].tolist()] == pytest.approx([0.00019, -0.000285])
    model.train()
    model(as_batch(x))
    assert [r[0] for r in model.W1.tolist()] == pytest.approx([0.10019, -0.100285])
    assert model.W2.tolist()[0] == pytest.approx([0.2098, -0.2997])
    # the published "updated W1 = [[0.109995], [-0.0999925]]" is not what the rule gives
    assert model.W1[0, 0].item() != pytest.approx(0.109995, abs=1e-4)


def test_regression_mixes_the_original_into_the_second_pass():
    model = worked_example(regression=0.75)
    p = model.passes(torch.tensor([[1.0, 0.0]]))
    assert p.y2.tolist()[0] == pytest.approx([0.75 + 0.25 * 0.02, 0.25 * -0.03])
    assert p.h3.item() == pytest.approx(0.1 * p.y2[0, 0].item() - 0.1 * p.y2[0, 1].item())


def test_sigmoid_units():
    model = worked_example(units="sigmoid")
    x = torch.tensor([[1.0, 0.0]])
    p = model.passes(x)
    h1 = torch.sigmoid(torch.tensor(0.1))
    y2 = torch.sigmoid(h1 * torch.tensor([0.2, -0.3]))
    assert p.h1.item() == pytest.approx(h1.item())
    assert p.y2[0].tolist() == pytest.approx(y2.tolist())
    assert p.h3.item() == pytest.approx(torch.sigmoid(0.1 * y2[0] - 0.1 * y2[1]).item())


def test_no_backprop_and_no_update_in_eval_mode():
    x, _ = digits()
    model = build(Recirculation, latent_dim=8)
    assert model.uses_backprop is False
    assert not any(p.requires_grad for p in model.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    out = model(as_batch(x[:32]))
    assert out.loss.grad_fn is None and not out.loss.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.train()
    model(as_batch(x[:32]))
    assert not torch.equal(before["W1"], model.W1) and not torch.equal(before["W2"], model.W2)


def test_absent_rows_do_not_change_the_update():
    x, _ = digits()
    present = torch.tensor([True] * 20 + [False] * 12)
    updates = []
    for fill in (0.0, 1.0):
        torch.manual_seed(0)
        model = build(Recirculation, latent_dim=8)
        rows = x[:32].clone()
        rows[~present] = fill
        model.train()
        out = model(as_batch(rows, present))
        updates.append((out.loss, model.W1.clone(), model.W2.clone()))
    assert torch.equal(updates[0][0], updates[1][0])
    assert torch.allclose(updates[0][1], updates[1][1]) and torch.allclose(updates[0][2], updates[1][2])


class Backprop(torch.nn.Module):
    """The same sigmoid network, trained by backpropagating the squared error."""

    def __init__(self, twin: Recirculation):
        super().__init__()
        self.W1 = torch.nn.Parameter(twin.W1.detach().clone())
        self.W2 = torch.nn.Parameter(twin.W2.detach().clone())
        self.b = torch.nn.Parameter(twin.b.detach().clone())
        self.c = torch.nn.Parameter(twin.c.detach().clone())

    def forward(self, x):
        return torch.sigmoid(torch.sigmoid(x @ self.W1 + self.c) @ self.W2 + self.b)


def test_reconstruction_error_falls_on_digits_like_backprop():
    x, _ = digits()
    train_idx, test_idx = split(len(x))
    model = build(Recirculation, latent_dim=16)
    twin = Backprop(model)
    start = recon_error(model, x[test_idx])
    history = fit(model, x[train_idx], epochs=8)
    end = recon_error(model, x[test_idx])
    assert all(b <= a * 1.02 for a, b in zip(history, history[1:])), history
    assert end < 0.6 * start, (start, end)

    opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        for idx in torch.randperm(len(train_idx), generator=gen).split(64):
            xb = x[train_idx][idx]
            loss = (twin(xb) - xb).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        backprop_end = float((twin(x[test_idx]) - x[test_idx]).pow(2).mean())
    assert end < 1.5 * backprop_end, (end, backprop_end)


def test_through_the_training_loop(tmp_path):
    manifest = write_digits(tmp_path / "data", n=150, size=8, columns=("image", "label"))
    config = RunConfig()
    config.model.model, config.model.modalities, config.model.latent_dim = "recirculation", ["image"], 8
    config.train.epochs, config.train.batch_size, config.train.device = 4, 16, "cpu"
    config.modality_options = {"image": {"size": 8}}
    model = train(tmp_path / "run", manifest, config)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    recon = [line["train/recon"] for line in lines]
    assert recon[-1] < 0.8 * recon[0], recon
    assert isinstance(model, Recirculation)


def test_option_errors():
    with pytest.raises(UsageError, match="regression"):
        build(Recirculation, extra={"regression": 1.0})
    with pytest.raises(UsageError, match="units"):
        build(Recirculation, extra={"units": "tanh"})
    with pytest.raises(UsageError, match="unknown option"):
        build(Recirculation, extra={"learning_rate": 0.1})
