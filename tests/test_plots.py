"""Plots in RUN/plots/: loss curves every epoch, model plots at the last (or every N-th) epoch,
valid PNGs, no disturbance of training, and a failing plot warns instead of stopping training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from clihelp import polyvae
from conftest import write_digits
from test_report import TINY_CONFIG, train_tiny, write_digits_with_audio

from polyvae.core.plugins import get_registry
from polyvae.core.run import build_model
from polyvae.core.training import METRICS, EpochReport, prepare_data
from polyvae.pipelines.plots import PlotWarning, is_heavy_epoch, write_epoch_plots
from polyvae.pipelines.report.figures import loss_curves, loss_terms
from polyvae.pipelines.training_run import build_config

HEAVY = {"latent.png", "cross_text_to_image.png"}
AUDIO_HEAVY = HEAVY | {"generated_audio.png", "interpolation.png"}


def fake_history(epochs: int) -> list[dict]:
    return [{"epoch": e, "seconds": 0.1, "train/loss": 100.0 / e, "validation/loss": 110.0 / e,
             "train/nll/image": 80.0 / e, "validation/nll/image": 85.0 / e, "train/nll/text": 9.0 / e,
             "validation/nll/text": 9.5 / e, "train/kl": 2.0 + e, "validation/kl": 2.1 + e, "train/beta": 0.2,
             "train/elbo": -100.0 / e}
            for e in range(1, epochs + 1)]


def untrained_report(tmp_path: Path, manifest: Path, epoch: int, total: int) -> EpochReport:
    """An EpochReport as the training loop hands it over, for a freshly built model."""
    (tmp_path / "tiny.toml").write_text(TINY_CONFIG)
    config = build_config(tmp_path / "tiny.toml", {"model": {"latent_dim": 4}, "train": {"epochs": total}})
    registry = get_registry()
    data = prepare_data(config, manifest, registry, fit=True)
    model = build_model(config, data.modalities, registry)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(config.to_json())
    (run_dir / METRICS).write_text("".join(json.dumps(h) + "\n" for h in fake_history(epoch)))
    return EpochReport(epoch, fake_history(epoch)[-1], model, data, run_dir)


def pngs(folder: Path) -> set[str]:
    for p in folder.iterdir():
        assert p.suffix == ".png", f"leftover {p.name}"     # atomic writes leave no temp files
        with Image.open(p) as img:
            assert img.width > 100 and img.height > 100
    return {p.name for p in folder.iterdir()}


def test_loss_curves_show_each_term():
    fig = loss_curves(fake_history(3))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["total loss (negative ELBO)", "reconstruction NLL per modality", "KL divergence"]
    labels = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
    assert labels[1] == ["train nll/image", "validation nll/image", "train nll/text", "validation nll/text"]
    assert labels[2] == ["train kl", "validation kl"]
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == [3.0, 4.0, 5.0]
    # the classic autoencoders log other terms: no ELBO, a reconstruction error, a penalty
    classic = [{"epoch": 1, "train/loss": 1.0, "train/recon": 0.9, "train/sparsity": 0.1, "validation/recon": 0.8}]
    assert loss_terms(classic) == [("total loss", ["loss"]), ("reconstruction error", ["recon"]),
                                   ("other terms", ["sparsity"])]


def test_heavy_plots_only_at_the_last_or_every_nth_epoch(tmp_path):
    assert [e for e in range(1, 31) if is_heavy_epoch(e, 30, 10)] == [10, 20, 30]
    manifest = write_digits(tmp_path / "data", n=40, size=16)
    report = untrained_report(tmp_path, manifest, epoch=3, total=30)
    assert write_epoch_plots(report) == []
    assert pngs(report.run_dir / "plots") == {"losses.png"}
    report.epoch = 30
    assert write_epoch_plots(report) == []
    assert pngs(report.run_dir / "plots") == {"losses.png"} | HEAVY


def test_audio_plots_leave_training_state_alone(tmp_path):
    manifest = write_digits_with_audio(tmp_path / "data", n=40)
    report = untrained_report(tmp_path, manifest, epoch=2, total=2)
    report.model.train()
    rng = torch.get_rng_state()
    assert write_epoch_plots(report) == []
    assert pngs(report.run_dir / "plots") == {"losses.png"} | AUDIO_HEAVY
    assert report.model.training, "plotting must hand the model back in training mode"
    assert torch.equal(torch.get_rng_state(), rng), "plotting must not move the training's random stream"


def test_training_writes_plots_and_a_failing_plot_only_warns(tmp_path, monkeypatch):
    from polyvae.core.mvae import MultimodalVAE

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(MultimodalVAE, "generate", broken)
    manifest = write_digits(tmp_path / "data", n=40, size=16)
    with pytest.warns(PlotWarning, match=r"cross text->image.*RuntimeError: boom"):
        run = train_tiny(tmp_path / "run", manifest, epochs=2)
    assert (run / "model.safetensors").exists()
    assert len((run / METRICS).read_text().splitlines()) == 2
    assert pngs(run / "plots") == {"losses.png", "latent.png"}


def test_the_interpolation_figure_says_what_it_shows(tmp_path, monkeypatch):
    import polyvae.pipelines.plots as plots

    titles = {}

    def keep_title(fig, path):
        titles[Path(path).name] = fig._suptitle.get_text() if fig._suptitle else ""
        fig.clf()
        return path

    monkeypatch.setattr(plots, "save_figure", keep_title)
    manifest = write_digits_with_audio(tmp_path / "data", n=40)
    report = untrained_report(tmp_path, manifest, epoch=2, total=2)
    assert write_epoch_plots(report) == []
    title = titles["interpolation.png"]
    assert title.startswith("Interpolation: the straight latent path from speaker ")
    assert "(\u03b1 = 0)" in title and "(\u03b1 = 1) in 8 steps" in title
    assert "the decoded image (top) and the decoded audio's spectrogram (bottom)" in title
