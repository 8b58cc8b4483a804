"""The MVAE actually learns cross-modal generation on real handwritten digits (small, fast)."""
from __future__ import annotations

import json

import pytest

from clihelp import polyvae
from conftest import write_digits


@pytest.mark.parametrize("paired,floor", [(1.0, 0.9), (0.25, 0.85)])
def test_text_to_image_and_back_on_real_digits(tmp_path, paired, floor):
    manifest = write_digits(tmp_path / "data", n=600, size=16, paired=paired)
    config = tmp_path / "c.toml"
    config.write_text("[modality_options.image]\nsize = 16\n[train]\nnum_threads = 1\n")
    r = polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", "12", "--batch-size", "32", "--latent-dim", "16",
                "--config", config, "--quiet", "--device", "cpu")
    assert r.code == 0, r.err
    full = write_digits(tmp_path / "eval", n=600, size=16, paired=1.0)
    r = polyvae("evaluate", tmp_path / "run", "--data", full, "--json")
    assert r.code == 0, r.err
    coherence = json.loads(r.out)["coherence"]["1"]
    assert coherence["text->image"] >= floor, coherence
    assert coherence["image->text"] >= floor - 0.1, coherence
