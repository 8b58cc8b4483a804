"""Start-up time of the light commands: ``polyvae --help``, ``--version`` and ``plugins``.

Command (from the repository root)::

    .venv/bin/python benchmarks/bench_startup.py              # 7 runs of each, medians
    .venv/bin/python benchmarks/bench_startup.py --repeats 15

Each command runs as a fresh ``.venv/bin/polyvae`` process (wall clock, from spawn to
exit). The plugin index lives in a temporary ``POLYVAE_CACHE_DIR``: the first ``plugins``
call fills it (that cold figure is printed too: it pays torch and every plugin), the timed
runs read it. The reference, measured in the same run and interleaved with the commands, is
a process that only imports torch (what every command paid before the imports were made lazy).
The target is under 1 s on an idle machine; the 1-minute load average is printed beside the
figures, since the machine is shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLYVAE = ROOT / ".venv" / "bin" / "polyvae"
PYTHON = ROOT / ".venv" / "bin" / "python"

COMMANDS = {"polyvae --help": ["--help"], "polyvae --version": ["--version"], "polyvae plugins": ["plugins"]}


def timed(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polyvae-startup-") as cache:
        env = {**os.environ, "POLYVAE_CACHE_DIR": cache}
        cold = timed([str(POLYVAE), "plugins"], env)
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        times["python -c 'import torch' (reference)"] = []
        for _ in range(args.repeats):               # interleaved, so a load change hits all alike
            for name, argv in COMMANDS.items():
                times[name].append(timed([str(POLYVAE), *argv], env))
            times["python -c 'import torch' (reference)"].append(timed([str(PYTHON), "-c", "import torch"], env))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f}, {args.repeats} runs each, wall clock")
    print(f"{'command':<40} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in times.items():
        print(f"{name:<40} {statistics.median(values):>7.3f}s {min(values):>7.3f}s {max(values):>7.3f}s")
    print(f"{'polyvae plugins, empty plugin index':<40} {cold:>7.3f}s   (once: imports torch and the plugins)")
    worst = max(statistics.median(v) for k, v in times.items() if k in COMMANDS)
    print(f"slowest light command: {worst:.3f}s ({'under' if worst < 1 else 'NOT under'} 1 s)")
    sys.exit(0)


if __name__ == "__main__":
    main()
