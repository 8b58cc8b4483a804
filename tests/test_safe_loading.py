"""Loading runs and checkpoints never unpickles: a hostile pickle is refused and its command
never runs; a run needing a missing or different plugin is refused by name."""
from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clihelp import polyvae
from conftest import write_digits

from polyvae.core.errors import IncompatibleRun
from polyvae.core.run import load_run

ROOT = Path(__file__).resolve().parents[1]
SMALL = ('[train]\nnum_threads = 1\n[model]\nhidden_dim = 16\n'
         '[modality_options.image]\nsize = 8\nwidth = 4\nhidden = 16\n'
         '[modality_options.text]\nembed = 8\nhidden = 16\n')


class Payload:
    """Unpickling this runs a shell command (touches ``marker``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import polyvae.pipelines.plots as plots
    root = tmp_path_factory.mktemp("safe")
    manifest = write_digits(root / "data", n=20, size=8)
    config = root / "small.toml"
    config.write_text(SMALL)
    saved, plots.write_epoch_plots = plots.write_epoch_plots, lambda report: []
    try:
        r = polyvae("train", root / "run", "--data", manifest, "--epochs", "1", "--latent-dim", "4",
                    "--batch-size", "8", "--device", "cpu", "--quiet", "--config", config)
    finally:
        plots.write_epoch_plots = saved
    assert r.code == 0, r.err
    return root, manifest, config


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained[0] / "run", copy)
    return copy


def _pickles(marker: Path) -> dict[str, bytes]:
    """The same payload as a plain pickle and as a torch.save zip (what a .pt/.pth holds)."""
    pt = marker.parent / "payload.pt"
    torch.save({"weight": Payload(marker)}, pt)
    return {"pickle": pickle.dumps(Payload(marker)), "torch.save": pt.read_bytes()}


def test_the_payload_is_live(tmp_path):
    """Unpickled, the payload does run its command: so the refusals below mean something."""
    marker = tmp_path / "ran"
    code = ("import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())")
    blob = tmp_path / "blob"
    blob.write_bytes(_pickles(marker)["pickle"])
    subprocess.run([sys.executable, "-c", code, str(blob)], check=True)
    assert marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
@pytest.mark.parametrize("where", ["model.safetensors", "config.json"])
def test_a_pickle_in_a_run_is_refused_and_never_runs(run, tmp_path, kind, where):
    marker = tmp_path / "pwned"
    (run / where).write_bytes(_pickles(marker)[kind])
    with pytest.raises(IncompatibleRun) as err:
        load_run(run)
    assert where in str(err.value)
    r = polyvae("generate", run, "--n", "1", "--out", tmp_path / "out")
    assert r.code == 2 and r.err.count("\n") == 1 and where in r.err and "Traceback" not in r.err, r.err
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_pickle_as_checkpoint_is_refused_on_resume(run, trained, tmp_path, kind):
    _, manifest, config = trained
    marker = tmp_path / "pwned"
    (run / "checkpoint" / "state.safetensors").write_bytes(_pickles(marker)[kind])
    r = polyvae("train", run, "--data", manifest, "--epochs", "2", "--device", "cpu", "--quiet",
                "--config", config, "--resume")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "state.safetensors: not a valid polyvae checkpoint" in r.err
    assert not marker.exists()


def test_a_pt_file_beside_the_run_is_never_opened(run, tmp_path):
    marker = tmp_path / "pwned"
    (run / "model.safetensors").unlink()
    (run / "model.pt").write_bytes(_pickles(marker)["torch.save"])
    with pytest.raises(IncompatibleRun, match="no model.safetensors"):
        load_run(run)
    assert not marker.exists()
    # and where a .pt must be read, torch's weights_only loader refuses the payload too
    with pytest.raises(pickle.UnpicklingError):
        torch.load(run / "model.pt", weights_only=True)
    assert not marker.exists()


def test_a_hostile_safetensors_header_is_refused(run):
    (run / "model.safetensors").write_bytes(struct.pack("<Q", 2 ** 62) + b"{}")
    with pytest.raises(IncompatibleRun, match="not a valid safetensors file"):
        load_run(run)
    (run / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")     # valid, but empty
    with pytest.raises(IncompatibleRun, match="do not fit"):
        load_run(run)


def _python_files() -> list[Path]:
    return sorted(p for folder in ("core", "plugins", "pipelines") for p in (ROOT / folder).rglob("*.py"))


def test_the_package_never_unpickles():
    """No pickle-family import, no torch.load without weights_only=True, no allow_pickle."""
    unsafe_modules = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}
    problems = []
    files = _python_files()
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = lambda node: f"{path.relative_to(ROOT)}:{node.lineno}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{where(node)} imports {a.name}" for a in node.names
                             if a.name.split(".")[0] in unsafe_modules]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in unsafe_modules:
                problems.append(f"{where(node)} imports from {node.module}")
            elif isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                keywords = {k.arg: k.value for k in node.keywords}
                if name == "torch.load" or name.endswith(".torch.load"):
                    safe = keywords.get("weights_only")
                    if not (isinstance(safe, ast.Constant) and safe.value is True):
                        problems.append(f"{where(node)} calls torch.load without weights_only=True")
                if name.endswith("read_pickle") or name.endswith("pickle.loads"):
                    problems.append(f"{where(node)} calls {name}")
                allow = keywords.get("allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    problems.append(f"{where(node)} passes allow_pickle")
    assert not problems, "\n".join(problems)


# ---- plugins ------------------------------------------------------------------------------
def _edit_plugins(run: Path, change) -> None:
    config = json.loads((run / "config.json").read_text())
    change(config["plugins"])
    (run / "config.json").write_text(json.dumps(config))


def test_a_run_needing_another_plugin_version_is_refused_by_name(run, tmp_path):
    _edit_plugins(run, lambda p: p["modality:image"].update(version="99"))
    with pytest.raises(IncompatibleRun) as err:
        load_run(run)
    text = str(err.value)
    assert "modality plugin 'image' version 99" in text and "but version 1" in text
    r = polyvae("generate", run, "--n", "1", "--out", tmp_path / "out")
    assert r.code == 2 and r.err.count("\n") == 1 and "'image' version 99" in r.err


@pytest.mark.parametrize("key, needed", [("modality:image", "modality plugin 'hologram'"),
                                         ("fusion:poe", "fusion plugin 'quantum-poe'")])
def test_a_run_needing_a_missing_plugin_is_refused_by_name(run, tmp_path, key, needed):
    new_name = needed.split("'")[1]
    kind = key.split(":")[0]

    def rename(plugins):
        plugins[f"{kind}:{new_name}"] = {**plugins.pop(key), "package": "polyvae-extras"}

    _edit_plugins(run, rename)
    with pytest.raises(IncompatibleRun) as err:
        load_run(run)
    assert needed in str(err.value) and "polyvae-extras" in str(err.value) and "not installed" in str(err.value)
    r = polyvae("generate", run, "--n", "1", "--out", tmp_path / "out")
    assert r.code == 2 and needed in r.err


def test_resume_refuses_an_incompatible_plugin(run, trained):
    _, manifest, config = trained
    _edit_plugins(run, lambda p: p["modality:text"].update(version="0.0.1"))
    r = polyvae("train", run, "--data", manifest, "--epochs", "2", "--device", "cpu", "--quiet",
                "--config", config, "--resume")
    assert r.code == 2 and "modality plugin 'text' version 0.0.1" in r.err, r.err
