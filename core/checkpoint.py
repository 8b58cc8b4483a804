"""Resumable training state in safetensors + JSON: nothing is ever unpickled.

``checkpoint/state.safetensors`` holds model weights, optimiser tensors and RNG states;
``checkpoint/state.json`` holds the epoch, the optimiser's non-tensor state and the
history. The JSON is written last, and it names the tensor file's digest, so a kill
between the two writes is detected and the previous complete checkpoint is kept.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, write_text_atomic
from .errors import IncompatibleRun

TENSORS = "state.safetensors"
META = "state.json"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    epoch: int, extra: dict[str, Any]) -> None:
    """Write the state after ``epoch`` complete epochs, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    plain_optim = None
    if optimizer is not None:
        opt_tensors, plain_optim = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    with atomic_path(folder / TENSORS) as tmp:
        save_file(tensors, str(tmp))
        digest = _digest(tmp)
    meta = {
        "epoch": epoch, "digest": digest, "optimizer": plain_optim,
        "rng_python": repr(random.getstate()),
        "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        **extra,
    }
    write_text_atomic(folder / META, json.dumps(meta))


def load_checkpoint(folder: Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None) -> dict[str, Any] | None:
    """Restore model, optimiser and RNGs; returns the JSON metadata, or None if there is none."""
    meta_path, tensor_path = folder / META, folder / TENSORS
    if not meta_path.exists() or not tensor_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise IncompatibleRun(f"{meta_path}: corrupt checkpoint metadata ({exc})") from None
    if _digest(tensor_path) != meta.get("digest"):
        raise IncompatibleRun(f"{tensor_path}: does not match {meta_path} (interrupted write?)")
    tensors = load_file(str(tensor_path))
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights)
    if optimizer is not None and meta.get("optimizer") is not None:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[:torch.cuda.device_count()])
    import ast
    random.setstate(_python_state(ast.literal_eval(meta["rng_python"])))
    s = meta["rng_numpy"]
    np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), *s[2:]))
    return meta


def _python_state(value):
    """literal_eval gives lists where random.getstate() had tuples."""
    version, internal, gauss = value
    return version, tuple(internal), gauss
