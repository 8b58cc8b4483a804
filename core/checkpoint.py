"""Resumable training state in one safetensors file: nothing is ever unpickled.

``checkpoint/state.safetensors`` is the whole state after a complete epoch: the model
weights, the optimiser's tensors and the RNG states as tensors, and everything else (the
epoch, the optimiser's and the scheduler's plain settings, the Python and NumPy RNG states,
the metrics history) as JSON in the file's metadata header. One file written atomically is
one commit: a process killed at any instant leaves either the previous complete
checkpoint or the new one, never a mix. ``checkpoint/state.json`` is a readable copy of the
JSON part, written afterwards for people; it is never read back.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_path, write_text_atomic
from .errors import IncompatibleRun

TENSORS = "state.safetensors"
META = "state.json"
#: metadata key of the JSON part inside the safetensors header
META_KEY = "polyvae_checkpoint"
FORMAT = 1


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entry in state["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain["state"][str(pid)][key] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _json(value: Any, what: str) -> Any:
    """``value`` as JSON-able data; anything that is not (a function, an object) is refused."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be checkpointed without pickling: {exc}") from None


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    epoch: int, extra: dict[str, Any], scheduler: Any | None = None) -> None:
    """Write the state after ``epoch`` complete epochs as one atomic file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    plain_optim = None
    if optimizer is not None:
        opt_tensors, plain_optim = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "format": FORMAT, "epoch": int(epoch),
        "optimizer": _json(plain_optim, "the optimiser state"),
        "scheduler": _json(scheduler.state_dict(), "the LR scheduler state") if scheduler is not None else None,
        "rng_python": [version, list(internal), gauss],
        "rng_numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        **_json(extra, "the checkpoint's extra data"),
    }
    text = json.dumps(meta)
    with atomic_path(folder / TENSORS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "polyvae-checkpoint", META_KEY: text})
    readable = {k: v for k, v in meta.items() if k not in ("rng_python", "rng_numpy")}
    write_text_atomic(folder / META, json.dumps(readable, indent=1))


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The tensors and JSON metadata of ``folder``'s checkpoint, or None when there is none.

    Anything that is not a polyvae checkpoint (a pickle, a truncated file, another tool's
    safetensors) is an :class:`IncompatibleRun` naming the file; it is parsed as safetensors
    only, so a hostile file cannot run code.
    """
    path = Path(folder) / TENSORS
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        raise IncompatibleRun(f"{path}: not a valid polyvae checkpoint (safetensors: "
                              f"{' '.join(str(exc).split())[:200]})") from None
    if META_KEY not in header:
        raise IncompatibleRun(f"{path}: a safetensors file, but not a polyvae checkpoint (no {META_KEY} metadata)")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise IncompatibleRun(f"{path}: corrupt checkpoint metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("epoch"), int):
        raise IncompatibleRun(f"{path}: checkpoint format {meta.get('format') if isinstance(meta, dict) else '?'} "
                              f"is not the one this polyvae reads ({FORMAT})")
    return tensors, meta


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    scheduler: Any | None = None) -> dict[str, Any] | None:
    """Restore model, optimiser, scheduler and RNGs; returns the JSON metadata, or None if there is none."""
    found = read_checkpoint(folder)
    if found is None:
        return None
    tensors, meta = found
    path = Path(folder) / TENSORS
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
        if optimizer is not None and meta.get("optimizer") is not None:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        if scheduler is not None and meta.get("scheduler") is not None:
            scheduler.load_state_dict(meta["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise IncompatibleRun(f"{path}: does not fit the configured model and optimiser "
                              f"({str(exc).splitlines()[0][:200]})") from None
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                              key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[:torch.cuda.device_count()])
    if meta.get("rng_python"):
        version, internal, gauss = meta["rng_python"]
        random.setstate((version, tuple(internal), gauss))
    if meta.get("rng_numpy"):
        name, keys, pos, has_gauss, cached = meta["rng_numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return meta
