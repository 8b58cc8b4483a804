"""``polyvae train --compile``: the compiled step trains like the eager one and the run reloads."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from clihelp import polyvae
from conftest import write_digits
from polyvae.core.device import cpp_compiler

needs_compiler = pytest.mark.skipif(cpp_compiler() is None,
                                    reason="torch.compile's CPU backend needs a C++ compiler (none found)")


def _losses(run):
    return [json.loads(line)["train/loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _digits_with_sung_clips(folder, n=48):
    """Digits (image + text, half the rows missing one of them) with a sung clip on most rows:
    every kind of graph the step compiles (conv, GRU, the voice latent, masks and gathers)."""
    manifest = write_digits(folder, n=n, size=8, paired=0.5)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    (folder / "clips").mkdir()
    rate, t = 8000, np.arange(4000) / 8000
    for i, row in enumerate(rows):
        if i % 4 == 3:
            row["audio"] = ""                          # audio missing too, on a quarter of the rows
            continue
        f0 = 200.0 * 2 ** (int(row["label"]) / 12)
        sf.write(folder / "clips" / f"{i}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), rate)
        row["audio"] = f"clips/{i}.wav"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "text", "audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _train_both(tmp_path, manifest, options="", train=""):
    """The loss curves of the same run trained eagerly and with ``--compile`` (``options``:
    TOML sections before ``[train]``, ``train``: lines in it)."""
    config = tmp_path / "c.toml"
    config.write_text(options + "[train]\nvalidation_fraction = 0.0\n" + train)    # 3 full batches: few graphs
    runs = {}
    for mode in ("eager", "compile"):
        extra = ["--compile"] if mode == "compile" else []
        r = polyvae("train", tmp_path / mode, "--data", manifest, "--epochs", "2", "--latent-dim", "4",
                    "--batch-size", "16", "--quiet", "--config", config, *extra)
        assert r.code == 0, r.err
        runs[mode] = _losses(tmp_path / mode)
    assert json.loads((tmp_path / "compile" / "config.json").read_text())["train"]["compile"] is True
    assert all(math.isfinite(v) for v in runs["compile"])
    return runs["eager"], runs["compile"]


@needs_compiler
def test_inductor_kernels_train_like_eager_and_the_run_generates(tmp_path):
    """The generated C++ kernels (the default backend) on the image networks: the same draws
    (fallback_random), the same curve up to the order of floating-point sums, a run that reloads."""
    manifest = write_digits(tmp_path / "data", n=48, size=8, columns=("image", "label"))
    eager, compiled = _train_both(tmp_path, manifest)
    assert compiled == pytest.approx(eager, rel=2e-3)
    r = polyvae("generate", tmp_path / "compile", "--to", "image", "--n", "1", "--out", tmp_path / "g")
    assert r.code == 0, r.err
    assert (tmp_path / "g" / "image_0.png").exists()


def test_every_network_traces_with_missing_modalities(tmp_path):
    """The whole step traced forward and backward (``aot_eager``: torch's kernels, no C++, so
    it checks the tracing in a minute where inductor's codegen takes five): image, text (the
    GRU breaks the graph), audio with the voice latent and its decoder's tuple output, and
    rows missing modalities (the objective's gathers)."""
    manifest = _digits_with_sung_clips(tmp_path / "data")
    eager, compiled = _train_both(
        tmp_path, manifest, options="[modality_options.audio]\nsample_rate = 8000\nduration = 0.5\nn_fft = 256\n"
                                    "hop_length = 128\nn_mels = 16\nwidth = 8\nhidden = 32\nprivate_dim = 2\n",
        train='compile_backend = "aot_eager"\n')
    assert compiled == pytest.approx(eager, rel=2e-3)
    r = polyvae("generate", tmp_path / "compile", "--given", "text=seven", "--to", "image,audio",
                "--n", "1", "--out", tmp_path / "g")
    assert r.code == 0, r.err
    assert (tmp_path / "g" / "audio_0.wav").exists() and (tmp_path / "g" / "image_0.png").exists()


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


def test_an_unknown_compile_backend_is_one_line_and_aot_eager_needs_no_compiler(tmp_path, monkeypatch):
    import torch

    from polyvae.core.device import check_compile_possible

    manifest = write_digits(tmp_path / "data", n=20, size=8)
    config = tmp_path / "c.toml"
    config.write_text('[train]\ncompile_backend = "inductr"\n')
    r = polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", "1", "--quiet", "--compile",
                "--config", config)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "unknown compile_backend 'inductr'; torch offers " in r.err and "aot_eager" in r.err
    assert not (tmp_path / "run" / "model.safetensors").exists()
    monkeypatch.setenv("PATH", str(tmp_path))          # no C++ compiler: only inductor needs one
    monkeypatch.delenv("CXX", raising=False)
    check_compile_possible(torch.device("cpu"), "aot_eager")
