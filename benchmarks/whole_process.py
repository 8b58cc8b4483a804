"""Whole process, each library at its own defaults: polyvae against MultiVae 1.0.3 as a user meets them.

Commands (from the repository root; MultiVae is only needed here, see ``RESULTS.md``)::

    .venv/bin/python benchmarks/whole_process.py --threads 2                           # spoken digits
    .venv/bin/python benchmarks/whole_process.py --threads 2 --dataset fashion-mnist   # 10,000 rows

Data (``--rows`` rows; ``--workdir``, default ``/tmp/polyvae-whole-process``):

* ``spoken-digits`` (default, 1,200 rows): image + text + audio (+ speaker, label) from
  ``spoken_digits.py`` (espeak-ng, flite, sox), spoken into the work folder when it has fewer
  rows (``ceil(rows / 80)`` repetitions of 8 voices x 10 digits; about 30 s for 1,200);
* ``fashion-mnist`` (10,000 rows): image + text (class name), the first rows of
  ``/tmp/polyvae-fmnist/data/manifest.csv`` when present, else written by ``fashion_mnist.py``.

Both train on the same 90% and are judged on the same 10% (polyvae's ``split_indices``: the
rows its training holds out); batch 128, latent 64, ``--epochs`` (10), ``--threads`` (2).

*Defaults.* polyvae: ``train()`` with ``RunConfig()`` changed only in batch size, latent
size, epochs, seed and threads (``polyvae train RUN --data M --batch-size 128 --latent-dim
64``): the manifest's modalities, its conv/GRU/speech networks (the audio ``speech`` model
tracks every clip's pitch with Harvest while decoding), lr 2e-3, bf16 autocast on CPUs with
AVX512-BF16, per-epoch validation and saving, the closing verdict; ``--cli`` times the
command's own function instead (adds its plots). Its data cache starts empty (a fresh
``POLYVAE_DATA_CACHE`` folder): the first decode and the cache write count.
MultiVae: the user decodes the rows (images: float [0, 1] at their stored size; text: one-hot
characters, padded to the longest; audio: soundfile, torchaudio resample to 16 kHz, the first
second zero-padded, ``MelSpectrogram(16000, n_fft=1024, hop_length=256, n_mels=64)``,
``AmplitudeToDB(top_db=80)``, per clip ``(dB - max) / 80 + 1`` in [0, 1] as its default
decoders end in a sigmoid: 64 x 63), then ``MVAE(MVAEConfig(n_modalities, input_dims,
latent_dim=64))`` without encoders/decoders (its MLPs: input -> 512 -> 512 -> mean,
log-variance; latent -> 512 -> sigmoid), normal likelihoods, no rescaling, KL warm-up 10,
and ``BaseTrainer`` (eval set: the held-out rows) with ``BaseTrainerConfig(
per_device_train_batch_size=128, num_epochs, seed, no_cuda=True)``: Adam at lr 1e-4.

*Timing.* The two trainings run in two threads taking turns epoch by epoch (a baton passed
from polyvae's ``on_epoch_end`` hook and a MultiVae ``TrainingCallback``): each runs its
complete own loop, and load hits both alike. Whole process: from the start of ``train()``
(polyvae) or of the decoding (MultiVae) to the end of training (MultiVae's final model
saved), less the time spent waiting for the other; imports not counted; ``data s`` is the
decoding. Training ex/s: polyvae's ``metrics.jsonl``, MultiVae's ``train_step``, median
over epochs 2..E. The last line: polyvae's speed over MultiVae's (> 1: polyvae faster).

*Coherence* on the held-out rows, from posterior means (polyvae ``model.generate(...,
sample=False)``, MultiVae its PoE mean decoded): ``->text`` is the exact word (class name);
``->image``/``->audio`` the accuracy of a LogisticRegression (on 64 principal components)
fitted on that library's own tensors of real training rows (at most 3,000); ``real`` is
that classifier on the real held-out rows, the ceiling.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import shutil
import statistics
import sys
import threading
import time
import warnings
from dataclasses import replace
from itertools import permutations
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import same_arch as sa  # noqa: E402
from polyvae.core.dataset import split_indices  # noqa: E402
from polyvae.core.manifest import write_manifest  # noqa: E402

BATCH, LATENT = 128, 64
FMNIST = Path("/tmp/polyvae-fmnist/data/manifest.csv")
CLASSIFIER_ROWS = 3000
AUDIO_RATE, AUDIO_SAMPLES = 16000, 16000
OTHER = {"polyvae": "MultiVae", "MultiVae": "polyvae"}


# ---- data --------------------------------------------------------------------------------
def count_rows(manifest: Path) -> int:
    return sum(1 for _ in open(manifest)) - 1 if manifest.exists() else 0


def source_manifest(args) -> Path:
    """The dataset's manifest, written when missing or too short."""
    import fashion_mnist
    import spoken_digits

    if args.dataset == "fashion-mnist":
        return FMNIST if count_rows(FMNIST) >= args.rows else \
            fashion_mnist.write_dataset(args.workdir / "fashion-mnist", args.rows)
    manifest = args.workdir / "spoken-digits" / "train" / "manifest.csv"
    if count_rows(manifest) < args.rows:
        spoken_digits.write_spoken_digits(manifest.parent.parent, math.ceil(args.rows / 80), args.seed)
    return manifest


