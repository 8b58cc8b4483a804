"""All of Fashion-MNIST (60,000 training images with their class names) through polyvae:
first decode, one training epoch, peak memory, and a second run that reuses the data cache.

    .venv/bin/python benchmarks/fashion_mnist.py [--workdir /tmp/polyvae-fmnist] [--rows 60000]
        [--epochs 1] [--baseline] [--coherence-epochs 0]

The data comes from Debian's ``dataset-fashion-mnist`` package (``apt-get download`` and
``dpkg -x`` into the work folder, or the installed ``/usr/share/datasets/fashion-mnist``):
60,000 PNGs and a manifest (``image``, ``text`` = the class name, ``label``). Each training
is its own ``polyvae train`` process; its peak memory is measured twice: the largest single
process (``ru_maxrss``, what ``/usr/bin/time -v`` calls maximum resident set size) and the
whole process tree at once (decoding workers included), sampled from ``/proc`` every 0.1 s.

Runs: 1. first run (the cache for this manifest removed first): decode + epochs; 2. the
same command again, which reuses the cache; ``--baseline``: the in-memory path
(``POLYVAE_DATA_CACHE=off``), as polyvae read data before the cache. ``--coherence-epochs
N``: a run of N epochs, then ``polyvae evaluate --json`` on the held-out rows (text->image
and image->text coherence). The machine is shared: the 1-minute load is printed with
every figure.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot"]
INSTALLED = Path("/usr/share/datasets/fashion-mnist")


# ---- data -----------------------------------------------------------------------------------
def idx_folder(workdir: Path) -> Path:
    """Where the idx files are: installed, or extracted from the downloaded package."""
    if (INSTALLED / "train-images-idx3-ubyte.gz").exists():
        return INSTALLED
    extracted = workdir / "deb" / "usr/share/datasets/fashion-mnist"
    if not (extracted / "train-images-idx3-ubyte.gz").exists():
        (workdir / "deb").mkdir(parents=True, exist_ok=True)
        got = subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=workdir,
                             capture_output=True, text=True)
        debs = sorted(workdir.glob("dataset-fashion-mnist_*.deb"))
        if not debs:
            sys.exit(f"dataset-fashion-mnist is not available from apt here: {got.stderr.strip()}")
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(workdir / "deb")], check=True)
    return extracted


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_dataset(workdir: Path, rows: int) -> Path:
    """60,000 (or ``rows``) PNGs and their manifest; kept when already there."""
    from PIL import Image

    from polyvae.core.manifest import write_manifest

    out = workdir / "data"
    manifest = out / "manifest.csv"
    if manifest.exists() and sum(1 for _ in open(manifest)) == rows + 1:
        return manifest
    folder = idx_folder(workdir)
    images = read_idx(folder / "train-images-idx3-ubyte.gz")[:rows]
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz")[:rows]
    (out / "images").mkdir(parents=True, exist_ok=True)
    table = []
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"images/{i:05d}.png"
        Image.fromarray(image).save(out / name)
        table.append({"image": name, "text": CLASSES[label], "label": CLASSES[label]})
    write_manifest(manifest, table, ["image", "text", "label"])
    return manifest


# ---- measuring one command --------------------------------------------------------------------
def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, peak RSS of the largest process (``wait4``'s ``ru_maxrss``) and of the
    whole process tree at once (sampled), MB."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, done, output = [0.0], threading.Event(), []

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.1)

    threads = [threading.Thread(target=sample, daemon=True),
               threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{output[0][-3000:]}")
    return {"wall": wall, "largest_mb": usage.ru_maxrss / 1024, "tree_mb": peak[0], "output": output[0]}


def train(run: Path, manifest: Path, epochs: int, env: dict[str, str]) -> dict[str, float]:
    shutil.rmtree(run, ignore_errors=True)
    polyvae = str(Path(sys.executable).parent / "polyvae")
    got = measure([polyvae, "train", str(run), "--data", str(manifest), "--epochs", str(epochs),
                   "--modalities", "image,text", "--seed", "0"], env)
    config = json.loads((run / "config.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    cache = config["data"].get("cache") or {}
    got.update(decode=cache.get("load_seconds", float("nan")), reused=cache.get("reused"),
               epoch=metrics[0]["seconds"], load=os.getloadavg()[0])
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/polyvae-fmnist"))
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="also the in-memory path (cache off)")
    parser.add_argument("--coherence-epochs", type=int, default=0)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest = write_dataset(args.workdir, args.rows)
    print(f"data: {manifest} ({args.rows} rows, written or found in {time.perf_counter() - t0:.0f} s); "
          f"{os.cpu_count()} cores")
    shutil.rmtree(manifest.parent / ".polyvae-cache", ignore_errors=True)
    env = {**os.environ}
    env.pop("POLYVAE_DATA_CACHE", None)
    runs = [("first run (decodes, writes the cache)", train(args.workdir / "run-first", manifest, args.epochs, env)),
            ("second run (reuses the cache)", train(args.workdir / "run-second", manifest, args.epochs, env))]
    if args.baseline:
        runs.append(("in memory, no cache (POLYVAE_DATA_CACHE=off)",
                     train(args.workdir / "run-baseline", manifest, args.epochs,
                           {**env, "POLYVAE_DATA_CACHE": "off"})))
    print(f"\n{args.rows} rows, image + text, {args.epochs} epoch(s)\n")
    print("| run | data s | epoch 1 s | wall s | peak MB (largest process) | peak MB (process tree) | load |")
    print("|---|---|---|---|---|---|---|")
    for name, r in runs:
        decode = "n/a" if r["reused"] is None else f"{r['decode']:.1f}"
        print(f"| {name} | {decode} | {r['epoch']:.1f} | {r['wall']:.1f} | {r['largest_mb']:,.0f} | "
              f"{r['tree_mb']:,.0f} | {r['load']:.2f} |")
    if args.coherence_epochs:
        run = args.workdir / "run-coherence"
        trained = train(run, manifest, args.coherence_epochs, env)
        polyvae = str(Path(sys.executable).parent / "polyvae")
        out = subprocess.run([polyvae, "evaluate", str(run), "--data", str(manifest), "--json"],
                             capture_output=True, text=True, check=True).stdout
        report = json.loads(out)
        print(f"\ncoherence after {args.coherence_epochs} epochs ({trained['wall']:.0f} s), held-out rows:")
        print(json.dumps({k: v for k, v in report.items() if "coherence" in k}, indent=2))


if __name__ == "__main__":
    main()
