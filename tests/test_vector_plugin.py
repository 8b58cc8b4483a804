"""The separately packaged ``polyvae-vector`` plugin, installed with pip (see the Makefile).

It must be found through its entry point, read both cell forms, refuse bad cells, and
train, save and reload through the ordinary engine.
"""
from __future__ import annotations

import csv
import importlib.metadata as metadata
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polyvae.core import plugins
from polyvae.core.config import ModelConfig, RunConfig, TrainConfig
from polyvae.core.errors import BadInput
from polyvae.core.run import load_run
from polyvae.core.training import prepare_data, train

polyvae_vector = pytest.importorskip(
    "polyvae_vector", reason="pip install ./examples/polyvae-vector (make install does it)")
from polyvae_vector.modality import VectorModality  # noqa: E402


def test_found_through_its_entry_point_with_package_and_version():
    (ep,) = [e for e in metadata.entry_points(group="polyvae") if e.name == "vector"]
    assert ep.value == "polyvae_vector.plugin" and ep.dist.name == "polyvae-vector"
    registry = plugins.build_registry()
    assert registry.modality("vector") is VectorModality
    info = registry.info[("modality", "vector")]
    assert info.kind == "modality" and info.package == "polyvae-vector"
    assert info.version == metadata.version("polyvae-vector") == polyvae_vector.__version__
    assert "embeddings" in info.description
    assert not [e for e in registry.errors if "vector" in e.message()]
    # not a built-in: without entry points it is absent
    assert "vector" not in plugins.build_registry(entry_points=False).modalities


@pytest.mark.parametrize("cell", ["1 2.5 -3e2 4", "1,2.5,-3e2,4", "1; 2.5; -3e2; 4",
                                  "  1,\t2.5 ;-3e2\n4 ,", "1, 2.5, -3E+2, 4"])
def test_inline_cells(cell):
    values = VectorModality().read(cell, Path("."))
    np.testing.assert_array_equal(values, [1.0, 2.5, -300.0, 4.0])


