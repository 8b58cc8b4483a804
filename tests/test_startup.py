"""Start-up: ``--help``, ``--version`` and ``plugins`` import neither torch nor a plugin, and
the plugin index they list from follows what is installed. (The timings themselves are a
benchmark, ``benchmarks/bench_startup.py``, not a test.)"""
from __future__ import annotations

import io
import json
import subprocess
import sys

import click
from click.testing import CliRunner

from polyvae.core import plugin_index as index_module
from polyvae.core import plugins
from polyvae.core.hookspecs import hookimpl
from polyvae.pipelines.cli import PolyvaeGroup

PROBE = """
import sys
from polyvae.pipelines.cli import main
try:
    main({args!r})
except SystemExit:
    pass
heavy = [m for m in ("torch", "numpy", "polyvae.plugins.image", "polyvae_vector.plugin") if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _imports(args: list[str], env: dict) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                          env=env, timeout=120)
    heavy = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert heavy, proc.stderr
    return heavy[-1].removeprefix("HEAVY="), proc.stdout


def test_light_commands_import_neither_torch_nor_plugins(tmp_path):
    import os
    env = {**os.environ, "POLYVAE_CACHE_DIR": str(tmp_path / "cache")}
    first, listing = _imports(["plugins"], env)            # an empty cache: the registry is built
    assert "torch" in first and "image" in listing
    assert (tmp_path / "cache" / index_module.INDEX_FILE).exists()
    for args in (["plugins"], ["--help"], ["--version"], ["plugins", "--json"]):
        heavy, out = _imports(args, env)
        assert heavy == "", f"polyvae {' '.join(args)} imported {heavy}"
    assert out == _imports(["plugins", "--json"], {**env, "POLYVAE_CACHE_DIR": "off"})[1]


def test_the_index_is_rebuilt_when_what_is_installed_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYVAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(plugins, "_REGISTRY", None)
    (tmp_path / index_module.INDEX_FILE).write_text(json.dumps(
        {"fingerprint": "an older install", "plugins": [], "errors": [], "commands": []}))
    fresh = index_module.plugin_index()
    assert {"image", "text", "linear-ae"} <= {p.name for p in fresh.plugins}
    saved = json.loads((tmp_path / index_module.INDEX_FILE).read_text())
    assert saved["fingerprint"] == index_module.fingerprint() != "an older install"

    def no_build():
        raise AssertionError("the registry was built although the cache matched")

    monkeypatch.setattr(plugins, "_REGISTRY", None)
    monkeypatch.setattr(index_module, "_build", no_build)
    assert [p.name for p in index_module.plugin_index().plugins] == [p.name for p in fresh.plugins]


def test_a_plugin_command_is_listed_from_the_index_and_attached_when_run(monkeypatch):
    class Commands:
        @hookimpl
        def polyvae_register_commands(self, cli):
            @cli.command("hello")
            def hello():
                """Say hello from a plugin."""
                click.echo("hello from a plugin")

    monkeypatch.setattr(plugins, "_REGISTRY", plugins.build_registry([Commands()], entry_points=False))
    group = PolyvaeGroup("polyvae")
    listing = CliRunner().invoke(group, ["--help"])
    assert "hello" in listing.output and "Say hello from a plugin." in listing.output
    assert "hello" not in group.commands                # listed, not yet attached
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0 and "hello from a plugin" in result.output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_heavy_commands_say_what_they_do_at_once_on_a_terminal(monkeypatch, tmp_path):
    from polyvae.pipelines.cli import main

    for args, expect in ((["report", str(tmp_path)], True), (["report", "--help"], False), (["plugins"], False)):
        err = _Terminal()
        monkeypatch.setattr(sys, "stderr", err)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        try:
            main(args)
        except SystemExit:
            pass
        said = err.getvalue().startswith(f"polyvae {args[0]}: starting (loading torch and the plugins) ...")
        assert said is expect, (args, err.getvalue())
