"""Device choice and process-group set-up for torchrun.

Under ``torchrun --nproc_per_node N polyvae train ...`` torchrun sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK`` and the rendezvous address; :func:`init_distributed` joins the
process group (gloo on CPU, NCCL on CUDA, one GPU per local rank). Outside torchrun the
same code runs as a world of one and none of the collectives below do anything.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from .atomic import written_paths
from .errors import UsageError

#: when set, every rank writes its final weights and the run files it wrote into this folder
#: (``rank<r>.safetensors``, ``rank<r>.json``): how the DDP test compares the ranks
DEBUG_DUMP_ENV = "POLYVAE_DEBUG_DUMP_DIR"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA GPU is visible to torch")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UsageError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX instructions (read from /proc/cpuinfo; False where it cannot be
    read). Elsewhere bf16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX in /proc/cpuinfo's flags, read once per process (training asks every step)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class Distributed:
    """This process's place in a torchrun job (world of 1 when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would use (``$CXX``, g++, clang++, c++), or None."""
    import shutil

    for name in (os.environ.get("CXX", ""), "g++", "clang++", "c++"):
        if name and shutil.which(name):
            return name
    return None


def check_compile_possible(device: torch.device, backend: str = "inductor") -> None:
    """``--compile`` with an unknown backend, or with inductor on CPU (which generates C++)
    and no compiler installed: say so in one line, rather than failing deep inside the first
    training step."""
    from torch._dynamo import list_backends

    if backend not in set(list_backends(exclude_tags=())) | {"inductor"}:
        offered = sorted(set(list_backends()) | {"inductor", "aot_eager", "eager"})
        raise UsageError(f"unknown compile_backend '{backend}'; torch offers {', '.join(offered)} "
                         f"(and the debugging ones of torch._dynamo.list_backends(exclude_tags=()))")
    if backend == "inductor" and device.type == "cpu" and cpp_compiler() is None:
        raise UsageError("--compile on CPU needs a C++ compiler (g++ or clang++; or set CXX) and "
                         "none was found; install one or train without --compile")


def init_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UsageError(f"local rank {local} has no GPU: {torch.cuda.device_count()} visible; "
                             f"use --nproc_per_node <= {torch.cuda.device_count()} or --device cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world, local), device


def all_reduce_sum(ctx: Distributed, values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks (in place, and returned); a no-op in a world of one."""
    if ctx.active:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(ctx: Distributed, flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on at least one (so all ranks stop together)."""
    if not ctx.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(ctx, value).item() > 0)


def gather_sums(ctx: Distributed, seen: int, sums: dict[str, float]) -> tuple[int, dict[str, float]]:
    """Epoch totals over all ranks (ranks may log different terms, so gather, not reduce)."""
    if not ctx.active:
        return seen, sums
    parts: list = [None] * ctx.world_size
    dist.all_gather_object(parts, (seen, sums))
    total: dict[str, float] = {}
    for _, part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0.0) + v
    return sum(p[0] for p in parts), total


def average_parameters(model: torch.nn.Module, ctx: Distributed) -> None:
    """Models that update themselves in ``forward`` (no backprop): average the ranks' weights."""
    with torch.no_grad():
        for p in model.parameters():
            dist.all_reduce(p.data, op=dist.ReduceOp.SUM)
            p.data /= ctx.world_size


def dump_rank_state(model: torch.nn.Module, ctx: Distributed, run_dir: Path) -> None:
    """With ``POLYVAE_DEBUG_DUMP_DIR`` set: this rank's final weights and the run files it wrote."""
    folder = os.environ.get(DEBUG_DUMP_ENV)
    if not folder:
        return
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(out / f"rank{ctx.rank}.safetensors"))
    root = str(Path(run_dir).resolve())
    written = sorted({p for p in written_paths() if p == root or p.startswith(root + os.sep)})
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(
        {"rank": ctx.rank, "world_size": ctx.world_size, "written": written}))


def barrier(ctx: Distributed) -> None:
    if ctx.active and dist.is_initialized():
        dist.barrier()


def shutdown_distributed(ctx: Distributed) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
