"""A run directory: ``config.json`` + ``model.safetensors``, rebuilt through the plugins."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, write_text_atomic
from .config import RunConfig
from .errors import IncompatibleRun, PolyvaeError
from .modality import Modality
from .models import AutoencoderModel
from .plugins import Registry, get_registry

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


def build_modalities(config: RunConfig, registry: Registry) -> dict[str, Modality]:
    """Instantiate each modality of the run with its options (not fitted)."""
    mods = {}
    for name in config.model.modalities:
        cls = registry.modality(name)
        try:
            mods[name] = cls(**config.modality_options.get(name, {}))
        except TypeError as exc:
            raise PolyvaeError(f"bad options for modality '{name}': {exc}") from None
    return mods


def build_model(config: RunConfig, modalities: dict[str, Modality], registry: Registry) -> AutoencoderModel:
    """The ``--model`` class of the run, built on fitted modalities."""
    cls = registry.model(config.model.model)
    fusion = registry.fusion(config.model.fusion)() if getattr(cls, "uses_fusion", False) else None
    if fusion is not None:
        return cls(modalities, config.model, fusion)
    return cls(modalities, config.model)


def plugin_versions(config: RunConfig, registry: Registry) -> dict[str, dict[str, str]]:
    """Kind/name -> version and package of every plugin the run depends on."""
    wanted = [("modality", m) for m in config.model.modalities] + [("model", config.model.model)]
    if getattr(registry.model(config.model.model), "uses_fusion", False):
        wanted.append(("fusion", config.model.fusion))
    out = {}
    for kind, name in wanted:
        info = registry.info[(kind, name)]
        out[f"{kind}:{name}"] = {"version": info.version, "package": info.package}
    return out


def save_run(run_dir: Path, config: RunConfig, model: torch.nn.Module) -> None:
    """Write config.json and model.safetensors atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / CONFIG, config.to_json())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "polyvae"})


@dataclass
class LoadedRun:
    path: Path
    config: RunConfig
    modalities: dict[str, Modality]
    model: AutoencoderModel


def read_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise IncompatibleRun(f"{run_dir}: not a polyvae run (no {CONFIG})")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise IncompatibleRun(f"{path}: unreadable run config ({exc})") from None


def check_plugins(config: RunConfig, registry: Registry) -> None:
    """Refuse a run whose plugins are missing here or installed at another version."""
    tables = {"modality": registry.modalities, "fusion": registry.fusions, "model": registry.models}
    for key, need in config.plugins.items():
        kind, name = key.split(":", 1)
        if name not in tables.get(kind, {}):
            raise IncompatibleRun(f"this run needs the {kind} plugin '{name}' "
                                  f"(package {need.get('package')}), which is not installed")
        have = registry.info[(kind, name)].version
        if have != need.get("version"):
            raise IncompatibleRun(f"this run was trained with {kind} plugin '{name}' version "
                                  f"{need.get('version')}, but version {have} is installed")


def load_run(run_dir: str | Path, registry: Registry | None = None, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild a trained model from its run directory, without unpickling anything."""
    run_dir = Path(run_dir)
    registry = registry or get_registry()
    config = read_config(run_dir)
    check_plugins(config, registry)
    modalities = build_modalities(config, registry)
    for name, mod in modalities.items():
        mod.load_state(config.modality_states.get(name, {}))
    model = build_model(config, modalities, registry)
    weights_path = run_dir / WEIGHTS
    if not weights_path.exists():
        raise IncompatibleRun(f"{run_dir}: no {WEIGHTS} (training did not finish an epoch?)")
    try:
        state = load_file(str(weights_path))
    except Exception as exc:
        raise IncompatibleRun(f"{weights_path}: not a valid safetensors file ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IncompatibleRun(f"{weights_path}: weights do not fit the configured model ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return LoadedRun(run_dir, config, modalities, model)
