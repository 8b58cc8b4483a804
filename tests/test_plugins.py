"""Plugin loading: built-ins, extra plugins, broken entry points, duplicates, hook validation."""
from __future__ import annotations

import inspect
from pathlib import Path

import click
import pluggy
import pytest
from click.testing import CliRunner

from polyvae.core import hookspecs, plugins
from polyvae.core.errors import DuplicatePlugin, UnknownModality
from polyvae.core.hookspecs import hookimpl
from polyvae.plugins.text.modality import TextModality


def test_builtins_register_through_the_hooks():
    registry = plugins.build_registry(entry_points=False)
    assert {"image", "text"} <= set(registry.modalities)
    assert "poe" in registry.fusions and "mvae" in registry.models
    info = registry.info[("modality", "image")]
    assert info.package == "polyvae" and info.kind == "modality"
    with pytest.raises(UnknownModality, match="unknown modality 'video'"):
        registry.modality("video")


def test_a_plugin_object_adds_a_modality_and_duplicates_are_refused():
    class Shout(TextModality):
        name = "shout"

    class Plugin:
        @hookimpl
        def polyvae_register_modalities(self, register):
            register(Shout)

    registry = plugins.build_registry([Plugin()], entry_points=False)
    assert registry.modalities["shout"] is Shout

    class Clash:
        @hookimpl
        def polyvae_register_modalities(self, register):
            register(type("OtherText", (TextModality,), {"name": "text"}))

    with pytest.raises(DuplicatePlugin, match="modality 'text' is registered twice"):
        plugins.build_registry([Clash()], entry_points=False)


def test_broken_entry_point_is_reported_and_the_rest_work(monkeypatch):
    class BrokenEntryPoint:
        name = "broken"
        value = "broken_pkg.plugin"
        dist = type("Dist", (), {"name": "broken-pkg"})()

        def load(self):
            raise ImportError("No module named 'numpyy'")

    real = plugins.metadata.entry_points

    def fake_entry_points(group=None, **kw):
        found = list(real(group=group)) if group else []
        return found + [BrokenEntryPoint()] if group == hookspecs.PROJECT_NAME else found

    monkeypatch.setattr(plugins.metadata, "entry_points", fake_entry_points)
    registry = plugins.build_registry()
    messages = [e.message() for e in registry.errors]
    assert 'Error importing plugin "broken" from broken-pkg: ImportError: No module named \'numpyy\'' in messages
    assert {"image", "text"} <= set(registry.modalities)


def test_misspelled_hook_is_caught_by_check_pending():
    class Typo:
        @hookimpl
        def polyvae_register_modalitys(self, register):
            pass

    with pytest.raises(pluggy.PluginValidationError):
        plugins.build_registry([Typo()], entry_points=False)


def test_plugins_can_add_cli_commands():
    class Commands:
        @hookimpl
        def polyvae_register_commands(self, cli):
            @cli.command("hello")
            def hello():
                click.echo("hello from a plugin")

    registry = plugins.build_registry([Commands()], entry_points=False)
    group = click.Group("polyvae")
    registry.manager.hook.polyvae_register_commands(cli=group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0 and "hello from a plugin" in result.output


def test_every_hook_is_documented_and_tested():
    tests_text = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("polyvae_")]
    assert len(specs) >= 4
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc and ":param" in doc, f"{name} lacks a docstring saying when it is called"
        assert f"def {name}(" in tests_text, f"{name} has no test implementing it"


def test_fusion_and_model_plugins_register_by_name():
    from polyvae.core.experts import product_of_experts
    from polyvae.core.fusion import FusedPosterior, Fusion
    from polyvae.core.mvae import MultimodalVAE

    class NoPrior(Fusion):
        name = "poe-no-prior"

        def fuse(self, experts):
            g = product_of_experts(experts, prior_expert=False)
            return FusedPosterior(g.mu[None], g.logvar[None], g.mu.new_ones(1, g.mu.shape[0]))

    class Renamed(MultimodalVAE):
        name = "mvae-renamed"

    class Plugin:
        @hookimpl
        def polyvae_register_fusions(self, register):
            register(NoPrior)

        @hookimpl
        def polyvae_register_models(self, register):
            register(Renamed)

    registry = plugins.build_registry([Plugin()], entry_points=False)
    assert registry.fusion("poe-no-prior") is NoPrior
    assert registry.model("mvae-renamed") is Renamed
    assert registry.info[("fusion", "poe-no-prior")].kind == "fusion"
