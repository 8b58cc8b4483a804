"""Every hook a polyvae plugin can implement.

A plugin is any module or object with functions named like the specs below and marked
with :data:`hookimpl`. Built-in plugins (``polyvae.plugins.*``) go through exactly these
hooks; third-party packages are found through the ``polyvae`` entry-point group.

Registration hooks receive a ``register`` callback rather than returning objects, so the
core owns the registry and can refuse a duplicate name with an error naming both plugins.
"""
from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "polyvae"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def polyvae_register_modalities(register: Callable[[type], None]) -> None:
    """Register modality classes (subclasses of :class:`polyvae.core.modality.Modality`).

    Called once when the plugin manager is built. Call ``register(ModalityClass)`` for each
    modality the plugin provides; the class's ``name`` is the manifest column it reads.

    :param register: callback taking a ``Modality`` subclass.
    """


@hookspec
def polyvae_register_fusions(register: Callable[[type], None]) -> None:
    """Register fusion classes (subclasses of :class:`polyvae.core.fusion.Fusion`).

    Called once when the plugin manager is built. ``register(FusionClass)`` makes the
    class's ``name`` available to ``polyvae train --fusion``.

    :param register: callback taking a ``Fusion`` subclass.
    """


@hookspec
def polyvae_register_models(register: Callable[[type], None]) -> None:
    """Register model classes (subclasses of :class:`polyvae.core.models.AutoencoderModel`).

    Called once when the plugin manager is built. ``register(ModelClass)`` makes the
    class's ``name`` available to ``polyvae train --model``.

    :param register: callback taking an ``AutoencoderModel`` subclass.
    """


@hookspec
def polyvae_register_commands(cli) -> None:
    """Add commands to the ``polyvae`` command line.

    Called when the CLI starts, after the built-in commands exist.

    :param cli: the root ``click.Group``; call ``cli.add_command(...)`` or use ``@cli.command()``.
    """
