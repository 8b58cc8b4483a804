"""``linear-ae`` at its default settings against PCA: the largest principal angle, k = 4, 8, 16.

Command (from the repository root)::

    .venv/bin/python benchmarks/bench_linear_pca.py                  # k = 4 8 16, digits at 32x32
    .venv/bin/python benchmarks/bench_linear_pca.py --k 8 --size 8   # native 8x8 pixels
    .venv/bin/python benchmarks/bench_linear_pca.py --threads 1      # as measured in docs/classic-models.md

Writes scikit-learn's 1797 handwritten digits as PNG files with a manifest (what a user
with digits from another source has), then for each k runs, as a user would,
``polyvae train RUN --data manifest.csv --model linear-ae --latent-dim k`` with nothing
else (default image size 32, default epochs and batch size), in a fresh process, and
measures with ``compare_with_pca`` (plugins/models/classic/linear.py) on the run's training
rows: the largest principal angle between the decoder's columns and PCA's top-k components,
and the model's MSE against PCA's. It also prints the line training itself printed
(the run's verdict) and PCA's eigen-gap ``lambda_k / lambda_k+1`` (the subspace is
ill-defined where it is near 1).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLYVAE = ROOT / ".venv" / "bin" / "polyvae"


def write_digits(folder: Path) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label"])
        for i, (img, label) in enumerate(zip(digits.images, digits.target)):
            Image.fromarray((img / 16 * 255).astype(np.uint8)).save(folder / "images" / f"{i:04d}.png")
            writer.writerow([f"images/{i:04d}.png", label])
    return folder / "manifest.csv"


def measure(run_dir: Path, manifest: Path) -> tuple[float, float, float]:
    import numpy as np
    from sklearn.decomposition import PCA

    from polyvae.core.plugins import get_registry
    from polyvae.core.run import load_run
    from polyvae.core.training import prepare_data
    from polyvae.plugins.models.classic import compare_with_pca

    run = load_run(run_dir)
    data = prepare_data(run.config, manifest, get_registry(), fit=False)
    x = data.train.data["image"]
    result = compare_with_pca(run.model, x)
    k = run.model.latent_dim
    ev = PCA(n_components=k + 1, svd_solver="full").fit(x.flatten(1).double().numpy()).explained_variance_
    return result.max_angle_degrees, result.relative_excess, float(ev[k - 1] / max(ev[k], np.finfo(float).tiny))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--size", type=int, default=None, help="[modality_options.image] size (default: 32)")
    parser.add_argument("--threads", type=int, default=None,
                        help="[train] num_threads (default: torch's; on a shared machine 1 avoids threads "
                             "spinning against other processes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polyvae-linear-") as tmp:
        root = Path(tmp)
        manifest = write_digits(root / "digits")
        extra, settings = [], ""
        if args.threads:
            settings += f"[train]\nnum_threads = {args.threads}\n"
        if args.size:
            settings += f"[modality_options.image]\nsize = {args.size}\n"
        if settings:
            (root / "settings.toml").write_text(settings)
            extra = ["--config", str(root / "settings.toml")]
        load = os.getloadavg()[0]
        print(f"{os.cpu_count()} CPUs, load average {load:.2f}; 1797 digits, image size {args.size or 32}, "
              f"threads {args.threads or 'default'}")
        print(f"{'k':>3} {'angle (deg)':>12} {'MSE above PCA':>14} {'eigen-gap':>10} {'train s':>8}")
        for k in args.k:
            run_dir = root / f"run{k}"
            t0 = time.perf_counter()
            proc = subprocess.run([str(POLYVAE), "train", str(run_dir), "--data", str(manifest), "--model",
                                   "linear-ae", "--latent-dim", str(k), "--quiet", *extra],
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            angle, excess, gap = measure(run_dir, manifest)
            said = [ln for ln in proc.stderr.splitlines() if "PCA" in ln]
            print(f"{k:>3} {angle:>12.4f} {100 * excess:>13.5f}% {gap:>10.3f} {seconds:>8.1f}")
            for line in said:
                print(f"      training said: {line}")


if __name__ == "__main__":
    main()
