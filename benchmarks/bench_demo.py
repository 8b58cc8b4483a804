"""``polyvae demo`` end to end: wall time and peak memory.

Command (from the repository root)::

    .venv/bin/python benchmarks/bench_demo.py                 # the full demo, as `make demo` runs it
    .venv/bin/python benchmarks/bench_demo.py --size 600 --epochs 5    # a quicker look

Runs ``.venv/bin/polyvae demo OUT`` in a fresh process (a new temporary OUT each time) and
reports its wall time, its peak resident memory (``ru_maxrss`` of the finished child and
its descendants, from ``wait4``), and the per-phase timings the demo prints. The reference,
measured in the same run, is the floor every polyvae command pays: a process that only
imports torch and polyvae's CLI (``--repeats`` times each, medians). "x floor" is the demo
figure over that floor.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "import torch, polyvae.pipelines.cli; polyvae.pipelines.cli.cli"


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, combined output) of ``cmd`` run to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    # the child has been reaped by communicate(); its rusage is folded into RUSAGE_CHILDREN,
    # whose maxrss is the largest of any child so far: run the floor (smaller) first.
    import resource
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out.decode()[-3000:]}")
    return wall, peak_kib / 1024.0, out.decode(errors="replace")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="demo rows (default: the demo's own)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo's own)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the import floor")
    parser.add_argument("--keep", action="store_true", help="keep the demo output folder")
    args = parser.parse_args(argv)
    python = str(ROOT / ".venv" / "bin" / "python")
    polyvae = str(ROOT / ".venv" / "bin" / "polyvae")
    env = dict(os.environ)
    print("machine:", common.machine_line(int(env.get("OMP_NUM_THREADS", os.cpu_count() or 1))))

    floors = [measured([python, "-c", FLOOR], env) for _ in range(args.repeats)]
    floor_wall = statistics.median(f[0] for f in floors)
    floor_rss = max(f[1] for f in floors)

    out_dir = Path(tempfile.mkdtemp(prefix="polyvae-demo-bench-")) / "demo-out"
    cmd = [polyvae, "demo", str(out_dir)]
    if args.size:
        cmd += ["--size", str(args.size)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    load_before = common.load()
    wall, rss, output = measured(cmd, env)
    phases = re.search(r"timings \(s\): (.*)", output)
    print(f"command: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}  "
          f"(load {load_before:.2f} before, {common.load():.2f} after)")
    print(f"\n{'':24s} {'wall s':>8s} {'peak RSS MiB':>13s}")
    print(f"{'import floor (median)':24s} {floor_wall:8.1f} {floor_rss:13.0f}")
    print(f"{'polyvae demo':24s} {wall:8.1f} {rss:13.0f}")
    print(f"{'x floor':24s} {wall / floor_wall:8.1f} {rss / floor_rss:13.1f}")
    if phases:
        print("demo phases (s):", phases.group(1))
    coherence = [line.strip() for line in output.splitlines() if "->" in line and re.search(r"\d\.\d{3}$", line)]
    if coherence:
        print("demo coherence:", "; ".join(coherence))
    if args.keep:
        print("output kept in", out_dir)
    else:
        shutil.rmtree(out_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
