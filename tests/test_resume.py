"""Crash safety: kill -9 mid-run, --resume, and the same weights as a run never interrupted;
a diverging run stops with a clear message and keeps its last good epoch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clihelp import polyvae
from conftest import write_digits

from polyvae.core import atomic
from polyvae.core.checkpoint import TENSORS, read_checkpoint
from polyvae.core.mvae import MultimodalVAE
from polyvae.core.run import load_run

BIN = Path(sys.executable).parent / "polyvae"
EPOCHS = 8
SMALL = ('[train]\nnum_threads = 1\nlr_schedule = "cosine"\nlearning_rate = 0.003\n'
         '[model]\nhidden_dim = 32\n'
         '[modality_options.image]\nsize = 16\nwidth = 8\nhidden = 32\n'
         '[modality_options.text]\nembed = 16\nhidden = 32\n')


def _args(run: Path, manifest: Path, config: Path, epochs: int = EPOCHS) -> list[str]:
    return ["train", str(run), "--data", str(manifest), "--epochs", str(epochs), "--latent-dim", "6",
            "--batch-size", "16", "--seed", "11", "--device", "cpu", "--quiet", "--config", str(config)]


def _metric_lines(run: Path) -> int:
    try:
        return sum(1 for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip())
    except FileNotFoundError:
        return 0


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch):
    """Plots cost seconds and draw nothing that shapes the weights (training re-seeds every
    step; see test_validation_leaves_the_rng_alone); the killed subprocess still draws them."""
    import polyvae.pipelines.plots as plots
    monkeypatch.setattr(plots, "write_epoch_plots", lambda report: [])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    manifest = write_digits(root / "data", n=60, size=16, paired=0.8)
    config = root / "small.toml"
    config.write_text(SMALL)
    return root, manifest, config


def test_kill_9_then_resume_ends_with_the_same_weights(data, tmp_path):
    root, manifest, config = data
    # the reference: the same command, never interrupted
    reference = tmp_path / "reference"
    r = polyvae(*_args(reference, manifest, config))
    assert r.code == 0, r.err

    # the victim: a real process, SIGKILLed once it has finished at least one epoch
    victim = tmp_path / "victim"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(BIN), *_args(victim, manifest, config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _metric_lines(victim) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive, f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    proc.stderr.close()
    done = _metric_lines(victim)
    assert 1 <= done < EPOCHS, done

    # what a kill leaves is loadable: a complete checkpoint and a model of a complete epoch
    tensors, meta = read_checkpoint(victim / "checkpoint")
    assert 1 <= meta["epoch"] < EPOCHS
    assert load_run(victim).model is not None

    r = polyvae(*_args(victim, manifest, config), "--resume")
    assert r.code == 0, r.err
    assert f"resuming after epoch {meta['epoch']}" in r.err

    want, got = load_file(str(reference / "model.safetensors")), load_file(str(victim / "model.safetensors"))
    assert want.keys() == got.keys()
    different = [k for k in want if not torch.equal(want[k], got[k])]
    assert not different, f"{len(different)} tensors differ after resume, e.g. {different[:3]}"

    # the optimiser, scheduler and the metrics of every epoch match too
    ref_tensors, ref_meta = read_checkpoint(reference / "checkpoint")
    assert all(torch.equal(ref_tensors[k], tensors_k) for k, tensors_k in
               read_checkpoint(victim / "checkpoint")[0].items() if k.startswith("optim."))
    assert read_checkpoint(victim / "checkpoint")[1]["scheduler"] == ref_meta["scheduler"]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("seconds", "examples_per_second")}
    ref_lines = (reference / "metrics.jsonl").read_text().splitlines()
    got_lines = (victim / "metrics.jsonl").read_text().splitlines()
    assert [strip(l) for l in got_lines] == [strip(l) for l in ref_lines]
    assert not list(victim.rglob(f".*{atomic.TEMP_SUFFIX}")), "stray temporaries left after resume"


def test_validation_leaves_the_rng_alone(data):
    from polyvae.core.config import RunConfig
    from polyvae.core.plugins import get_registry
    from polyvae.core.training import evaluate_loss, prepare_data
    from polyvae.core.run import build_model

    root, manifest, _ = data
    config = RunConfig.from_dict({"model": {"latent_dim": 4}, "modality_options": {"image": {"size": 16}}})
    prepared = prepare_data(config, manifest, get_registry(), fit=True)
    model = build_model(config, prepared.modalities, get_registry())
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = evaluate_loss(model, prepared.train, 16, 1.0, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    assert evaluate_loss(model, prepared.train, 16, 1.0, torch.device("cpu")) == first   # reproducible
    assert model.training


def test_resume_of_a_finished_run_changes_nothing(data, tmp_path):
    root, manifest, config = data
    run = tmp_path / "run"
    assert polyvae(*_args(run, manifest, config, epochs=2)).code == 0
    before = (run / "model.safetensors").read_bytes()
    r = polyvae(*_args(run, manifest, config, epochs=2), "--resume")
    assert r.code == 0, r.err
    assert (run / "model.safetensors").read_bytes() == before


def test_a_new_run_refuses_to_overwrite_a_run(data, tmp_path):
    root, manifest, config = data
    run = tmp_path / "run"
    assert polyvae(*_args(run, manifest, config, epochs=1)).code == 0
    r = polyvae(*_args(run, manifest, config, epochs=1))
    assert r.code == 2 and "already holds a run" in r.err and "--resume" in r.err


def test_a_write_interrupted_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old complete file")

    def killed(*_args):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"new half-writ")
    assert target.read_bytes() == b"old complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_stale_temporaries_are_found_and_removed(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    stale = tmp_path / "checkpoint" / f".{TENSORS}.abc123{atomic.TEMP_SUFFIX}"
    stale.write_bytes(b"x")
    keep = tmp_path / "notes.tmp"
    keep.write_text("a user's file")
    assert atomic.remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and keep.exists()


# ---- divergence ---------------------------------------------------------------------------
def _poison_from(epoch_index: int, how: str):
    """MultimodalVAE.forward, made to fail from epoch ``epoch_index`` (0-based) on."""
    original = MultimodalVAE.forward

    def forward(self, batch, epoch=0.0):
        out = original(self, batch, epoch)
        if self.training and epoch >= epoch_index:
            if how == "loss":
                out.loss = out.loss * float("nan")
            else:   # finite loss, NaN gradient: where() passes the NaN of sqrt'(-x) backwards
                p = next(self.parameters())
                out.loss = out.loss + torch.where(p > 1e9, torch.sqrt(-p.abs() - 1), 0.0).sum()
        return out

    return forward


@pytest.mark.parametrize("how, message", [("loss", "the loss became nan in epoch 2, step 1"),
                                          ("gradient", "the gradient became non-finite in epoch 2, step 1")])
def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_epoch(data, tmp_path, monkeypatch,
                                                                            how, message):
    root, manifest, config = data
    monkeypatch.setattr(MultimodalVAE, "forward", _poison_from(1, how))
    run = tmp_path / "run"
    r = polyvae(*_args(run, manifest, config, epochs=3))
    assert r.code == 2, r.err
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert message in r.err and "keeps epoch 1, the last good one" in r.err and "--lr" in r.err, r.err
    assert _metric_lines(run) == 1
    loaded = load_run(run)
    weights = loaded.model.state_dict()
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    saved, meta = read_checkpoint(run / "checkpoint")
    assert meta["epoch"] == 1
    assert all(torch.equal(weights[k], saved[f"model.{k}"]) for k in weights)


def test_divergence_in_the_first_epoch_says_nothing_was_saved(data, tmp_path, monkeypatch):
    root, manifest, config = data
    monkeypatch.setattr(MultimodalVAE, "forward", _poison_from(0, "loss"))
    r = polyvae(*_args(tmp_path / "run", manifest, config, epochs=2))
    assert r.code == 2 and "in epoch 1, step 1" in r.err and "nothing was saved" in r.err, r.err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_ctrl_c_says_what_was_kept_and_how_to_resume_which_needs_no_data(data, tmp_path):
    root, manifest, config = data
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # enough epochs that the run cannot finish between its first epoch and the signal
    epochs = 40
    proc = subprocess.Popen([str(BIN), *_args(run, manifest, config, epochs)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            # a shell that starts jobs in the background hands them SIGINT ignored,
                            # which Python keeps: the child gets Ctrl-C's default, as at a terminal
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while _metric_lines(run) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read().decode()[-500:]
    proc.send_signal(signal.SIGINT)                       # what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err
    done = _metric_lines(run)
    assert done < epochs
    assert f"keeps epoch {done} of {epochs}; continue with: polyvae train {run} --resume" in err
    assert "Traceback" not in err
    # the advice works as given: no --data, the run's own manifest and settings
    r = polyvae("train", run, "--resume", "--quiet")
    assert r.code == 0, r.err
    assert _metric_lines(run) == epochs


def test_train_without_data_and_without_resume_is_a_usage_error(tmp_path):
    r = polyvae("train", tmp_path / "run")
    assert r.code == 2 and "no data: pass the training manifest (--data MANIFEST)" in r.err
