"""``torchrun --nproc_per_node 2 polyvae train ...`` on CPU (gloo): both ranks end with the
same weights, only rank 0 writes the run directory, and the result is the single-process run
with the same global batch.

Why the single-process run can be matched exactly: every step re-seeds the noise from
``(seed, epoch, step, shard)``, where a shard is one (rank, micro-batch) slice of the global
batch. Two processes with one micro-batch each draw, row for row, the noise of one process
that splits each global batch into two micro-batches (``micro_batches = 2``) and
accumulates the gradients; DDP averages the two ranks' gradients, which is the same sum.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clihelp import polyvae
from conftest import write_digits

from polyvae.core.device import DEBUG_DUMP_ENV

BIN = Path(sys.executable).parent / "polyvae"
CONFIG = ('[train]\nnum_threads = 1\nlearning_rate = 0.003\nmicro_batches = {micro}\n[model]\nhidden_dim = 16\n'
          '[modality_options.image]\nsize = 8\nwidth = 4\nhidden = 16\n'
          '[modality_options.text]\nembed = 8\nhidden = 16\n')
#: largest absolute difference allowed between the 2-process and the 1-process weights
#: (measured: 0.0; float summation order is the only thing that could differ)
TOLERANCE = 1e-6


def _train_args(run: Path, manifest: Path, config: Path) -> list[str]:
    return ["train", str(run), "--data", str(manifest), "--epochs", "2", "--latent-dim", "4",
            "--batch-size", "16", "--seed", "4", "--device", "cpu", "--quiet", "--config", str(config)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    manifest = write_digits(root / "data", n=60, size=8, paired=0.8)   # weakly paired on purpose
    for micro in (1, 2):
        (root / f"micro{micro}.toml").write_text(CONFIG.format(micro=micro))
    env = {**os.environ, "OMP_NUM_THREADS": "1", DEBUG_DUMP_ENV: str(root / "dump2")}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.run([*launcher, str(BIN), *_train_args(root / "ddp", manifest, root / "micro1.toml")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    import polyvae.pipelines.plots as plots
    saved = plots.write_epoch_plots
    os.environ[DEBUG_DUMP_ENV] = str(root / "dump1")
    plots.write_epoch_plots = lambda report: []
    try:
        single = polyvae(*_train_args(root / "single", manifest, root / "micro2.toml"))
        del os.environ[DEBUG_DUMP_ENV]
        plain = polyvae(*_train_args(root / "plain", manifest, root / "micro1.toml"))
    finally:
        os.environ.pop(DEBUG_DUMP_ENV, None)
        plots.write_epoch_plots = saved
    assert single.code == 0, single.err
    assert plain.code == 0, plain.err
    return root


def test_both_ranks_end_with_identical_parameters(runs):
    rank0, rank1 = (load_file(str(runs / "dump2" / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 10
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    written = load_file(str(runs / "ddp" / "model.safetensors"))
    assert all(torch.equal(written[k], rank0[k]) for k in rank0)


def test_only_rank_0_writes_the_run_directory(runs):
    reports = {r: json.loads((runs / "dump2" / f"rank{r}.json").read_text()) for r in (0, 1)}
    assert reports[0]["world_size"] == reports[1]["world_size"] == 2
    assert reports[1]["written"] == []
    run = (runs / "ddp").resolve()
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "checkpoint/state.safetensors"):
        assert str(run / name) in reports[0]["written"], name
    config = json.loads((runs / "ddp" / "config.json").read_text())
    assert config["data"]["processes"] == 2
    assert len((runs / "ddp" / "metrics.jsonl").read_text().splitlines()) == 2


def test_two_processes_match_one_with_the_same_global_batch(runs):
    two = load_file(str(runs / "ddp" / "model.safetensors"))
    one = load_file(str(runs / "single" / "model.safetensors"))
    assert two.keys() == one.keys()
    worst = max(float((two[k] - one[k]).abs().max()) for k in two)
    assert worst <= TOLERANCE, f"2-process and 1-process weights differ by up to {worst}"
    # the same run with one batch per step draws other noise, and ends measurably elsewhere:
    # the comparison above would notice noise that was not matched
    plain = load_file(str(runs / "plain" / "model.safetensors"))
    apart = max(float((plain[k] - one[k]).abs().max()) for k in one)
    assert apart > 1000 * TOLERANCE, apart
    metrics = [json.loads(l) for l in (runs / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single = [json.loads(l) for l in (runs / "single" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(metrics, single):             # epoch losses are gathered over both ranks
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-6)
        assert a["validation/loss"] == pytest.approx(b["validation/loss"], rel=1e-6)
