"""Latent paths: exact endpoints, convexity, constant-angle spherical steps; image interpolation CLI."""
from __future__ import annotations

import json

import torch

from clihelp import polyvae
from conftest import write_digits
from polyvae.pipelines.interpolation import alphas, lerp, slerp


def test_linear_path_is_convex_with_exact_endpoints():
    a, b = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 4.0, -1.0])
    path = lerp(a, b, alphas(5))
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path[2], (a + b) / 2)


def test_spherical_path_keeps_equal_angles_and_endpoints():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    path = slerp(a, b, alphas(5))
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    angles = torch.atan2(path[:, 1], path[:, 0])
    assert torch.allclose(angles.diff(), torch.full((4,), torch.pi / 8), atol=1e-6)
    assert torch.allclose(path.norm(dim=1), torch.linspace(1, 2, 5), atol=1e-6)
    assert torch.allclose(slerp(a, 3 * a, alphas(3))[1], 2 * a)        # parallel: falls back to lerp


def test_interpolate_two_images(tmp_path):
    manifest = write_digits(tmp_path / "d", n=60, size=16)
    config = tmp_path / "c.toml"
    config.write_text("[modality_options.image]\nsize = 16\n")
    assert polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", "1", "--latent-dim", "4",
                   "--config", config, "--quiet").code == 0
    images = manifest.parent / "images"
    r = polyvae("interpolate", tmp_path / "run", "--from", images / "0001.png", "--to", images / "0002.png",
                "--steps", "5", "--out", tmp_path / "path")
    assert r.code == 0, r.err
    record = json.loads((tmp_path / "path" / "path.json").read_text())
    assert record["alpha"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    d_from, d_to = record["latent_distance_to_from"], record["latent_distance_to_to"]
    assert d_from[0] == 0.0 and d_to[-1] == 0.0
    assert d_from == sorted(d_from) and d_to == sorted(d_to, reverse=True)
    assert [f"step_{k:02d}.png" for k in range(5)] == record["files"]
    assert (tmp_path / "path" / "strip.png").exists()
