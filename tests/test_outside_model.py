"""The model contract holds for a model written outside polyvae: ``average-ae`` of the
separately installed ``polyvae-vector`` package (examples/) is trained, generates, encodes,
evaluates (with its own figures) and gets a report, through the CLI and the Python API,
with nothing in pipelines/ knowing it exists."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clihelp import polyvae

pytest.importorskip("polyvae_vector", reason="pip install ./examples/polyvae-vector (make install does it)")

ROOT = Path(__file__).resolve().parents[1]


def test_the_plugin_registers_a_model_and_pipelines_never_name_it():
    from polyvae.core.plugins import build_registry
    from polyvae_vector.average import AverageAutoencoder

    registry = build_registry()
    assert registry.model("average-ae") is AverageAutoencoder
    assert registry.info[("model", "average-ae")].package == "polyvae-vector"
    for path in (ROOT / "pipelines").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "average-ae" not in text and "polyvae_vector" not in text, path


@pytest.mark.slow
def test_outside_model_through_the_cli(tmp_path, digits_manifest):
    run = tmp_path / "run"
    r = polyvae("train", run, "--data", digits_manifest, "--model", "average-ae", "--modalities", "image,text",
                "--epochs", "2", "--quiet")
    assert r.code == 0, r.err
    config = json.loads((run / "config.json").read_text())
    assert config["plugins"]["model:average-ae"]["package"] == "polyvae-vector"
    r = polyvae("generate", run, "--given", "text=seven", "--to", "image", "--n", "2", "--out", tmp_path / "gen")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["image_0.png", "image_1.png"]
    r = polyvae("encode", run, "--data", digits_manifest, "--out", tmp_path / "z.npy", "--no-plot")
    assert r.code == 0, r.err
    assert np.load(tmp_path / "z.npy").shape == (120, 32)
    r = polyvae("evaluate", run, "--data", digits_manifest, "--json")
    assert r.code == 0, r.err
    figures = json.loads(r.out)
    assert -1.0 <= figures["code_agreement"]["image-text"] <= 1.0         # the model's own figure
    assert "text->image" in figures["coherence"]["1"]
    assert "log_likelihood" not in figures and "joint_coherence" not in figures   # not declared
    r = polyvae("generate", run, "--n", "2", "--to", "image", "--out", tmp_path / "prior")
    assert r.code == 2 and "--model average-ae cannot sample from a prior" in r.err
    r = polyvae("report", run)
    assert r.code == 0, r.err
    html = (run / "report.html").read_text()
    assert "average-ae" in html and 'class="warn"' not in html
    r = polyvae("interpolate", run, "--from", digits_manifest.parent / "images" / "0000.png",
                "--to", digits_manifest.parent / "images" / "0001.png", "--steps", "4", "--out", tmp_path / "path")
    assert r.code == 0, r.err
    assert (tmp_path / "path" / "strip.png").exists()


@pytest.mark.slow
def test_outside_model_through_the_api(tmp_path, digits_manifest):
    from PIL import Image

    import polyvae

    run = polyvae.train(tmp_path / "run", data=digits_manifest, model="average-ae", modalities=["image", "text"],
                        epochs=2, progress=False)
    out = run.generate(given=[{"text": "seven"}, {"image": digits_manifest.parent / "images" / "0003.png"}],
                       to=["image", "text"], n=2)
    assert len(out["image"]) == 4 and isinstance(out["image"][0], Image.Image)
    assert len(out["text"]) == 4 and all(isinstance(t, str) for t in out["text"])
    assert run.encode(digits_manifest).shape == (120, 32)
    figures = run.evaluate(digits_manifest)
    assert "code_agreement" in figures
    assert run.report().is_file()
    with pytest.raises(polyvae.UsageError, match="cannot"):
        run.model.log_likelihood(None)
