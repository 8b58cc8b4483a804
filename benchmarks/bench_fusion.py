"""Fusion micro-benchmark: PoE / MoE / MoPoE over (batch, experts, latent) with missing experts.

Command (from the repository root)::

    .venv/bin/python benchmarks/bench_fusion.py --threads 2

For every shape, experts are random Gaussians and each expert is missing with probability
0.3 (so some rows have no expert at all). Each fusion plugin of the registry runs
``fuse`` forward, and forward + backward of ``sum(weights * mu) + sum(weights * logvar)``.

Reference, measured in the same run: the same posterior built the way MultiVae 1.0.3
builds it, from MultiVae's own primitives (``pip install multivae==1.0.3``):

* ``poe``: MultiVae's MVAE way: missing experts get ``logvar = +inf``, a N(0, I) prior
  expert is appended, ``multivae...stable_poe``;
* ``moe``: a Python loop over experts building each mixture component and its weight
  (MultiVae's MMVAE keeps a list of per-modality posteriors);
* ``mopoe``: MultiVae's MoPoE ``inference`` way: a Python loop over the ``2^M - 1`` subsets,
  each fused with ``multivae...poe`` plus a prior expert, weighted by availability.

Rates are rows per second (``batch`` rows per call); "x ref" is the median over
interleaved rounds of polyvae/reference. "max |diff|" checks the two agree on every
weighted component. Options: ``--batches``, ``--experts``, ``--latents``, ``--rounds``,
``--seconds``, ``--device``.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from polyvae.core.experts import ExpertStack  # noqa: E402
from polyvae.core.plugins import build_registry  # noqa: E402

MISSING = 0.3


def make_experts(batch: int, experts: int, latent: int, device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(experts, batch, latent, generator=gen)
    logvar = torch.randn(experts, batch, latent, generator=gen).clamp(-4, 4)
    present = torch.rand(experts, batch, generator=gen) >= MISSING
    return mu.to(device), logvar.to(device), present.to(device)


# ---- references (MultiVae's way, from MultiVae's primitives) -----------------------------
def reference_poe(mu, logvar, present):
    from multivae.models.base.base_utils import stable_poe

    logvar = logvar.masked_fill(~present[..., None], math.inf)
    mus = torch.cat([mu, torch.zeros_like(mu[:1])])
    logvars = torch.cat([logvar, torch.zeros_like(logvar[:1])])
    m, lv = stable_poe(mus, logvars)
    return m[None], lv[None], torch.ones(1, mu.shape[1], device=mu.device)


def reference_moe(mu, logvar, present):
    mus, logvars, weights = [], [], []
    count = present.sum(0).clamp_min(1)
    nobody = ~present.any(0)
    for m in range(mu.shape[0]):
        keep = present[m][:, None]
        mus.append(torch.where(keep, mu[m], torch.zeros_like(mu[m])))
        logvars.append(torch.where(keep, logvar[m], torch.zeros_like(logvar[m])))
        w = present[m].float() / count
        weights.append(w + (nobody.float() if m == 0 else 0.0))
    return torch.stack(mus), torch.stack(logvars), torch.stack(weights)


def reference_mopoe(mu, logvar, present):
    from multivae.models.base.base_utils import poe

    M, B, D = mu.shape
    mus, logvars, avail = [], [], []
    for size in range(1, M + 1):
        for subset in itertools.combinations(range(M), size):
            s_mu = torch.cat([mu[list(subset)], torch.zeros(1, B, D, device=mu.device)])
            s_lv = torch.cat([logvar[list(subset)], torch.zeros(1, B, D, device=mu.device)])
            p_mu, p_lv = poe(s_mu, s_lv)
            mus.append(p_mu)
            logvars.append(p_lv)
            avail.append(present[list(subset)].all(0))
    order = _bitmask_order(M)                                       # polyvae's component order
    avail = torch.stack([avail[c] for c in order]).float()
    nobody = ~present.any(0)
    avail[0] += nobody.float()
    weights = avail / avail.sum(0).clamp_min(1)
    mus = torch.stack([mus[c] for c in order])
    logvars = torch.stack([logvars[c] for c in order])
    # a row with nothing present gets the prior as its only component
    mus[0] = torch.where(nobody[:, None], 0.0, mus[0])
    logvars[0] = torch.where(nobody[:, None], 0.0, logvars[0])
    return mus, logvars, weights


@functools.lru_cache(maxsize=None)
def _bitmask_order(m: int) -> list[int]:
    """Indices of the combinations-ordered subsets sorted by bitmask (polyvae's order)."""
    subsets = [s for size in range(1, m + 1) for s in itertools.combinations(range(m), size)]
    return sorted(range(len(subsets)), key=lambda c: sum(1 << i for i in subsets[c]))


REFERENCES = {"poe": reference_poe, "moe": reference_moe, "mopoe": reference_mopoe}


def objective(mu, logvar, weights):
    return (weights[..., None] * mu).sum() + (weights[..., None] * logvar).sum()


def agreement(ours, ref) -> float:
    """Largest difference on weighted components (unweighted ones may differ by design)."""
    mu, lv, w = ours
    rmu, rlv, rw = ref
    used = (w > 0)[..., None].expand_as(mu)
    diff = max(float(torch.where(used, (mu - rmu).abs(), 0.0).max()),
               float(torch.where(used, (lv - rlv).abs(), 0.0).max()))
    return max(diff, float((w - rw).abs().max()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--experts", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--latents", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    threads = common.set_threads(args.threads)
    device = torch.device(args.device)
    print("machine:", common.machine_line(threads))
    try:
        import multivae  # noqa: F401
        have_ref = True
    except ImportError:
        have_ref = False
        print("(MultiVae not installed: no reference column; pip install multivae==1.0.3)")
    fusions = build_registry(entry_points=False).fusions
    print(f"\n{'fusion':6s} {'B':>5s} {'M':>2s} {'D':>3s} {'fwd rows/s':>12s} {'x ref':>6s} "
          f"{'fwd+bwd rows/s':>15s} {'x ref':>6s} {'max |diff|':>10s}  load")
    for name in ("poe", "moe", "mopoe"):
        if name not in fusions:
            continue
        fusion = fusions[name]()
        for batch, experts, latent in itertools.product(args.batches, args.experts, args.latents):
            mu, logvar, present = make_experts(batch, experts, latent, device)
            mu.requires_grad_(True)
            logvar.requires_grad_(True)

            def ours():
                post = fusion.fuse(ExpertStack(mu, logvar, present))
                return post.mu, post.logvar, post.weights

            ref = (lambda: REFERENCES[name](mu, logvar, present)) if have_ref else None
            cands = {"fwd": lambda: _no_grad(ours),
                     "bwd": lambda: objective(*ours()).backward()}
            if ref is not None:
                cands.update({"ref fwd": lambda: _no_grad(ref), "ref bwd": lambda: objective(*ref()).backward()})
            rounds = common.interleaved({k: (lambda f=f: common.rate(f, batch, args.seconds, device=device))
                                         for k, f in cands.items()}, args.rounds)
            diff = "-"
            x_fwd = x_bwd = float("nan")
            if ref is not None:
                with torch.no_grad():
                    diff = f"{agreement(ours(), ref()):.1e}"
                x_fwd = common.ratio_of_rounds(rounds["fwd"], rounds["ref fwd"])
                x_bwd = common.ratio_of_rounds(rounds["bwd"], rounds["ref bwd"])
            loads = [x for r in rounds.values() for x in r.loads]
            print(f"{name:6s} {batch:5d} {experts:2d} {latent:3d} {rounds['fwd'].median:12,.0f} {x_fwd:6.2f} "
                  f"{rounds['bwd'].median:15,.0f} {x_bwd:6.2f} {diff:>10s}  {min(loads):.1f}..{max(loads):.1f}",
                  flush=True)
    print("load at end:", f"{common.load():.2f}")


def _no_grad(fn):
    with torch.no_grad():
        return fn()


if __name__ == "__main__":
    main()
