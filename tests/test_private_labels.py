"""The voice latent told which singer is which: label fitting, the loss by hand, and training.

Clips whose length varies more than their timbre are the case this is for: without the
``speaker`` column's help the voice latent learns the length (the silence), not the voice.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import polyvae
from polyvae.core.dataset import TensorData
from polyvae.core.experts import GaussianExpert
from polyvae.core.labels import LabelHead, fit_label_names, label_ids
from polyvae.core.objective import private_label_loss
from polyvae.core.run import load_run
from polyvae.pipelines.run_data import held_out, read_rows
from polyvae.pipelines.voice.acceptance import match_accuracy
from polyvae.plugins.audio import AudioModality


def test_label_loss_by_hand():
    # centres (0, 0) and (2, 0); logits = -|mu - c|^2 / 2; a row pays its cross-entropy less
    # log(1 / 0.9), never below 0 (a row that names its label with p >= 0.9 pays nothing)
    private = {"audio": GaussianExpert(torch.tensor([[0.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [5.0, 5.0]]),
                                       torch.zeros(4, 2))}
    head = LabelHead(2, 2)
    with torch.no_grad():
        head.centres.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))       # sharpness starts at 1
    centres = {"audio": head}
    # row 0, label 0: logits (0, -2), CE log(1 + e^-2) = 0.1269 -> 0.0216
    # row 1, label 0: logits (-2, 0), CE log(1 + e^2) = 2.1269 -> 2.0216
    # row 2, label 0: logits (-2, -8), CE log(1 + e^-6) = 0.0025 -> 0
    # row 3 has no label (-1) and does not count
    loss, terms = private_label_loss(private, {"audio": torch.tensor([0, 0, 0, -1])}, centres)
    slack = math.log(1 / 0.9)
    expected = (math.log1p(math.exp(-2.0)) - slack + math.log1p(math.exp(2.0)) - slack + 0.0) / 3
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    assert float(terms["label_ce/audio"]) == pytest.approx(expected, rel=1e-6)
    # twice as sharp: row 1's logits are (-4, 0)
    with torch.no_grad():
        head.log_sharpness.fill_(math.log(2.0))
    loss, _ = private_label_loss(private, {"audio": torch.tensor([-1, 0, -1, -1])}, centres)
    assert float(loss.detach()) == pytest.approx(math.log1p(math.exp(4.0)) - slack, rel=1e-6)
    # no labelled row at all: zero, not NaN
    loss, _ = private_label_loss(private, {"audio": torch.tensor([-1, -1, -1, -1])}, centres)
    assert float(loss.detach()) == 0.0


def test_label_names_and_ids_come_from_rows_that_have_the_audio():
    audio = AudioModality(private_dim=4)
    data = TensorData({"audio": torch.zeros(5, 1)}, {"audio": torch.tensor([True, True, False, True, True])},
                      [1, 2, 3, 4, 5], {"speaker": ["bo", " ann ", "zed", "", "bo"]})
    names = fit_label_names(data, {"audio": audio})
    assert names == {"audio": ["ann", "bo"]}          # zed's row has no audio; blanks are no label
    assert label_ids(data, {"audio": audio}, names)["audio"].tolist() == [1, 0, -1, -1, 1]
    unseen = TensorData({"audio": torch.zeros(2, 1)}, {"audio": torch.ones(2, dtype=torch.bool)},
                        [1, 2], {"speaker": ["ann", "carla"]})
    assert label_ids(unseen, {"audio": audio}, names)["audio"].tolist() == [0, -1]
    # one singer, or no voice latent: nothing to tell apart
    assert fit_label_names(data.subset([0, 4]), {"audio": audio}) == {}
    assert fit_label_names(data, {"audio": AudioModality(private_dim=0)}) == {}


def _write_singers(folder, clips_per_singer: int = 24, seed: int = 0):
    """Three timbres (how fast the harmonics fade), random pitch, and lengths from 0.15 to
    0.95 s in a 1 s window: the length changes a spectrogram more than the timbre does."""
    rng = np.random.default_rng(seed)
    rate = 8000
    (folder / "clips").mkdir(parents=True)
    rows = []
    for name, decay in (("bright", 0.3), ("round", 1.2), ("dark", 2.5)):
        for k in range(clips_per_singer):
            f0 = rng.uniform(140, 280)
            length = int(rate * rng.uniform(0.15, 0.95))
            t = np.arange(length) / rate
            wave = sum(np.sin(2 * np.pi * f0 * h * t) / h ** decay for h in range(1, 12) if f0 * h < rate / 2)
            wave = 0.5 * wave / np.abs(wave).max() * np.hanning(length)
            path = f"clips/{name}_{k}.wav"
            sf.write(folder / path, wave.astype(np.float32), rate)
            rows.append({"audio": path, "speaker": name})
    order = rng.permutation(len(rows))
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["audio", "speaker"])
        writer.writeheader()
        writer.writerows(rows[i] for i in order)
    return folder / "manifest.csv"


def _train(root, manifest, name: str, supervision: float):
    config = root / f"{name}.toml"
    # the clip model without sibling swaps: the label term alone is what tells the singers apart
    config.write_text(f"[model]\nprivate_supervision = {supervision}\nprivate_from_sibling = false\n"
                      "[modality_options.audio]\nmodel = \"clip\"\nsample_rate = 8000\nn_mels = 32\nn_fft = 256\n"
                      "hop_length = 128\nwidth = 16\nhidden = 32\nprivate_dim = 4\n")
    result = polyvae("train", root / name, "--data", manifest, "--epochs", "25", "--latent-dim", "4",
                     "--batch-size", "16", "--config", config)
    assert result.code == 0, result.err
    run = load_run(root / name)
    rows = read_rows(run, manifest, progress=lambda x, _l: x)
    return run, held_out(run, rows)


@pytest.fixture(scope="module")
def singer_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels")
    manifest = _write_singers(root)
    return {name: _train(root, manifest, name, s) for name, s in (("told", 40.0), ("untold", 0.0))}


def test_the_speaker_column_makes_the_voice_latent_name_the_singer(singer_runs):
    told, (train_rows, _) = singer_runs["told"]
    assert json.loads((told.path / "config.json").read_text())["private_labels"] == {
        "audio": ["bright", "dark", "round"]}
    assert sorted(told.model.label_heads) == ["audio"]
    untold, (untold_train, _) = singer_runs["untold"]
    assert len(untold.model.label_heads) == 0
    told_acc = match_accuracy(told, train_rows, "audio")["accuracy"]
    untold_acc = match_accuracy(untold, untold_train, "audio")["accuracy"]
    assert told_acc >= 0.9 > untold_acc, (told_acc, untold_acc)


def test_a_run_with_singer_centres_reloads_and_resumes(singer_runs, tmp_path):
    told, _ = singer_runs["told"]
    again = load_run(told.path)
    torch.testing.assert_close(again.model.label_heads["audio"].centres, told.model.label_heads["audio"].centres)
    manifest = json.loads((told.path / "config.json").read_text())["data"]["manifest"]
    result = polyvae("train", told.path, "--data", manifest, "--epochs", "26", "--resume")
    assert result.code == 0, result.err
