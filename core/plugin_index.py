"""What the installed plugins provide, listed without importing them (or torch).

Building the registry imports every plugin, and a plugin's classes import torch: seconds
before ``polyvae plugins`` or ``polyvae --help`` could print a line. So the listing (plugin
rows, load errors, and the commands plugins add to the CLI) is kept in a small JSON file
beside the user's other caches, under a *fingerprint* of what is installed: polyvae's own
version and source files, and each ``polyvae`` entry point with its distribution's version
and source files (sizes and modification times, a few hundred ``stat`` calls). Installing,
removing, upgrading or editing a plugin changes the fingerprint, and the next listing
rebuilds the registry and rewrites the file. Nothing else reads this cache: training,
loading and generation always use the live registry.

``POLYVAE_CACHE_DIR`` moves the cache; ``POLYVAE_CACHE_DIR=off`` disables it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__
from .hookspecs import PROJECT_NAME

INDEX_FILE = "plugin-index.json"


@dataclass
class PluginCommand:
    """A command a plugin adds through ``polyvae_register_commands``: its name and short help."""

    name: str
    help: str = ""


@dataclass
class PluginIndex:
    """The listing: what ``polyvae plugins`` prints and which commands plugins add."""

    plugins: list = field(default_factory=list)     # PluginInfo
    errors: list[str] = field(default_factory=list)
    commands: list[PluginCommand] = field(default_factory=list)


def cache_dir() -> Path | None:
    """Where the index lives, or None when caching is off."""
    chosen = os.environ.get("POLYVAE_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "none") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "polyvae"


def _stat_tree(root: Path, digest) -> None:
    """Feed the name, size and mtime of every source file under ``root`` to ``digest``."""
    if root.is_file():
        files = [root]
    else:
        files = sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json", ".toml", ".cfg")
                       and "__pycache__" not in p.parts)
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())


def _module_root(name: str) -> Path | None:
    """The file or package folder of the top-level module ``name``, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        locations = list(spec.submodule_search_locations)
        return Path(locations[0]) if locations else None
    return Path(spec.origin) if spec.origin and spec.origin not in ("built-in", "frozen") else None


def fingerprint() -> str:
    """A digest of what is installed: polyvae and every entry point of the ``polyvae`` group."""
    digest = hashlib.sha256(f"polyvae {__version__}\n".encode())
    core = Path(__file__).resolve().parent
    for root in (core, core.parent / "plugins"):     # siblings installed or editable
        _stat_tree(root, digest)
    for ep in sorted(metadata.entry_points(group=PROJECT_NAME), key=lambda e: (e.name, e.value)):
        dist = ep.dist
        digest.update(f"ep {ep.name}={ep.value} {dist.name if dist else '?'} "
                      f"{dist.version if dist else '?'}\n".encode())
        root = _module_root(ep.value.split(":")[0].split(".")[0].strip())
        if root is not None:
            _stat_tree(root, digest)
    return digest.hexdigest()


def _from_json(raw: dict) -> PluginIndex:
    from .plugins import PluginInfo
    return PluginIndex([PluginInfo(**p) for p in raw["plugins"]], list(raw["errors"]),
                       [PluginCommand(**c) for c in raw["commands"]])


def _build() -> PluginIndex:
    """The listing from the live registry (imports every plugin)."""
    import click

    from .plugins import get_registry

    registry = get_registry()
    scratch = click.Group("polyvae")
    registry.manager.hook.polyvae_register_commands(cli=scratch)
    commands = [PluginCommand(name, cmd.get_short_help_str(limit=80))
                for name, cmd in sorted(scratch.commands.items())]
    return PluginIndex(registry.plugin_infos(), [e.message() for e in registry.errors], commands)


def plugin_index() -> PluginIndex:
    """The listing, from the cache when it matches what is installed, else rebuilt (and saved).

    When the registry is already built in this process, it is used directly.
    """
    from . import plugins as live

    folder = cache_dir()
    if live._REGISTRY is not None or folder is None:
        return _build()
    key = fingerprint()
    path = folder / INDEX_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("fingerprint") == key:
            return _from_json(raw)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = _build()
    payload = {"fingerprint": key, "plugins": [asdict(p) for p in index.plugins], "errors": index.errors,
               "commands": [asdict(c) for c in index.commands]}
    try:
        from .atomic import write_text_atomic
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(payload, indent=1))
    except OSError:
        pass                       # a read-only home only costs the next listing its speed
    return index
