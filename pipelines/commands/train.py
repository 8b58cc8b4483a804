"""``polyvae train``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from polyvae.pipelines import api
from polyvae.pipelines.ui import split_list

MODELS = ["mvae", "vae", "ae", "sparse-ae", "denoising-ae", "conv-ae", "linear-ae", "recirculation"]


@click.command("train")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "manifest", default=None, type=click.Path(path_type=Path),
              help="Manifest CSV (one column per modality; empty cell = missing). With --resume: "
                   "[default: the run's own manifest]")
@click.option("--model", default=None, help=f"Model: {'|'.join(MODELS)} or a plugin's. [default: mvae]")
@click.option("--modalities", default=None, help="Comma-separated modalities to use [default: every manifest column that is one].")
@click.option("--fusion", default=None, help="poe|moe|mopoe or a plugin's. [default: poe]")
@click.option("--epochs", type=click.IntRange(1, None), default=None, help="[default: 30]")
@click.option("--latent-dim", type=click.IntRange(1, None), default=None, help="[default: 32]")
@click.option("--batch-size", type=click.IntRange(1, None), default=None, help="[default: 64]")
@click.option("--learning-rate", "--lr", type=float, default=None, help="[default: 2e-3]")
@click.option("--beta", type=float, default=None, help="KL weight after warm-up. [default: 1]")
@click.option("--seed", type=int, default=None, help="[default: 0]")
@click.option("--device", default=None, help="auto|cpu|cuda [default: auto: CUDA when present]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="JSON or TOML with sections model, train, modality_options.")
@click.option("--resume", is_flag=True, help="Continue RUN_DIR from its last complete epoch.")
@click.option("--shared-decoder", is_flag=True, default=None,
              help="One decoder backbone with a small head per modality.")
@click.option("--on-bad-input", type=click.Choice(["fail", "skip"]), default=None,
              help="Stop before training at the first bad row (default), or skip bad rows and count them.")
@click.option("--autocast", type=click.Choice(["off", "bf16", "auto"]), default=None,
              help="bf16 mixed precision: auto = where the hardware computes bf16 natively (CUDA; "
                   "CPUs with AVX512-BF16 or AMX), off elsewhere. [default: auto]")
@click.option("--compile", "compile_", is_flag=True, default=None,
              help="torch.compile the training step: a slower start (30-90 s on 2 cores), then "
                   "faster steps where small operations dominate (MLP networks: 1.25x with "
                   "--autocast bf16); the built-in conv/GRU networks gain little on CPU "
                   "(benchmarks/RESULTS.md).")
@click.option("--reconstruct", type=click.Choice(["all", "subset"]), default=None,
              help="What each MVAE subset term reconstructs: every observed modality (better "
                   "cross-modal generation) or only the subset's own (Wu & Goodman; fewer decoder "
                   "passes, faster). [default: all]")
@click.option("--log", "loggers", multiple=True, type=click.Choice(["tensorboard"]),
              help="Also log to TensorBoard: RUN_DIR/tensorboard/ gets the losses every epoch, sample "
                   "images, audio and text, and the latent projector (tensorboard --logdir RUN_DIR/tensorboard). "
                   "metrics.jsonl is always written.")
@click.option("--quiet", is_flag=True, help="No progress bars or epoch lines.")
def command(run_dir: Path, manifest: Path, model, modalities, fusion, epochs, latent_dim, batch_size,
            learning_rate, beta, seed, device, config_file, resume, shared_decoder, on_bad_input,
            autocast, compile_, reconstruct, loggers, quiet) -> None:
    """Train a model on MANIFEST into RUN_DIR.

    RUN_DIR gets config.json, model.safetensors (after every epoch), metrics.jsonl,
    checkpoint/ (for --resume) and plots/. Under torchrun the same command trains with
    DistributedDataParallel.

    \b
    Examples:
      polyvae train runs/mvae --data data/manifest.csv --modalities image,text --epochs 20
      polyvae train runs/ae --data data/manifest.csv --model conv-ae --modalities image
      polyvae train runs/mvae --resume                 # continue after the last complete epoch
      polyvae train runs/fast --data data/manifest.csv --autocast bf16 --compile
      polyvae train runs/mvae --data data/manifest.csv --log tensorboard
      torchrun --nproc_per_node 2 .venv/bin/polyvae train runs/ddp --data data/manifest.csv
    """
    try:
        api.train(run_dir, manifest, config=config_file, modalities=split_list(modalities) or None, model=model,
                  fusion=fusion, epochs=epochs, latent_dim=latent_dim, batch_size=batch_size,
                  learning_rate=learning_rate, beta=beta, seed=seed, device=device, resume=resume,
                  shared_decoder=shared_decoder, on_bad_input=on_bad_input, autocast=autocast,
                  compile=compile_, reconstruct=reconstruct, log=list(loggers) or None, progress=not quiet)
    except KeyboardInterrupt:
        click.echo(f"Interrupted. {interrupted_note(run_dir)}", err=True)
        sys.exit(130)
    if not quiet:
        click.echo(f"trained: {run_dir}", err=True)


def interrupted_note(run_dir: Path) -> str:
    """What a killed run kept, and the command that continues it."""
    from polyvae.core.run import CONFIG, read_config
    from polyvae.pipelines.plots import read_history

    done = len(read_history(run_dir))
    if not done or not (run_dir / CONFIG).exists():
        return f"No epoch completed, so {run_dir} holds nothing to resume; run the same command again."
    total = read_config(run_dir).train.epochs
    return (f"{run_dir} keeps epoch {done} of {total}; continue with: "
            f"polyvae train {run_dir} --resume")