def subset(source: Path, n: int, out: Path) -> tuple[Path, list[dict], list[str]]:
    """The first ``n`` rows of ``source`` as a manifest in ``out`` with absolute file paths."""
    with open(source, newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = list(reader.fieldnames), [r for _, r in zip(range(n), reader)]
    for row in rows:
        for c in ("image", "audio"):
            if c in row:
                row[c] = str((source.parent / row[c]).resolve())
    write_manifest(out / "manifest.csv", rows, columns)
    return out / "manifest.csv", rows, [c for c in ("image", "text", "audio") if c in columns]


# ---- taking turns ------------------------------------------------------------------------
class OtherFailed(RuntimeError):
    """The other library's training raised (its error is the one reported)."""


class Baton:
    """Two trainings in two threads, one running at a time: each hands over at its epoch ends."""

    def __init__(self):
        self.turn = {k: threading.Semaphore(0) for k in OTHER}
        self.waited = {k: 0.0 for k in OTHER}
        self.done: set[str] = set()
        self.failed = False

    def wait(self, me: str) -> None:
        t0 = time.perf_counter()
        self.turn[me].acquire()
        self.waited[me] += time.perf_counter() - t0
        if self.failed:
            raise OtherFailed

    def hand_over(self, me: str) -> None:
        if OTHER[me] not in self.done:
            self.turn[OTHER[me]].release()
            self.wait(me)

    def finish(self, me: str, failed: bool) -> None:
        self.failed |= failed
        self.done.add(me)
        self.turn[OTHER[me]].release()


# ---- polyvae -----------------------------------------------------------------------------
def run_polyvae(args, manifest: Path, run: Path, baton: Baton) -> dict:
    from polyvae.core import training
    from polyvae.core.config import RunConfig
    from polyvae.pipelines import training_run

    config = RunConfig()                        # polyvae's defaults but for these five
    config.model.latent_dim = LATENT
    config.train = replace(config.train, batch_size=BATCH, epochs=args.epochs, seed=args.seed, num_threads=args.threads)
    out: dict = {"loads": []}

    def hand_over(report) -> None:
        out["data"] = report.data
        out["loads"].append(common.load())
        baton.hand_over("polyvae")

    def with_hand_over(*a, hooks, **kw):      # --cli: the command's hooks, then the baton
        inner = hooks.on_epoch_end
        hooks.on_epoch_end = lambda report: (inner(report), hand_over(report))
        return training.train(*a, hooks=hooks, **kw)

    t0, failed = time.perf_counter(), True
    try:
        if args.cli:
            training_run.train = with_hand_over
            out["model"] = training_run.run_training(run, manifest, config, quiet=False)
        else:
            out["model"] = training.train(run, manifest, config,
                                          hooks=training.TrainingHooks(on_epoch_end=hand_over))
        failed = False
    finally:
        training_run.train = training.train
        baton.finish("polyvae", failed)
    out["wall"] = time.perf_counter() - t0 - baton.waited["polyvae"]
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    out["rates"] = [h["examples_per_second"] for h in history]
    out["data_s"] = json.loads((run / "config.json").read_text())["data"]["cache"]["load_seconds"]
    return out


# ---- MultiVae ----------------------------------------------------------------------------
def decode_for_multivae(rows: list[dict], mods: list[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """What a MultiVae user writes: the rows as float tensors (recipe in the module docstring)."""
    from PIL import Image

    out: dict[str, torch.Tensor] = {}
    chars = ["<pad>", *sorted(set("".join(r["text"] for r in rows)))]
    if "image" in mods:
        out["image"] = torch.stack([torch.from_numpy(np.asarray(Image.open(r["image"]).convert("L"), np.float32)
                                                     / 255.0)[None] for r in rows])
    if "text" in mods:
        ids = torch.zeros(len(rows), max(len(r["text"]) for r in rows), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r["text"])] = torch.tensor([chars.index(c) for c in r["text"]])
        out["text"] = torch.nn.functional.one_hot(ids, len(chars)).float()
    if "audio" in mods:
        import soundfile
        import torchaudio

        waves = torch.zeros(len(rows), AUDIO_SAMPLES)
        for i, r in enumerate(rows):
            samples, rate = soundfile.read(r["audio"], dtype="float32", always_2d=True)
            wave = torchaudio.functional.resample(torch.from_numpy(samples.mean(1)), rate, AUDIO_RATE)
            waves[i, :min(len(wave), AUDIO_SAMPLES)] = wave[:AUDIO_SAMPLES]
        mel = torchaudio.transforms.MelSpectrogram(AUDIO_RATE, n_fft=1024, hop_length=256, n_mels=64)(waves)
        db = torchaudio.transforms.AmplitudeToDB(top_db=80)(mel)
        out["audio"] = (db - db.amax((1, 2), keepdim=True)) / 80 + 1
    return out, chars


def run_multivae(args, rows, mods, train_idx, val_idx, folder: Path, baton: Baton, out: dict) -> None:
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.models import MVAE, MVAEConfig
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from multivae.trainers.base.callbacks import TrainingCallback

    class HandOver(TrainingCallback):
        def on_epoch_end(self, training_config, **kwargs):
            out["loads"].append(common.load())
            baton.hand_over("MultiVae")

    failed = True
    try:
        baton.wait("MultiVae")                        # after polyvae's first epoch
        waited, t0 = baton.waited["MultiVae"], time.perf_counter()
        tensors, out["chars"] = decode_for_multivae(rows, mods)
        out["data_s"] = time.perf_counter() - t0
        model = MVAE(MVAEConfig(n_modalities=len(mods), latent_dim=LATENT,
                                input_dims={m: tuple(t.shape[1:]) for m, t in tensors.items()}))
        part = lambda idx: MultimodalBaseDataset(data={m: t[idx] for m, t in tensors.items()})  # noqa: E731
        config = BaseTrainerConfig(output_dir=str(folder), per_device_train_batch_size=BATCH,
                                   num_epochs=args.multivae_epochs or args.epochs, seed=args.seed, no_cuda=True)
        trainer = BaseTrainer(model, part(train_idx), part(val_idx), training_config=config, callbacks=[HandOver()])
        step = trainer.train_step

        def timed_step(epoch: int):
            s, got = time.perf_counter(), step(epoch)
            out["rates"].append(len(train_idx) / (time.perf_counter() - s))
            return got

        trainer.train_step = timed_step
        trainer.train()
        out.update(wall=time.perf_counter() - t0 - (baton.waited["MultiVae"] - waited),
                   model=trainer._best_model.eval(), tensors=tensors)   # what it saved as final_model
        failed = False
    except OtherFailed:
        pass
    except BaseException as exc:                      # raised by the main thread
        out["error"] = exc
    finally:
        baton.finish("MultiVae", failed)


# ---- coherence ---------------------------------------------------------------------------
def classifier(x: torch.Tensor, labels: np.ndarray):
    """LogisticRegression on the first 64 principal components (plain lbfgs on thousands of
    separable features runs for minutes)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, labels = x[:CLASSIFIER_ROWS].flatten(1).float().numpy(), labels[:CLASSIFIER_ROWS]
    with warnings.catch_warnings(action="ignore"):
        return make_pipeline(PCA(min(64, len(x) - 1), random_state=0), LogisticRegression(max_iter=1000)).fit(x, labels)


def coherence(mods, generate, train_x, val_x, words, train_labels, val_labels, val_words) -> dict[str, float]:
    """``generate(given, target)`` -> held-out generations; ``words`` turns text tensors into strings."""
    clfs = {m: classifier(train_x(m), train_labels) for m in mods if m != "text"}
    got = {f"real {m}": float(c.score(val_x(m).flatten(1).float().numpy(), val_labels)) for m, c in clfs.items()}
    for given, target in permutations(mods, 2):
        gen = generate(given, target)
        hit = (np.array(words(gen)) == val_words) if target == "text" else \
            clfs[target].predict(gen.flatten(1).float().numpy()) == val_labels
        got[f"{given}->{target}"] = float(hit.mean())
    return got


@torch.no_grad()
def polyvae_coherence(p: dict, mods, rows) -> dict[str, float]:
    model, data = p["model"].eval(), p["data"]
    n_train, n_val = len(data.train), len(data.validation)
    text = data.modalities.get("text")

    def generate(given, target):
        outs = [model.generate(data.validation.batch(torch.arange(s, min(s + 256, n_val))).only([given]),
                               [target], sample=False)[target].cpu() for s in range(0, n_val, 256)]
        return torch.cat(outs)

    return coherence(mods, generate,
                     lambda m: data.train.data[m][torch.arange(min(n_train, CLASSIFIER_ROWS))],
                     lambda m: data.validation.data[m][torch.arange(n_val)],
                     lambda ids: [text.to_text(r) for r in ids],
                     np.array(data.train.metadata["label"]), np.array(data.validation.metadata["label"]),
                     np.array([rows[r - 1]["text"] for r in data.validation.rows]))


@torch.no_grad()
def multivae_coherence(m: dict, mods, rows, train_idx, val_idx) -> dict[str, float]:
    tensors, chars = m["tensors"], m["chars"]
    held = {k: t[val_idx] for k, t in tensors.items()}
    words = lambda x: ["".join(chars[i] for i in r if i > 0) for r in x.argmax(-1).tolist()]  # noqa: E731
    return coherence(mods, lambda g, t: sa.multivae_generate(m["model"], held, g, t).cpu(),
                     lambda k: tensors[k][train_idx], lambda k: held[k], words,
                     np.array([rows[i]["label"] for i in train_idx]), np.array([rows[i]["label"] for i in val_idx]),
                     np.array([rows[i]["text"] for i in val_idx]))


# ---- report ------------------------------------------------------------------------------
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["spoken-digits", "fashion-mnist"], default="spoken-digits")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/polyvae-whole-process"))
    parser.add_argument("--rows", type=int, default=0, help="default: 1,200 spoken digits, 10,000 Fashion-MNIST")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--multivae-epochs", type=int, default=0,
                        help="MultiVae's epochs (default: --epochs); more to give it polyvae's whole-process "
                             "time: does its default reach polyvae's coherence in the same time?")
    parser.add_argument("--cli", action="store_true", help="time polyvae through the `polyvae train` command's "
                        "function (with its per-epoch plots and singers.json)")
    args = parser.parse_args(argv)
    args.rows = args.rows or (1200 if args.dataset == "spoken-digits" else 10000)
    args.threads = common.set_threads(args.threads)
    logging.disable(logging.INFO)                    # MultiVae's per-epoch log lines
    import multivae.models, multivae.trainers  # noqa: F401,E401  (imports are not timed)
    from polyvae.core.plugins import get_registry
    get_registry()
    print("machine:", common.machine_line(args.threads), flush=True)
    work = args.workdir / f"{args.dataset}-{args.rows}-e{args.epochs}-{args.multivae_epochs or args.epochs}"
    shutil.rmtree(work, ignore_errors=True)
    manifest, rows, mods = subset(source_manifest(args), args.rows, work / "data")
    os.environ["POLYVAE_DATA_CACHE"] = str(work / "polyvae-cache")       # empty: the first decode counts
    train_idx, val_idx = split_indices(len(rows), 0.1, args.seed)
    print(f"data: {args.dataset}, {len(rows)} rows ({' + '.join(mods)}), {len(train_idx)} train / "
          f"{len(val_idx)} held out; batch {BATCH}, latent {LATENT}, {args.epochs} epochs"
          + (f" (MultiVae {args.multivae_epochs})" if args.multivae_epochs else ""), flush=True)
    baton, mv = Baton(), {"loads": [], "rates": []}
    thread = threading.Thread(target=run_multivae, args=(args, rows, mods, train_idx, val_idx,
                                                         work / "multivae", baton, mv))
    load_before = common.load()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        thread.start()
        try:
            poly = run_polyvae(args, manifest, work / "polyvae", baton)
        finally:
            thread.join()
            if "error" in mv:
                raise mv["error"]
    assert [r - 1 for r in poly["data"].validation.rows] == val_idx, "held-out rows differ"
    poly["coherence"] = polyvae_coherence(poly, mods, rows)
    mv["coherence"] = multivae_coherence(mv, mods, rows, train_idx, val_idx)
    later = slice(1, None) if args.epochs > 1 else slice(None)
    pairs = [p / m for p, m in zip(poly["rates"][later], mv["rates"][later])]
    keys = list(poly["coherence"])
    print(f"\n| library | whole process s | data s | training ex/s | {' | '.join(keys)} | load |")
    print("|---|---|---|---|" + "---|" * len(keys) + "---|")
    for name, r in (("polyvae", poly), ("MultiVae", mv)):
        loads = [load_before, *r["loads"]]
        rate = common.fmt_rate(statistics.median(r["rates"][later]))
        print(f"| {name} | {r['wall']:.1f} | {r['data_s']:.1f} | {rate} | "
              + " | ".join(f"{r['coherence'][k]:.3f}" for k in keys) + f" | {min(loads):.1f}..{max(loads):.1f} |")
    print(f"\npolyvae x MultiVae: whole process {mv['wall'] / poly['wall']:.2f}x, training ex/s "
          f"{statistics.median(pairs):.2f}x (same-epoch range {min(pairs):.2f}..{max(pairs):.2f}); "
          f"polyvae {'`polyvae train` function (--cli)' if args.cli else 'train()'}, data cache fresh "
          f"(POLYVAE_DATA_CACHE={work / 'polyvae-cache'}); load at end {common.load():.2f}")


if __name__ == "__main__":
    main()
