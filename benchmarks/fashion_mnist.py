"""All of Fashion-MNIST (60,000 training images with their class names) through polyvae:
first decode, one training epoch, peak memory, and a second run that reuses the data cache.

    .venv/bin/python benchmarks/fashion_mnist.py [--workdir /tmp/polyvae-fmnist] [--rows 60000]
        [--epochs 1] [--steps first,second] [--coherence-epochs 0]

The data comes from Debian's ``dataset-fashion-mnist`` package (``apt-get download`` and
``dpkg -x`` into the work folder, or the installed ``/usr/share/datasets/fashion-mnist``):
60,000 PNGs and a manifest (``image``, ``text`` = the class name, ``label``). Each step is
its own process; its peak memory is measured twice: the largest single process
(``ru_maxrss`` from ``wait4``, what ``/usr/bin/time -v`` calls maximum resident set size)
and the whole process tree at once (decoding workers included; forked workers share pages,
so this sum over-counts), sampled from ``/proc`` every 0.1 s.

Steps (``--steps``, in this order):

* ``first``: the manifest's cache removed, then ``polyvae train`` (decode + epochs);
* ``second``: the same ``polyvae train`` again, which reuses the cache;
* ``second-load``: only the data loading ``polyvae train`` does (``prepare_data``), reusing
  the cache: the second run's decode time without its epoch;
* ``baseline``, ``baseline-load``: the same with ``POLYVAE_DATA_CACHE=off`` (everything
  decoded in memory, as before the cache), a whole training or its loading only;
* ``encode``: ``polyvae encode`` of the first run over all rows (reuses the cache);
* ``--coherence-epochs N``: a run of N epochs, then ``polyvae evaluate --json`` on its
  held-out rows (text->image and image->text coherence).

The machine is shared: the 1-minute load is printed with every figure.
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


LOAD = """
import json, sys, time
from pathlib import Path
from polyvae.core.plugins import get_registry
from polyvae.core.run import build_modalities
from polyvae.core.training import prepare_data
from polyvae.pipelines.training_run import build_config
config = build_config(None, {"model": {"modalities": ["image", "text"]}, "train": {"seed": 0}})
registry = get_registry()
build_modalities(config, registry)          # plugin imports, not part of the data loading
t0 = time.perf_counter()
data = prepare_data(config, Path(sys.argv[1]), registry, fit=True)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(data.train) + len(data.validation),
                  "reused": None if data.cache is None else data.cache.reused}))
"""


def polyvae() -> str:
    return str(Path(sys.executable).parent / "polyvae")


def train(run: Path, manifest: Path, epochs: int, env: dict[str, str]) -> dict[str, float]:
    shutil.rmtree(run, ignore_errors=True)
    got = measure([polyvae(), "train", str(run), "--data", str(manifest), "--epochs", str(epochs),
                   "--modalities", "image,text", "--seed", "0"], env)
    config = json.loads((run / "config.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    cache = config["data"].get("cache") or {}
    got.update(decode=cache.get("load_seconds"), reused=cache.get("reused"),
               epoch=metrics[0]["seconds"], load=os.getloadavg()[0])
    return got


def load_only(manifest: Path, env: dict[str, str]) -> dict[str, float]:
    got = measure([sys.executable, "-c", LOAD, str(manifest)], env)
    told = json.loads(got["output"].strip().splitlines()[-1])
    got.update(decode=told["seconds"], reused=told["reused"], epoch=None, load=os.getloadavg()[0])
    return got


def encode(run: Path, manifest: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    entries = len(list((manifest.parent / ".polyvae-cache").glob("*/meta.json")))
    got = measure([polyvae(), "encode", str(run), "--data", str(manifest), "--out", str(out)], env)
    reused = len(list((manifest.parent / ".polyvae-cache").glob("*/meta.json"))) == entries
    got.update(decode=None, reused=reused, epoch=None, load=os.getloadavg()[0])
    return got


def coherence(workdir: Path, manifest: Path, epochs: int, env: dict[str, str]) -> None:
    run = workdir / "run-coherence"
    trained = train(run, manifest, epochs, env)
    out = subprocess.run([polyvae(), "evaluate", str(run), "--data", str(manifest), "--json"],
                         capture_output=True, text=True, check=True, env=env).stdout
    report = json.loads(out)
    print(f"\ncoherence after {epochs} epochs ({trained['wall']:.0f} s), held-out rows:")
    print(json.dumps({k: v for k, v in report.items() if "coherence" in k}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/polyvae-fmnist"))
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", default="first,second",
                        help="comma-separated: first, second, second-load, baseline, baseline-load, encode")
    parser.add_argument("--coherence-epochs", type=int, default=0)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest = write_dataset(args.workdir, args.rows)
    print(f"data: {manifest} ({args.rows} rows, written or found in {time.perf_counter() - t0:.0f} s); "
          f"{os.cpu_count()} cores", flush=True)
    env = {**os.environ}
    env.pop("POLYVAE_DATA_CACHE", None)
    memory = {**env, "POLYVAE_DATA_CACHE": "off"}
    first = args.workdir / "run-first"
    steps = {
        "first": ("first run: decodes, writes the cache, trains",
                  lambda: shutil.rmtree(manifest.parent / ".polyvae-cache", ignore_errors=True)
                  or train(first, manifest, args.epochs, env)),
        "second": ("second run: reuses the cache, trains", lambda: train(args.workdir / "run-second", manifest,
                                                                        args.epochs, env)),
        "second-load": ("second run's data loading only (reuses the cache)", lambda: load_only(manifest, env)),
        "baseline": ("in memory, no cache (POLYVAE_DATA_CACHE=off), trains",
                     lambda: train(args.workdir / "run-baseline", manifest, args.epochs, memory)),
        "baseline-load": ("in memory, no cache: data loading only", lambda: load_only(manifest, memory)),
        "encode": ("polyvae encode of the first run, all rows", lambda: encode(first, manifest,
                                                                               args.workdir / "z.npy", env)),
    }
    wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in steps]
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; known: {', '.join(steps)}")
    rows = []
    for name in wanted:
        label, step = steps[name]
        result = step()
        rows.append((label, result))
        print(f"{label}: {table_row(label, result)}", flush=True)
    print(f"\n{args.rows} rows, image + text, {args.epochs} epoch(s)\n")
    print("| step | data s (decode, or cache reused) | epoch 1 s | wall s | peak MB (largest process) "
          "| peak MB (process tree) | load |")
    print("|---|---|---|---|---|---|---|")
    for label, result in rows:
        print(table_row(label, result))
    if args.coherence_epochs:
        coherence(args.workdir, manifest, args.coherence_epochs, env)


def table_row(label: str, r: dict) -> str:
    def num(v, digits=1):
        return "n/a" if v is None else f"{v:,.{digits}f}"
    data = num(r["decode"]) + (" (reused)" if r["reused"] else "")
    return (f"| {label} | {data} | {num(r['epoch'])} | {num(r['wall'])} | {num(r['largest_mb'], 0)} | "
            f"{num(r['tree_mb'], 0)} | {r['load']:.2f} |")


if __name__ == "__main__":
    main()
