"""The MVAE objective: subsets, annealing, balancing, and the subset ELBO against hand numbers."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.experts import ExpertStack, GaussianExpert
from polyvae.core.modality import Modality
from polyvae.core.mvae import MultimodalVAE
from polyvae.core.objective import SubsetSampler, beta_at, likelihood_weights, subset_elbo
from polyvae.plugins.fusion.poe import ProductOfExperts


class Scalar(Modality):
    """A 1-number modality: encoder given, decoder = identity, log p = -(h - x)^2."""

    name = "scalar"
    extension = "txt"

    def __init__(self, elements=1, **options):
        super().__init__(**options)
        self.elements = elements

    def read(self, cell, base_dir):
        return float(cell)

    def preprocess(self, raws):
        return torch.tensor(raws).view(-1, 1)

    def num_elements(self):
        return self.elements

    def build_encoder(self, latent_dim):
        class Enc(nn.Module):
            def forward(self, x):
                return x, torch.full_like(x, -20.0)      # (almost) a point mass at x
        return Enc()

    def build_decoder(self, input_dim):
        class Dec(nn.Module):
            def forward(self, h, x=None):
                return h[:, :1]
        return Dec()

    def log_likelihood(self, params, x):
        return -(params - x).pow(2).sum(1)

    def generate(self, decoder, h):
        return decoder(h)

    def render(self, x, path):
        Path(path).write_text(str(float(x)))


def test_subsets_joint_unimodal_and_random():
    sampler = SubsetSampler(3, k_random=2)
    torch.manual_seed(0)
    s = sampler.sample()
    assert s.shape == (1 + 3 + 2, 3)
    assert s[0].all()
    assert torch.equal(s[1:4], torch.eye(3, dtype=torch.bool))
    sizes = s[4:].sum(1)
    assert ((sizes >= 2) & (sizes <= 2)).all()       # intermediate size for M = 3
    assert SubsetSampler(2, k_random=5).sample().shape == (3, 2)   # no intermediate subsets exist
    assert SubsetSampler(1, k_random=1).sample().tolist() == [[True]]


def test_kl_annealing_is_linear_then_flat():
    cfg = ModelConfig(beta=2.0, kl_warmup_epochs=4)
    assert [beta_at(cfg, e) for e in (0, 1, 2, 4, 10)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    assert beta_at(ModelConfig(beta=0.5, kl_warmup_epochs=0), 0) == 0.5


def test_balanced_weights_equalise_sizes():
    mods = {"a": Scalar(elements=10), "b": Scalar(elements=1024)}
    w = likelihood_weights(mods, ModelConfig(reference_elements=256, likelihood_weights={"b": 2.0}))
    assert w["a"] == pytest.approx(25.6)
    assert w["b"] == pytest.approx(0.5)
    assert likelihood_weights(mods, ModelConfig(likelihood_weighting="none")) == {"a": 1.0, "b": 1.0}


def _model(k=0, reconstruct="all"):
    mods = {"a": Scalar(), "b": Scalar()}
    cfg = ModelConfig(latent_dim=1, likelihood_weighting="none", k_subsets=k, reconstruct=reconstruct)
    return MultimodalVAE(mods, cfg, fusion=ProductOfExperts())


def test_subset_elbo_matches_hand_computation():
    """Two point-mass experts at xa and xb; the PoE with the N(0,1) prior and logvar -20 experts
    is (almost) a point mass at their precision-weighted mean (std 5e-5), so every term is closed form."""
    model = _model()
    xa = torch.tensor([[1.0], [3.0]])
    xb = torch.tensor([[2.0], [0.0]])
    present = {"a": torch.tensor([True, True]), "b": torch.tensor([True, False])}
    batch = Batch({"a": xa, "b": xb}, present)
    stack, private = model.experts(batch)
    subsets = model.subsets.sample()                     # joint, {a}, {b}
    elbo, terms = subset_elbo(model, batch, stack, private, subsets, beta=1.0)

    def kl(mu, var):
        return 0.5 * (mu ** 2 + var - 1 - math.log(var))

    var = math.exp(-20)
    # row 0 has both: joint z = (1 + 2) / 2, {a}: z = 1, {b}: z = 2 (prior precision negligible)
    joint = -((1.5 - 1) ** 2 + (1.5 - 2) ** 2) - kl(1.5, var / 2)
    only_a = -((1 - 1) ** 2 + (1 - 2) ** 2) - kl(1.0, var)
    only_b = -((2 - 1) ** 2 + (2 - 2) ** 2) - kl(2.0, var)
    row0 = joint + only_a + only_b
    # row 1 has only a: the joint and {b} subsets are not complete for it; {a} reconstructs a
    row1 = -0.0 - kl(3.0, var)
    assert float(elbo) == pytest.approx((row0 + row1) / 2, rel=1e-4)
    assert float(terms["beta"]) == 1.0


def _kl(mu, var):
    return 0.5 * (mu ** 2 + var - 1 - math.log(var))


@pytest.mark.parametrize("reconstruct", ["all", "subset"])
@pytest.mark.parametrize("paired", [True, False], ids=["paired", "row-1-lacks-b"])
def test_reconstruct_setting_matches_hand_computation(reconstruct, paired):
    """"subset" (Wu & Goodman) drops the cross terms: {a} reconstructs only a, {b} only b.
    Fully paired batches take the no-gather path of the objective, the others the gather one."""
    model = _model(reconstruct=reconstruct)
    x = {"a": torch.tensor([[1.0], [3.0]]), "b": torch.tensor([[2.0], [0.0]])}
    present = {"a": torch.tensor([True, True]), "b": torch.tensor([True, paired])}
    batch = Batch(x, present, complete=paired)
    stack, private = model.experts(batch)
    elbo, _ = subset_elbo(model, batch, stack, private, model.subsets.sample(), beta=1.0,
                          reconstruct=reconstruct)
    var = math.exp(-20)
    cross = 1.0 if reconstruct == "all" else 0.0

    def row(a, b):
        joint = -((a + b) / 2 - a) ** 2 - ((a + b) / 2 - b) ** 2 - _kl((a + b) / 2, var / 2)
        return joint - cross * (a - b) ** 2 - _kl(a, var) - cross * (b - a) ** 2 - _kl(b, var)

    row1 = row(3.0, 0.0) if paired else -_kl(3.0, var)
    assert float(elbo) == pytest.approx((row(1.0, 2.0) + row1) / 2, rel=1e-4)


def test_unknown_reconstruct_setting_is_refused():
    from polyvae.core.errors import UsageError

    with pytest.raises(UsageError, match="reconstruct setting 'some'"):
        _model(reconstruct="some")


def test_missing_modality_rows_get_no_gradient_from_absent_terms():
    model = _model()
    x = torch.randn(4, 1)
    batch = Batch({"a": x, "b": torch.zeros(4, 1)},
                  {"a": torch.ones(4, dtype=torch.bool), "b": torch.zeros(4, dtype=torch.bool)})
    out = model(batch, epoch=10)
    assert torch.isfinite(out.loss)
    assert "nll/b" not in out.terms and "nll/a" in out.terms


def test_shared_decoder_is_one_backbone_with_small_heads():
    from polyvae.plugins.image.modality import ImageModality
    from polyvae.plugins.text.modality import TextModality
    image, text = ImageModality(size=8), TextModality()
    image.load_state({"channels": 1, "size": 8})
    text.fit(["one", "two"])
    cfg = ModelConfig(latent_dim=4, hidden_dim=32, shared_decoder=True)
    model = MultimodalVAE({"image": image, "text": text}, cfg, fusion=ProductOfExperts())
    assert model.backbone is not None
    assert model.decoders["image"].fc[0].in_features == 32         # heads read the backbone
    separate = MultimodalVAE({"image": image, "text": text}, ModelConfig(latent_dim=4), fusion=ProductOfExperts())
    assert separate.backbone is None and separate.decoders["image"].fc[0].in_features == 4
    batch = Batch({"image": torch.rand(3, 1, 8, 8), "text": text.preprocess(["one", "two", "one"])},
                  {"image": torch.ones(3, dtype=torch.bool), "text": torch.ones(3, dtype=torch.bool)})
    out = model(batch, epoch=1.0)
    out.loss.backward()
    assert model.backbone.net[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
def test_paired_fast_path_equals_the_masked_path(fusion):
    """A batch promised complete skips the masks and gathers; loss and gradients must not move.
    Three modalities (the third a second image) so a random subset is sampled too."""
    from polyvae.core.plugins import get_registry
    from polyvae.plugins.image.modality import ImageModality
    from polyvae.plugins.text.modality import TextModality

    image, sketch, text = ImageModality(size=8), ImageModality(size=8), TextModality()
    for m in (image, sketch):
        m.load_state({"channels": 1, "size": 8})
    text.fit(["one", "two"])
    torch.manual_seed(0)
    model = MultimodalVAE({"image": image, "sketch": sketch, "text": text},
                          ModelConfig(latent_dim=4, k_subsets=2), fusion=get_registry().fusion(fusion)())
    data = {"image": torch.rand(5, 1, 8, 8), "sketch": torch.rand(5, 1, 8, 8),
            "text": text.preprocess(["one", "two", "one", "two", "two"])}
    present = {m: torch.ones(5, dtype=torch.bool) for m in data}
    results = []
    for complete in (False, True):
        model.zero_grad()
        torch.manual_seed(1)
        out = model(Batch(data, present, complete=complete), epoch=2.5)
        out.loss.backward()
        results.append((out.loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (masked, masked_grads), (dense, dense_grads) = results
    torch.testing.assert_close(dense, masked, rtol=1e-6, atol=1e-5)
    for a, b in zip(dense_grads, masked_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=5e-5)     # summation order only


def test_siblings_share_the_label_and_are_other_rows():
    from polyvae.core.objective import siblings

    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, -1, 0])
    for _ in range(20):
        pick = siblings(labels)
        for b, p in enumerate(pick.tolist()):
            if labels[b] in (0, 1):
                assert p != b and labels[p] == labels[b]
            else:                    # alone with its label (2), or unlabelled: itself
                assert p == b
