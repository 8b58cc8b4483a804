"""MVAE training throughput and coherence: polyvae against MultiVae 1.0.3, same architecture.

Command (from the repository root; MultiVae is only needed here)::

    .venv/bin/pip install multivae==1.0.3      # keeps torch; see benchmarks/RESULTS.md if pip wants to swap it
    .venv/bin/python benchmarks/bench_mvae_throughput.py --threads 2

Both models: the MLP encoders/decoders of ``same_arch.py`` (MultiVae's MLP layout, 512 units),
latent 16, batch 64, Adam at 1e-3, KL warm-up over 5 epochs, sklearn's digits (8x8,
binarised) + their words, same thread count, one process. Two tables:

1. *Trainers*: each library's own training loop over the same 90% of the rows.
   polyvae: ``polyvae.core.training.train`` (manifest of PNGs + words, tensors decoded once);
   MultiVae: ``BaseTrainer.train_step`` (its DataLoader, Adam). Epochs are interleaved
   (a MultiVae epoch runs after each polyvae epoch, from polyvae's ``on_epoch_end`` hook),
   so the epoch-pair ratios see the same load. The first epoch is warm-up and not counted.
   After training, cross-modal coherence on the held-out 10%: image->text (exact word)
   and text->image (a logistic-regression digit classifier fitted on real images).
2. *Model step*: forward + backward + Adam of each model on the same random batches in one
   shared loop, interleaved rounds: where the time goes, fp32 and bf16 autocast for both.

Options: ``--batch-size``, ``--latent-dim``, ``--epochs`` (trainer table), ``--rounds`` and
``--steps`` (model-step table), ``--variants`` (polyvae trainer variants as
RECONSTRUCT:AUTOCAST:eager|compile, by default ``all:off:eager all:off:compile
all:bf16:eager all:bf16:compile subset:bf16:eager``; without AVX512-BF16 or a GPU, bf16 is
emulated and slow, so the fp32 rows are the ones to read), ``--device cuda`` when a GPU is present,
``--skip-trainers``, ``--skip-steps``, ``--compile`` (compiled polyvae rows in the
model-step table; ``compile`` in a variant is ``train.compile`` in the trainer). Results and the figures measured so far: ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import same_arch as sa  # noqa: E402

LR = 1e-3
WARMUP_EPOCHS = 5
SEED = 0


# ---- coherence ---------------------------------------------------------------------------
def image_classifier(images: torch.Tensor, labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000).fit(images.flatten(1).numpy(), labels)


def coherence(gen_images: torch.Tensor, gen_words: list[str], labels: np.ndarray, clf) -> dict[str, float]:
    """text->image: classifier agrees with the label; image->text: the exact word."""
    t2i = float((clf.predict(gen_images.flatten(1).float().numpy()) == labels).mean())
    i2t = float(np.mean([w == common.DIGIT_WORDS[int(y)] for w, y in zip(gen_words, labels)]))
    return {"text->image": round(t2i, 4), "image->text": round(i2t, 4)}


@torch.no_grad()
def polyvae_coherence(model, tensors, idx, labels, clf) -> dict[str, float]:
    model.eval()
    batch = sa.polyvae_batch(tensors, idx)
    images = model.generate(batch.only(["text"]), ["image"], sample=False)["image"].cpu()
    ids = model.generate(batch.only(["image"]), ["text"], sample=False)["text"].cpu()
    text = model.modalities["text"]
    model.train()
    return coherence(images, [text.to_text(r) for r in ids], labels, clf)


@torch.no_grad()
def multivae_coherence(model, tensors, idx, labels, clf, text_modality) -> dict[str, float]:
    model.eval()
    rows = {m: t[idx] for m, t in tensors.items()}
    images = torch.sigmoid(sa.multivae_generate(model, rows, "text", "image")).cpu()
    ids = sa.multivae_generate(model, rows, "image", "text").argmax(-1).cpu()
    model.train()
    return coherence(images, [text_modality.to_text(r) for r in ids], labels, clf)


# ---- trainers ----------------------------------------------------------------------------
def write_manifest(folder: Path, data: common.Digits) -> Path:
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "text", "label"])
        for i, (img, word, y) in enumerate(zip(data.images, data.words, data.labels)):
            Image.fromarray((img.numpy() * 255).astype(np.uint8)).save(folder / "images" / f"{i:04d}.png")
            writer.writerow([f"images/{i:04d}.png", word, int(y)])
    return manifest


def trainer_table(args, data: common.Digits, device: torch.device) -> list[dict]:
    """Each library's own trainer, epochs interleaved; throughput and coherence per variant."""
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from multivae.data.datasets.base import MultimodalBaseDataset
    from polyvae.core.config import RunConfig
    from polyvae.core.dataset import split_indices
    from polyvae.core.training import TrainingHooks, train

    for name in ("multivae", "multivae.trainers.base.base_trainer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="polyvae-bench-"))
    manifest = write_manifest(work / "data", data)
    train_rows, val_rows = split_indices(len(data.words), 0.1, SEED)
    val_idx = torch.tensor(val_rows)
    clf = image_classifier(data.images[train_rows], data.labels[train_rows])
    reference = sa.polyvae_mvae([data.words[i] for i in train_rows], args.latent_dim, WARMUP_EPOCHS)
    text = reference.modalities["text"]
    poly_tensors = sa.polyvae_tensors(reference, data.images, data.words)
    mv_tensors = sa.multivae_tensors(poly_tensors, len(text.vocab))
    rows: list[dict] = []
    for variant in args.variants:
        reconstruct, autocast, mode = variant.split(":")
        torch.manual_seed(SEED)
        mv_model = sa.multivae_mvae(reference, args.latent_dim, WARMUP_EPOCHS)
        mv_train = MultimodalBaseDataset(data={m: t[train_rows] for m, t in mv_tensors.items()})
        mv_config = BaseTrainerConfig(output_dir=str(work / f"multivae-{reconstruct}-{autocast}-{mode}"), num_epochs=args.epochs,
                                      learning_rate=LR, per_device_train_batch_size=args.batch_size,
                                      no_cuda=device.type != "cuda", seed=SEED)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer = BaseTrainer(mv_model, mv_train, training_config=mv_config)
        mv_rates: list[float] = []
        loads: list[float] = []

        def multivae_epoch(report) -> None:
            common.sync(device)
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):       # its progress bar, still drawn
                trainer.train_step(report.epoch)
            common.sync(device)
            mv_rates.append(len(train_rows) / (time.perf_counter() - start))
            loads.append(common.load())

        config = RunConfig()
        config.model.modalities = ["image", "text"]
        config.model.latent_dim = args.latent_dim
        config.model.kl_warmup_epochs = WARMUP_EPOCHS
        config.model.reconstruct = reconstruct
        config.modality_options = {"image": {"size": 8, "channels": 1}}
        for key, value in dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=LR, seed=SEED,
                               device=device.type, num_threads=args.threads, autocast=autocast,
                               compile=mode == "compile").items():
            setattr(config.train, key, value)
        run = work / f"polyvae-{reconstruct}-{autocast}-{mode}"
        model = train(run, manifest, config,
                      hooks=TrainingHooks(on_epoch_end=multivae_epoch), registry=sa.polyvae_registry())
        history = [json.loads(line) for line in
                   (run / "metrics.jsonl").read_text().splitlines()]
        poly_rates = [h["examples_per_second"] for h in history]
        pairs = [p / m for p, m in zip(poly_rates[1:], mv_rates[1:])]
        rows.append({
            "polyvae": f"trainer, reconstruct={reconstruct}, autocast={autocast}, {mode}",
            "polyvae ex/s": statistics.median(poly_rates[1:]),
            "MultiVae ex/s": statistics.median(mv_rates[1:]),
            "ratio": statistics.median(pairs),
            "ratio range": f"{min(pairs):.2f}..{max(pairs):.2f}",
            "load": f"{min(loads):.1f}..{max(loads):.1f}",
            "polyvae coherence": polyvae_coherence(model, {m: t.to(device) for m, t in poly_tensors.items()},
                                                   val_idx.to(device), data.labels[val_rows], clf),
            "MultiVae coherence": multivae_coherence(trainer.model, {m: t.to(device) for m, t in mv_tensors.items()},
                                                     val_idx.to(device), data.labels[val_rows], clf, text),
            "polyvae train loss, epochs 1,5,10,..": [round(h["train/loss"], 1) for h in history
                                                     if h["epoch"] == 1 or h["epoch"] % 5 == 0],
        })
    shutil.rmtree(work, ignore_errors=True)
    return rows


