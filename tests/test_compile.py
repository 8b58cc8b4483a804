"""``polyvae train --compile``: the compiled step trains like the eager one and the run reloads."""
from __future__ import annotations

import json
import math

import pytest

from clihelp import polyvae
from conftest import write_digits


def _losses(run):
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("paired", [1.0, 0.5], ids=["paired", "half-paired"])
def test_compiled_training_follows_the_eager_loss_curve(tmp_path, paired):
    manifest = write_digits(tmp_path / "data", n=50, size=8, paired=paired)
    runs = {}
    for mode in ("eager", "compile"):
        run = tmp_path / mode
        extra = ["--compile"] if mode == "compile" else []
        r = polyvae("train", run, "--data", manifest, "--epochs", "2", "--latent-dim", "4",
                    "--batch-size", "16", "--quiet", *extra)
        assert r.code == 0, r.err
        runs[mode] = _losses(run)
    assert json.loads((tmp_path / "compile" / "config.json").read_text())["train"]["compile"] is True
    eager, compiled = runs["eager"], runs["compile"]
    assert all(math.isfinite(v) for v in compiled)
    # same seeds, same draws; only the order of floating-point sums differs
    assert compiled == pytest.approx(eager, rel=2e-3)
    r = polyvae("generate", tmp_path / "compile", "--given", "text=seven", "--to", "image",
                "--n", "1", "--out", tmp_path / "g")
    assert r.code == 0, r.err
