"""The CLI end to end on a small real dataset: train, generate, reload, encode, evaluate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clihelp import polyvae
from conftest import write_digits

BIN = Path(sys.executable).parent / "polyvae"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    manifest = write_digits(root / "data", n=120, size=16)
    run = root / "run"
    config = root / "small.toml"
    config.write_text('[train]\nlearning_rate = 0.003\n[modality_options.image]\nsize = 16\n')
    result = polyvae("train", run, "--data", manifest, "--epochs", "2", "--latent-dim", "8",
                     "--batch-size", "32", "--seed", "1", "--device", "cpu", "--quiet", "--config", config)
    assert result.code == 0, result.err
    return root, manifest, run


def test_train_writes_the_run_directory(trained):
    _, _, run = trained
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "checkpoint/state.safetensors"):
        assert (run / name).exists(), name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["modalities"] == ["image", "text"]
    assert config["plugins"]["modality:image"]["package"] == "polyvae"
    assert config["modality_states"]["text"]["chars"]          # vocabulary saved with the run
    assert config["train"]["seed"] == 1
    assert config["train"]["learning_rate"] == 0.003                   # from --config
    assert config["modality_options"]["image"]["size"] == 16


def test_generate_writes_named_files(trained, tmp_path):
    _, manifest, run = trained
    r = polyvae("generate", run, "--given", "text=seven", "--to", "image", "--n", "3", "--out", tmp_path / "g")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["image_0.png", "image_1.png", "image_2.png"]
    assert Image.open(tmp_path / "g" / "image_0.png").size == (16, 16)
    r = polyvae("generate", run, "--given", f"image={manifest.parent / 'images' / '0003.png'}",
                "--out", tmp_path / "t")
    assert r.code == 0, r.err
    assert (tmp_path / "t" / "text_0.txt").read_text().strip() != ""
    r = polyvae("generate", run, "--n", "2", "--out", tmp_path / "prior")
    assert r.code == 0, r.err
    assert {p.name for p in (tmp_path / "prior").iterdir()} == {"image_0.png", "image_1.png", "text_0.txt", "text_1.txt"}


def test_run_reloads_in_a_fresh_process(trained, tmp_path):
    _, _, run = trained
    here = polyvae("generate", run, "--given", "text=three", "--to", "image", "--seed", "5",
                   "--out", tmp_path / "a")
    assert here.code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fresh = subprocess.run([str(BIN), "generate", str(run), "--given", "text=three", "--to", "image",
                            "--seed", "5", "--out", str(tmp_path / "b")], capture_output=True, text=True, env=env)
    assert fresh.returncode == 0, fresh.stderr
    a = np.asarray(Image.open(tmp_path / "a" / "image_0.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "b" / "image_0.png"), dtype=int)
    assert np.abs(a - b).max() <= 1


def test_encode_writes_one_row_per_manifest_row(trained, tmp_path):
    _, manifest, run = trained
    r = polyvae("encode", run, "--data", manifest, "--out", tmp_path / "z.npy")
    assert r.code == 0, r.err
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (120, 8) and np.isfinite(z).all()
    assert (tmp_path / "z.png").exists()
    r = polyvae("encode", run, "--data", manifest, "--out", tmp_path / "z.csv", "--no-plot")
    lines = (tmp_path / "z.csv").read_text().splitlines()
    assert lines[0].startswith("row,z0") and len(lines) == 121 and lines[1].startswith("1,")


def test_evaluate_json(trained):
    _, manifest, run = trained
    r = polyvae("evaluate", run, "--data", manifest, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["rows"] == 12                                 # the 10% held out
    assert set(result["coherence"]["1"]) == {"image->text", "text->image"}
    assert all(0.0 <= v <= 1.0 for v in result["coherence"]["1"].values())
    assert result["reconstruction"]["image"] > 0


def test_bad_usage_is_one_line_and_exit_2(trained, tmp_path):
    _, manifest, run = trained
    r = polyvae("generate", run, "--given", "video=x.mp4", "--out", tmp_path)
    assert r.code == 2 and r.err.count("\n") == 1 and "no modality 'video'" in r.err
    r = polyvae("train", tmp_path / "r", "--data", tmp_path / "missing.csv")
    assert r.code == 2 and "manifest not found" in r.err and "Traceback" not in r.err
    r = polyvae("generate", run, "--given", f"image={tmp_path / 'nope.png'}", "--out", tmp_path)
    assert r.code == 2 and "nope.png" in r.err and "not found" in r.err


def test_bad_row_stops_before_training_naming_file_and_row(tmp_path):
    manifest = write_digits(tmp_path / "d", n=20, size=16)
    (manifest.parent / "images" / "0004.png").write_text("this is not a png")
    r = polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", "1", "--quiet")
    assert r.code == 2
    assert "0004.png" in r.err and "row 5" in r.err and "not an image" in r.err
    assert not (tmp_path / "run" / "model.safetensors").exists()
    r = polyvae("train", tmp_path / "run2", "--data", manifest, "--epochs", "1", "--quiet",
                "--on-bad-input", "skip", "--latent-dim", "4")
    assert r.code == 0, r.err
    config = json.loads((tmp_path / "run2" / "config.json").read_text())
    assert config["data"]["skipped_rows"] == 1


@pytest.mark.parametrize("command", ["plugins", "data", "train", "generate", "encode", "evaluate", "demo",
                                     "interpolate", "anomalies", "report", "voice-match", "voice-morph"])
def test_every_command_has_help_with_an_example(command):
    r = polyvae(command, "--help")
    assert r.code == 0 and ("Example" in r.out or command == "data"), r.out


def test_plugins_lists_builtins():
    r = polyvae("plugins")
    assert r.code == 0
    for name in ("image", "text", "poe", "mvae"):
        assert any(line.split()[0] == name for line in r.out.splitlines()[1:] if line.strip())


def test_anomalies_scores_every_row_and_reports_auc(trained, tmp_path):
    _, manifest, run = trained
    r = polyvae("anomalies", run, "--data", manifest, "--anomalous-label", "9", "--out", tmp_path / "a.csv", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["rows"] == 120 and 0.0 <= summary["roc_auc"] <= 1.0
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "row,score,error_image,error_text,marked_anomalous" and len(lines) == 121
    r = polyvae("anomalies", run, "--data", manifest, "--anomalous-label", "x")
    assert r.code == 0 and "ROC AUC" not in r.out           # no row marked: no AUC


def test_evaluate_reports_a_linear_probe(trained):
    _, manifest, run = trained
    result = json.loads(polyvae("evaluate", run, "--data", manifest, "--json").out)
    assert 0.0 <= result["linear_probe_accuracy"] <= 1.0
    assert result["log_likelihood"]["k"] == 32 and result["log_likelihood"]["iwae"] < 0
