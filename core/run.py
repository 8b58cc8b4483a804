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
    """The ``--model`` class of the run, built on fitted modalities (with the run's fusion
    when the class declares ``needs_fusion``)."""
    cls = registry.model(config.model.model)
    fusion = registry.fusion(config.model.fusion)() if cls.needs_fusion else None
    return cls(modalities, config.model, fusion=fusion, private_labels=config.private_labels)


def plugin_versions(config: RunConfig, registry: Registry) -> dict[str, dict[str, str]]:
    """Kind/name -> version and package of every plugin the run depends on."""
    wanted = [("modality", m) for m in config.model.modalities] + [("model", config.model.model)]
    if registry.model(config.model.model).needs_fusion:
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
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        return RunConfig.from_dict(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError, ValueError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise IncompatibleRun(f"{path}: unreadable run config ({type(exc).__name__}: {text})") from None


def check_plugins(config: RunConfig, registry: Registry) -> None:
    """Refuse a run whose plugins are missing here or installed at another version.

    The message names the plugin, its kind, the version the run needs and the package that
    provides it, so the fix (``pip install <package>==<version>``) is in the error.
    """
    tables = {"modality": registry.modalities, "fusion": registry.fusions, "model": registry.models}
    if not isinstance(config.plugins, dict):
        raise IncompatibleRun(f"{CONFIG}: 'plugins' must be an object of kind:name -> version")
    for key, need in config.plugins.items():
        kind, _, name = str(key).partition(":")
        need = need if isinstance(need, dict) else {"version": str(need)}
        package = need.get("package") or "?"
        if kind not in tables or not name:
            raise IncompatibleRun(f"this run needs the plugin '{key}' of unknown kind '{kind}' "
                                  f"(package {package}); this polyvae knows modality, fusion and model plugins")
        if name not in tables[kind]:
            raise IncompatibleRun(f"this run needs the {kind} plugin '{name}' version {need.get('version')} "
                                  f"(package {package}), which is not installed")
        have = registry.info[(kind, name)]
        if have.version != need.get("version"):
            raise IncompatibleRun(f"this run was trained with {kind} plugin '{name}' version "
                                  f"{need.get('version')} (package {package}), but version {have.version} "
                                  f"(package {have.package}) is installed")


def load_run(run_dir: str | Path, registry: Registry | None = None, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild a trained model from its run directory, without unpickling anything."""
    run_dir = Path(run_dir)
    registry = registry or get_registry()
    config = read_config(run_dir)
    check_plugins(config, registry)
    modalities = build_modalities(config, registry)
    for name, mod in modalities.items():
        try:
            mod.load_state(config.modality_states.get(name, {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleRun(f"{run_dir / CONFIG}: fitted state of modality '{name}' is unusable "
                                  f"({type(exc).__name__}: {exc})") from None
    model = build_model(config, modalities, registry)
    weights_path = run_dir / WEIGHTS
    if not weights_path.exists():
        raise IncompatibleRun(f"{run_dir}: no {WEIGHTS} (training did not finish an epoch?)")
    try:
        state = load_file(str(weights_path))
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        raise IncompatibleRun(f"{weights_path}: not a valid safetensors file, refused without "
                              f"unpickling ({text})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IncompatibleRun(f"{weights_path}: weights do not fit the configured model ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return LoadedRun(run_dir, config, modalities, model)