# ---- model step --------------------------------------------------------------------------
def step_table(args, data: common.Digits, device: torch.device) -> dict[str, common.Rounds]:
    """Forward + backward + Adam on identical random batches, candidates interleaved."""
    torch.manual_seed(SEED)
    poly = sa.polyvae_mvae(data.words, args.latent_dim, WARMUP_EPOCHS).to(device)
    poly_subset = sa.polyvae_mvae(data.words, args.latent_dim, WARMUP_EPOCHS, reconstruct="subset").to(device)
    mv = sa.multivae_mvae(poly, args.latent_dim, WARMUP_EPOCHS).to(device)
    pt = {m: t.to(device) for m, t in sa.polyvae_tensors(poly, data.images, data.words).items()}
    mt = sa.multivae_tensors(pt, len(poly.modalities["text"].vocab))
    n, b = len(data.words), args.batch_size
    gen = torch.Generator().manual_seed(SEED)
    batches = [torch.randperm(n, generator=gen)[:b].to(device) for _ in range(64)]

    def loop(step, steps: int) -> float:
        common.sync(device)
        start = time.perf_counter()
        for s in range(steps):
            step(batches[s % len(batches)])
        common.sync(device)
        return steps * b / (time.perf_counter() - start)

    def adam(model, fused=False):
        return torch.optim.Adam(model.parameters(), LR, fused=fused)

    candidates = {   # MultiVae's trainer builds a plain Adam, polyvae's a fused one
        "MultiVae fp32": sa.multivae_step(mv, mt, adam(mv), False),
        "MultiVae bf16 autocast": sa.multivae_step(mv, mt, adam(mv), True),
        "polyvae fp32, plain Adam": sa.polyvae_step(poly, pt, adam(poly), False),
        "polyvae fp32": sa.polyvae_step(poly, pt, adam(poly, True), False),
        "polyvae bf16 autocast": sa.polyvae_step(poly, pt, adam(poly, True), True),
        "polyvae fp32, subset": sa.polyvae_step(poly_subset, pt, adam(poly_subset, True), False),
        "polyvae bf16, subset": sa.polyvae_step(poly_subset, pt, adam(poly_subset, True), True),
    }
    if args.compile:   # polyvae's own switch: model.compile(), what train.compile does
        # (torch.compile of MultiVae 1.0.3's MVAE fails: its ModelOutput loses its attributes)
        torch.manual_seed(SEED)
        compiled = sa.polyvae_mvae(data.words, args.latent_dim, WARMUP_EPOCHS).to(device)
        compiled.compile()
        candidates["polyvae bf16 + compile"] = sa.polyvae_step(compiled, pt, adam(compiled, True), True)
        compiled32 = sa.polyvae_mvae(data.words, args.latent_dim, WARMUP_EPOCHS).to(device)
        compiled32.compile()
        candidates["polyvae fp32 + compile"] = sa.polyvae_step(compiled32, pt, adam(compiled32, True), False)
    for step in candidates.values():                         # warm-up (and compilation)
        loop(step, args.warmup)
    return common.interleaved({k: (lambda s=s: loop(s, args.steps)) for k, s in candidates.items()},
                              args.rounds)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="+",
                        default=["all:off:eager", "all:off:compile", "all:bf16:eager", "all:bf16:compile",
                                 "subset:bf16:eager"],
                        help="polyvae trainer variants, RECONSTRUCT:AUTOCAST:eager|compile; reconstruct "
                             "all (default objective: every subset reconstructs every modality) or "
                             "subset (Wu & Goodman's, as MultiVae's MVAE)")
    parser.add_argument("--compile", action="store_true", help="compiled rows in the model-step table")
    parser.add_argument("--skip-trainers", action="store_true")
    parser.add_argument("--skip-steps", action="store_true")
    args = parser.parse_args(argv)
    args.threads = common.set_threads(args.threads)
    device = torch.device(args.device)
    data = common.digits(binary=True)
    print("machine:", common.machine_line(args.threads))
    print(f"data: {len(data.words)} digits 8x8 binarised + words; batch {args.batch_size}, "
          f"latent {args.latent_dim}, Adam lr {LR}, device {device}")
    if not args.skip_steps:
        res = step_table(args, data, device)
        base = res["MultiVae fp32"]
        print("\nmodel step (forward + backward + Adam), examples/s, median of interleaved rounds:")
        print(f"{'candidate':28s} {'ex/s':>9s} {'range':>15s} {'x MultiVae fp32':>16s}  load")
        for name, r in res.items():
            print(f"{name:28s} {r.median:9.0f} {r.spread():>15s} {common.ratio_of_rounds(r, base):16.2f}  "
                  f"{min(r.loads):.1f}..{max(r.loads):.1f}")
    if not args.skip_trainers:
        print(f"\ntrainers ({args.epochs} epochs, first epoch not counted):")
        for row in trainer_table(args, data, device):
            print(" | ".join(f"{k}: {v:.0f}" if isinstance(v, float) and v > 50 else
                             f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()))
    print("load at end:", f"{common.load():.2f}")


if __name__ == "__main__":
    main()
