"""Pipelines talk to models and modalities only through their declared contracts: no
probing with hasattr/getattr, no imports of a plugin's internal modules, no switches on
model names (issue 12's acceptance greps, kept as tests so they stay true)."""
from __future__ import annotations

import re
from pathlib import Path

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
PROBE = re.compile(r"(hasattr|getattr)\([^,]*(model|mod|modality|cls)\b")
PLUGIN_INTERNALS = re.compile(r"(from|import) polyvae\.plugins\.[a-z_]+\.[a-z_]+")
MODEL_NAMES = re.compile(r"""\.name\s*[!=]=\s*["'](mvae|ae|vae|linear-ae|denoising-ae|sparse-ae|conv-ae|recirculation)["']""")


def offending(pattern: re.Pattern) -> list[str]:
    found = []
    for path in sorted(PIPELINES.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(PIPELINES.parent)}:{n}: {line.strip()}")
    return found


def test_no_capability_probes_in_pipelines():
    assert offending(PROBE) == []


def test_no_imports_of_plugin_internals_in_pipelines():
    assert offending(PLUGIN_INTERNALS) == []


def test_no_switches_on_model_names_in_pipelines():
    assert offending(MODEL_NAMES) == []


def test_the_patterns_do_find_what_they_look_for():
    assert PROBE.search('if hasattr(model, "decode"):')
    assert PROBE.search('getattr(ctx.run.model, "name", "")')
    assert PLUGIN_INTERNALS.search("from polyvae.plugins.audio.loading import read_clip")
    assert MODEL_NAMES.search('if ctx.run.model.name == "linear-ae":')
