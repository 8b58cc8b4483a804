"""``--log tensorboard``: event files a TensorBoard reader reads back, with the losses of every
epoch, sample images and texts, and the latent projector."""
from __future__ import annotations

import json

import pytest

from clihelp import polyvae
from conftest import write_digits

pytest.importorskip("tensorboard", reason="tensorboard is a dependency of polyvae; `pip install -e .` installs it")

SMALL = ('[train]\nnum_threads = 1\n[model]\nhidden_dim = 16\n'
         '[modality_options.image]\nsize = 8\nwidth = 4\nhidden = 16\n'
         '[modality_options.text]\nembed = 8\nhidden = 16\n')


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_event_files_are_written_and_read_back(tmp_path):
    manifest = write_digits(tmp_path / "data", n=60, size=8)
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    run = tmp_path / "run"
    r = polyvae("train", run, "--data", manifest, "--epochs", 3, "--latent-dim", 4, "--device", "cpu",
                "--config", config, "--log", "tensorboard", "--quiet")
    assert r.code == 0, r.err
    acc = _events(run / "tensorboard")
    tags = acc.Tags()
    losses = acc.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3]
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in acc.Scalars("validation/loss")] == pytest.approx(
        [h["validation/loss"] for h in history], rel=1e-5)
    assert {"image/real", "image/reconstructed", "image/from_text"} <= set(tags["images"])
    first = acc.Images("image/reconstructed")[0]
    assert first.step == 1 and first.width > 0 and first.height > 0
    assert any(t.startswith("text/from_image") for t in tags["tensors"])   # add_text is stored as a tensor
    projector = (run / "tensorboard" / "projector_config.pbtxt").read_text()
    assert "latent_means" in projector and "metadata.tsv" in projector and "sprite.png" in projector
    (tensors,) = (run / "tensorboard").glob("*/latent_means/tensors.tsv")
    rows = tensors.read_text().splitlines()
    assert len(rows) == 54 and len(rows[0].split("\t")) == 4                 # training rows x latent_dim


def test_an_unknown_logger_is_a_usage_error(tmp_path):
    import polyvae as api
    from polyvae.core.errors import UsageError

    manifest = write_digits(tmp_path / "data", n=12, size=8)
    with pytest.raises(UsageError, match="unknown --log wandb; choose from tensorboard"):
        api.train(tmp_path / "run", manifest, log="wandb", epochs=1, device="cpu", progress=False)