def test_file_cells_npy_and_text(tmp_path):
    (tmp_path / "emb").mkdir()
    np.save(tmp_path / "emb" / "a.npy", np.array([0.5, -1.0, 2.0], dtype=np.float32))
    with open(tmp_path / "emb" / "b.NPY", "wb") as fh:      # np.save would append ".npy"
        np.save(fh, np.array([1, 2, 3], dtype=np.int64))
    (tmp_path / "c.csv").write_text("7,8,9\n")
    mod = VectorModality()
    np.testing.assert_array_equal(mod.read("emb/a.npy", tmp_path), [0.5, -1.0, 2.0])
    np.testing.assert_array_equal(mod.read(" emb/b.NPY ", tmp_path), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(mod.read("c.csv", tmp_path), [7.0, 8.0, 9.0])
    np.testing.assert_array_equal(mod.read(str(tmp_path / "c.csv"), Path("/elsewhere")), [7.0, 8.0, 9.0])


def bad_files(folder: Path) -> None:
    np.save(folder / "matrix.npy", np.zeros((2, 3)))
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(folder / "words.npy", np.array(["a", "b"]))
    np.save(folder / "empty.npy", np.zeros(0))
    np.save(folder / "nan.npy", np.array([1.0, np.nan]))
    (folder / "corrupt.npy").write_bytes(b"\x93NUMPY not really")
    np.savez(folder / "archive.npz", a=np.zeros(3))
    (folder / "archive.npz").rename(folder / "zipped.npy")
    (folder / "folder.npy").mkdir()


@pytest.mark.parametrize("cell, reason", [
    ("", "empty vector cell"),
    ("   ", "empty vector cell"),
    (",;", "no numbers"),
    ("1, two, 3", "'two' in cell is not a number"),
    ("1 nan 3", "non-finite value nan at position 2 of 3"),
    ("1 2 -inf", "non-finite value -inf at position 3"),
    ("1 1e39", "too large for float32"),
    ("missing.npy", "vector file not found"),
    ("folder.npy", "is a folder"),
    ("matrix.npy", r"shape \(2, 3\); expected a 1-D array"),
    ("objects.npy", "cannot read .* as a .npy array"),
    ("words.npy", "expected numbers"),
    ("empty.npy", "empty vector"),
    ("nan.npy", "non-finite value nan"),
    ("corrupt.npy", "cannot read .* as a .npy array"),
    ("zipped.npy", "not a single .npy array"),
    ("data.csv", "vector file not found"),
])
def test_bad_cells_are_refused_with_a_reason(tmp_path, cell, reason):
    bad_files(tmp_path)
    with pytest.raises(BadInput, match=reason):
        VectorModality().read(cell, tmp_path)


def test_length_is_fixed_from_the_data():
    mod = VectorModality()
    first = mod.read("1 2 3", Path("."))
    with pytest.raises(BadInput, match="vector has 2 values, but the first vector read has 3"):
        mod.read("1 2", Path("."))
    other = VectorModality()
    with pytest.raises(BadInput, match="different lengths: 3 values in 2 row"):
        other.fit([first, first, np.ones(4)])
    mod.fit([first, first * 2])
    with pytest.raises(BadInput, match="vector has 4 values, but the trained model has 3"):
        mod.read("1 2 3 4", Path("."))


def test_standardisation_round_trips_through_state(tmp_path):
    mod = VectorModality()
    raws = [np.array([1.0, 10.0, 5.0]), np.array([3.0, 30.0, 5.0]), np.array([5.0, 50.0, 5.0])]
    mod.fit(raws)
    x = mod.preprocess(raws)
    assert x.dtype == torch.float32 and x.shape == (3, 3)
    np.testing.assert_allclose(x.mean(0).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(x[:, :2].std(0, unbiased=False).numpy(), 1.0, atol=1e-6)
    assert torch.all(x[:, 2] == 0)                      # constant feature: centred only
    again = VectorModality()
    again.load_state(json.loads(json.dumps(mod.state())))
    torch.testing.assert_close(again.preprocess(raws), x)
    again.render(x[1], tmp_path / "v.csv")
    assert (tmp_path / "v.csv").read_text().count("\n") == 1
    np.testing.assert_allclose(again.read("v.csv", tmp_path), raws[1], rtol=1e-6)


def test_networks_and_likelihood_shapes():
    mod = VectorModality(hidden=16, private_dim=2)
    mod.fit([np.arange(5.0), np.arange(5.0) * 2])
    enc, dec = mod.build_encoder(3), mod.build_decoder(3 + 2)
    mu, logvar = enc(torch.zeros(4, 5))
    assert mu.shape == logvar.shape == (4, 5)
    params = dec(torch.zeros(4, 5))
    x = torch.randn(4, 5)
    ll = mod.log_likelihood(params, x)
    assert ll.shape == (4,)
    mean, lv = params
    expected = torch.distributions.Normal(mean, (0.5 * lv).exp()).log_prob(x).sum(1)
    torch.testing.assert_close(ll, expected)
    assert mod.generate(dec, torch.zeros(4, 5)).shape == (4, 5)


def write_clusters(folder: Path, n: int = 160, dim: int = 6, seed: int = 0) -> Path:
    """Two Gaussian clusters; odd rows inline, even rows as .npy files; a few empty cells."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (2, dim)) * 4
    (folder / "emb").mkdir(parents=True)
    rows = []
    for i in range(n):
        label = i % 2
        v = centres[label] + rng.normal(0, 0.7, dim) * np.linspace(0.5, 2.0, dim) + 100.0
        if i % 4 == 0:
            np.save(folder / "emb" / f"{i}.npy", v)
            cell = f"emb/{i}.npy"
        else:
            cell = (", " if i % 3 else " ").join(f"{x:.6f}" for x in v)
        rows.append({"vector": cell, "label": str(label)})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["vector", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_trains_saves_reloads_and_separates_the_clusters(tmp_path):
    manifest = write_clusters(tmp_path / "data")
    config = RunConfig(
        model=ModelConfig(modalities=["vector"], latent_dim=2, kl_warmup_epochs=1, hidden_dim=32),
        train=TrainConfig(epochs=4, batch_size=32, seed=0, device="cpu", learning_rate=3e-3),
        modality_options={"vector": {"hidden": 32}})
    registry = plugins.build_registry()
    model = train(tmp_path / "run", manifest, config, registry=registry)
    run_dir = tmp_path / "run"
    assert (run_dir / "config.json").exists() and (run_dir / "model.safetensors").exists()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["plugins"]["modality:vector"] == {"version": polyvae_vector.__version__,
                                                   "package": "polyvae-vector"}
    assert len(saved["modality_states"]["vector"]["mean"]) == 6
    assert saved["modality_states"]["vector"]["mean"][0] == pytest.approx(100, abs=6)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 4 and history[-1]["train/loss"] < history[0]["train/loss"]

    run = load_run(run_dir, registry=registry)
    data = prepare_data(run.config, manifest, registry, fit=False)
    rows = data.train.batch(slice(0, len(data.train)))
    with torch.no_grad():
        z = run.model.features(rows)
        torch.testing.assert_close(z, model.features(rows))
    labels = np.array([int(v) for v in data.train.metadata["label"]])
    z = z.numpy()
    a, b = z[labels == 0].mean(0), z[labels == 1].mean(0)
    projection = (z - (a + b) / 2) @ (b - a)
    accuracy = np.mean((projection > 0) == (labels == 1))
    spread = np.sqrt((z[labels == 0].var(0).sum() + z[labels == 1].var(0).sum()) / 2)
    assert accuracy >= 0.95, accuracy
    assert np.linalg.norm(b - a) > 2 * spread

    # decode a cluster's mean back to a CSV file in the original units, readable as a cell
    with torch.no_grad():
        x = run.model.decode(torch.from_numpy(np.stack([a, b])).float(), ["vector"])["vector"]
    run.modalities["vector"].render(x[0], tmp_path / "vector_0.csv")
    back = run.modalities["vector"].from_value(str(tmp_path / "vector_0.csv"))
    assert back.shape == (6,) and np.all(np.abs(back - 100) < 30)


def test_bad_length_in_a_manifest_names_the_row(tmp_path):
    manifest = write_clusters(tmp_path / "data", n=20)
    lines = manifest.read_text().splitlines()
    lines[6] = '"1,2,3",1'                         # data row 6
    manifest.write_text("\n".join(lines) + "\n")
    config = RunConfig(model=ModelConfig(modalities=["vector"], latent_dim=2),
                       train=TrainConfig(epochs=1, device="cpu"))
    with pytest.raises(BadInput, match=r"row 6, column 'vector': vector has 3 values, but the first vector read has 6"):
        train(tmp_path / "run", manifest, config, registry=plugins.build_registry())
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_cli_lists_the_plugin_with_its_package():
    import polyvae.pipelines.cli as cli_module       # polyvae itself: a failure, never a skip
    from click.testing import CliRunner

    result = CliRunner().invoke(cli_module.build_cli(), ["plugins"])
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.split()[:1] == ["vector"]]
    assert line.split()[1:4] == ["modality", polyvae_vector.__version__, "polyvae-vector"]
    result = CliRunner().invoke(cli_module.build_cli(), ["plugins", "--json"])
    listed = {p["name"]: p for p in json.loads(result.output)["plugins"]}
    assert listed["vector"]["package"] == "polyvae-vector"
