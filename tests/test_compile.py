"""``polyvae train --compile``: the compiled step trains like the eager one and the run reloads."""
from __future__ import annotations

import json
import math

import pytest

from clihelp import polyvae
from conftest import write_digits
from polyvae.core.device import cpp_compiler

needs_compiler = pytest.mark.skipif(cpp_compiler() is None,
                                    reason="torch.compile's CPU backend needs a C++ compiler (none found)")


def _losses(run):
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_compiler
@pytest.mark.parametrize("paired", [1.0, 0.5], ids=["paired", "half-paired"])
def test_compiled_training_follows_the_eager_loss_curve(tmp_path, paired):
    manifest = write_digits(tmp_path / "data", n=48, size=8, paired=paired)
    config = tmp_path / "c.toml"
    config.write_text("[train]\nvalidation_fraction = 0.0\n")     # 3 full batches: fewer graphs to compile
    runs = {}
    for mode in ("eager", "compile"):
        run = tmp_path / mode
        extra = ["--compile"] if mode == "compile" else []
        r = polyvae("train", run, "--data", manifest, "--epochs", "2", "--latent-dim", "4",
                    "--batch-size", "16", "--quiet", "--config", config, *extra)
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


@needs_compiler
def test_compiled_training_with_the_voice_conditioned_audio_decoder(tmp_path):
    """Audio brings the voice latent and its decoder's tuple output into the compiled graph."""
    import csv

    import numpy as np
    import soundfile as sf

    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    rows, rate = [], 8000
    t = np.arange(rate // 2) / rate
    for i in range(24):
        f0 = (220.0, 330.0)[i % 2] * (1 + 0.02 * (i % 3))
        sf.write(data / "clips" / f"{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), rate)
        rows.append({"audio": f"clips/{i}.wav", "text": ("low", "high")[i % 2]})
    with open(data / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["audio", "text"])
        writer.writeheader()
        writer.writerows(rows)
    config = tmp_path / "c.toml"
    config.write_text("[modality_options.audio]\nsample_rate = 8000\nduration = 0.5\nn_fft = 256\n"
                      "hop_length = 128\nn_mels = 16\nwidth = 8\nhidden = 32\nprivate_dim = 2\n"
                      "[train]\nvalidation_fraction = 0.0\n")      # 3 full batches: one graph to compile
    losses = {}
    for mode in ("eager", "compile"):
        extra = ["--compile"] if mode == "compile" else []
        r = polyvae("train", tmp_path / mode, "--data", data / "manifest.csv", "--epochs", "2",
                    "--latent-dim", "4", "--batch-size", "8", "--quiet", "--config", config, *extra)
        assert r.code == 0, r.err
        losses[mode] = _losses(tmp_path / mode)
    assert losses["compile"] == pytest.approx(losses["eager"], rel=2e-3)


def test_compile_without_a_cpp_compiler_is_one_line(tmp_path, monkeypatch):
    manifest = write_digits(tmp_path / "data", n=20, size=8)
    monkeypatch.setenv("PATH", str(tmp_path))          # no g++, clang++ or c++ to be found
    monkeypatch.delenv("CXX", raising=False)
    r = polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", "1", "--device", "cpu",
                "--quiet", "--compile")
    assert r.code == 2
    assert r.err.strip().splitlines() == ["Error: --compile on CPU needs a C++ compiler (g++ or clang++; "
                                          "or set CXX) and none was found; install one or train without "
                                          "--compile"]
