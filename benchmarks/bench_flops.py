"""Achieved FLOP/s of an MVAE training step as a share of this machine's measured matmul peak.

Command (from the repository root)::

    .venv/bin/python benchmarks/bench_flops.py --threads 2
    .venv/bin/python benchmarks/bench_flops.py --threads 2 --compile   # + polyvae's compiled bf16 step

The step is polyvae's MVAE on the MLP architecture of ``same_arch.py`` (digits + words,
latent 16): forward, backward and Adam. Its FLOPs are counted two ways and both are printed:

* measured: ``torch.utils.flop_counter.FlopCounterMode`` over one real step (every matmul
  of the forward *and* the backward pass, as dispatched);
* analytic: ``2 * in * out`` per row and Linear layer for the forward, times the rows each
  network sees in a step (each encoder: B; each decoder: subsets x B, as polyvae's
  objective decodes every modality from every subset's posterior); backward = 2x forward,
  less the input gradient of each encoder's first layer.

The peak is the best square ``torch.matmul`` rate (fp32 and bf16) measured in the same
run with the same thread count (polyvae with the fused Adam its trainer uses,
MultiVae with the plain Adam of its trainer). "share" = achieved FLOP/s / peak of the step's matmul
dtype (fp32 for the fp32 step, bf16 for the autocast step). Everything that is not a
matmul (Adam, activations, the ELBO, Python) earns no FLOPs here, so the share is
an honest upper-bound-free figure. With MultiVae installed its MLP MVAE step is measured
the same way as a reference.

Options: ``--batch-sizes 64 512``, ``--latent-dim``, ``--seconds`` per measurement,
``--repeats``, ``--device``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import same_arch as sa  # noqa: E402


def linear_flops(module: torch.nn.Module, rows: int, skip_first_input_grad: bool) -> tuple[float, float]:
    """(forward, backward) FLOPs of every ``nn.Linear`` in ``module`` applied to ``rows`` rows."""
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    fwd = sum(2.0 * rows * m.in_features * m.out_features for m in linears)
    bwd = 2.0 * fwd
    if skip_first_input_grad and linears:
        bwd -= 2.0 * rows * linears[0].in_features * linears[0].out_features
    return fwd, bwd


def analytic_polyvae(model, batch: int) -> float:
    """Matmul FLOPs of one polyvae MVAE step on complete rows (PoE: one sample per subset)."""
    subsets = model.subsets.sample().shape[0]
    total = 0.0
    for m in model.order:
        f, b = linear_flops(model.encoders[m], batch, skip_first_input_grad=True)
        total += f + b
        f, b = linear_flops(model.decoders[m], subsets * batch, skip_first_input_grad=False)
        total += f + b
    return total


def counted(step, idx) -> float:
    with FlopCounterMode(display=False) as counter:
        step(idx)
    return float(counter.get_total_flops())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true",
                        help="add polyvae's compiled bf16 step (model.compile(), as train.compile)")
    args = parser.parse_args(argv)
    threads = common.set_threads(args.threads)
    device = torch.device(args.device)
    print("machine:", common.machine_line(threads))
    peaks = {"fp32": common.matmul_peak(torch.float32, device), "bf16": common.matmul_peak(torch.bfloat16, device)}
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s "
          f"(bf16/fp32 = {peaks['bf16'] / peaks['fp32']:.2f}), load {common.load():.2f}")

    data = common.digits(binary=True)
    torch.manual_seed(0)
    poly = sa.polyvae_mvae(data.words, args.latent_dim, 5).to(device)
    compiled = None
    if args.compile:
        compiled = sa.polyvae_mvae(data.words, args.latent_dim, 5).to(device)
        compiled.compile()
    pt = {m: t.to(device) for m, t in sa.polyvae_tensors(poly, data.images, data.words).items()}
    try:
        mv = sa.multivae_mvae(poly, args.latent_dim, 5).to(device)
        mt = sa.multivae_tensors(pt, len(poly.modalities["text"].vocab))
    except ImportError:
        mv = None
        print("(MultiVae not installed: no reference rows; pip install multivae==1.0.3)")

    print(f"\n{'step':26s} {'batch':>5s} {'GFLOP/step':>10s} {'analytic':>9s} {'steps/s':>8s} "
          f"{'GFLOP/s':>8s} {'peak':>5s} {'share':>6s}  load")
    for batch in args.batch_sizes:
        idx = torch.arange(batch, device=device) % len(data.words)
        steps = {}
        for bf16 in (False, True):
            tag = "bf16" if bf16 else "fp32"
            steps[f"polyvae {tag}"] = (sa.polyvae_step(poly, pt, torch.optim.Adam(poly.parameters(), 1e-3, fused=True), bf16),
                                       tag, analytic_polyvae(poly, batch))
            if mv is not None:
                steps[f"MultiVae {tag}"] = (sa.multivae_step(mv, mt, torch.optim.Adam(mv.parameters(), 1e-3), bf16),
                                            tag, float("nan"))
        if compiled is not None:
            steps["polyvae bf16 + compile"] = (
                sa.polyvae_step(compiled, pt, torch.optim.Adam(compiled.parameters(), 1e-3, fused=True), True),
                "bf16", analytic_polyvae(poly, batch))
        flops = {}
        for name, (step, _, _) in steps.items():
            for _ in range(5):
                step(idx)
            # the compiled step does the same matmuls (FlopCounterMode does not see inside it)
            flops[name] = flops["polyvae bf16"] if name.endswith("compile") else counted(step, idx)
        rounds = common.interleaved({name: (lambda s=s: common.rate(lambda: s(idx), 1.0, args.seconds, device=device))
                                     for name, (s, _, _) in steps.items()}, args.repeats)
        for name, (_, tag, analytic) in steps.items():
            rate = rounds[name].median
            achieved = flops[name] * rate
            print(f"{name:26s} {batch:5d} {flops[name] / 1e9:10.3f} "
                  f"{(analytic / 1e9 if analytic == analytic else float('nan')):9.3f} {rate:8.1f} "
                  f"{achieved / 1e9:8.1f} {tag:>5s} {achieved / peaks[tag]:6.1%}  "
                  f"{min(rounds[name].loads):.1f}..{max(rounds[name].loads):.1f}")
    print("load at end:", f"{common.load():.2f}", "| peaks re-measured:",
          f"fp32 {common.matmul_peak(torch.float32, device) / 1e9:.1f}, "
          f"bf16 {common.matmul_peak(torch.bfloat16, device) / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
