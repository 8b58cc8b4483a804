"""Building the plugin manager and the registries it fills.

Nothing happens at import time: :func:`get_registry` builds (and caches) the manager on
first use; :func:`build_registry` builds a fresh one, which tests use.
"""
from __future__ import annotations

import functools

import importlib
import importlib.metadata as metadata
from dataclasses import dataclass, field
from typing import Iterable

import pluggy

from . import hookspecs
from .errors import DuplicatePlugin, UnknownFusion, UnknownModality, UnknownModel

#: built-in plugins, registered after entry points, through the same hooks
DEFAULT_PLUGINS: tuple[str, ...] = (
    "polyvae.plugins.image",
    "polyvae.plugins.text",
    "polyvae.plugins.audio",
    "polyvae.plugins.fusion.poe",
    "polyvae.plugins.fusion.moe",
    "polyvae.plugins.fusion.mopoe",
    "polyvae.plugins.models",
)


@dataclass
class PluginInfo:
    """One row of ``polyvae plugins``."""

    name: str
    kind: str          # modality | fusion | model
    version: str
    package: str
    description: str = ""


@dataclass
class PluginLoadError:
    """A plugin that could not be imported or registered; the others keep working."""

    name: str
    package: str
    cause: str

    def message(self) -> str:
        return f'Error importing plugin "{self.name}" from {self.package}: {self.cause}'


@dataclass
class Registry:
    """What the installed plugins provide, by kind and name."""

    manager: pluggy.PluginManager
    modalities: dict[str, type] = field(default_factory=dict)
    fusions: dict[str, type] = field(default_factory=dict)
    models: dict[str, type] = field(default_factory=dict)
    info: dict[tuple[str, str], PluginInfo] = field(default_factory=dict)
    errors: list[PluginLoadError] = field(default_factory=list)

    def modality(self, name: str) -> type:
        try:
            return self.modalities[name]
        except KeyError:
            raise UnknownModality(f"unknown modality '{name}'; installed: "
                                  f"{', '.join(sorted(self.modalities)) or 'none'}") from None

    def fusion(self, name: str) -> type:
        try:
            return self.fusions[name]
        except KeyError:
            raise UnknownFusion(f"unknown fusion '{name}'; installed: "
                                f"{', '.join(sorted(self.fusions)) or 'none'}") from None

    def model(self, name: str) -> type:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(f"unknown model '{name}'; installed: "
                               f"{', '.join(sorted(self.models)) or 'none'}") from None

    def plugin_infos(self) -> list[PluginInfo]:
        return sorted(self.info.values(), key=lambda i: (i.kind, i.name))


@functools.lru_cache(maxsize=1)
def _distributions_of_packages() -> dict[str, list[str]]:
    """Top-level package -> distributions that ship it: a scan of every installed package's
    file list (about 0.3 s in an environment with torch), so done once per process."""
    return metadata.packages_distributions()


def _package_of(plugin: object, default: str) -> tuple[str, str]:
    """(distribution name, version) that ships ``plugin``'s module."""
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", "")
    top = module.split(".")[0]
    for dist_name in _distributions_of_packages().get(top, []):
        try:
            return dist_name, metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return default, "0"


def _registrar(registry: Registry, table: dict[str, type], kind: str):
    """A ``register`` callback that fills ``table`` and refuses duplicates by name."""

    def register(cls: type) -> None:
        name = cls.name
        package, dist_version = _package_of(cls, "polyvae")
        version = str(getattr(cls, "version", dist_version) or dist_version)
        if name in table:
            first = registry.info[(kind, name)].package
            raise DuplicatePlugin(f"{kind} '{name}' is registered twice: by {first} "
                                  f"and by {package} ({cls.__module__}.{cls.__qualname__})")
        table[name] = cls
        registry.info[(kind, name)] = PluginInfo(
            name=name, kind=kind, version=version, package=package,
            description=getattr(cls, "description", "") or "")

    return register


def build_registry(extra_plugins: Iterable[object] = (), *, entry_points: bool = True,
                   defaults: Iterable[str] = DEFAULT_PLUGINS) -> Registry:
    """Build a plugin manager: entry points of group ``polyvae``, then the built-ins, then extras.

    A plugin that fails to import or to register is recorded in ``registry.errors`` with its
    cause, and the others are still loaded.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry(manager=pm)

    if entry_points:
        for ep in metadata.entry_points(group=hookspecs.PROJECT_NAME):
            package = ep.dist.name if ep.dist is not None else ep.value
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not break the rest
                registry.errors.append(PluginLoadError(ep.name, package, f"{type(exc).__name__}: {exc}"))
    for module_name in defaults:
        try:
            pm.register(importlib.import_module(module_name), name=module_name)
        except Exception as exc:
            registry.errors.append(PluginLoadError(module_name, "polyvae", f"{type(exc).__name__}: {exc}"))
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()

    hooks = [
        ("polyvae_register_modalities", registry.modalities, "modality"),
        ("polyvae_register_fusions", registry.fusions, "fusion"),
        ("polyvae_register_models", registry.models, "model"),
    ]
    for hook_name, table, kind in hooks:
        register = _registrar(registry, table, kind)
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            try:
                impl.function(register)
            except DuplicatePlugin:
                raise
            except Exception as exc:
                registry.errors.append(PluginLoadError(impl.plugin_name, "?", f"{type(exc).__name__}: {exc}"))
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY
