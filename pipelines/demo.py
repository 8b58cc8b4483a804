"""``polyvae demo``: the main job end to end on the embedded demo dataset."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import torch

from polyvae.core.config import RunConfig
from polyvae.core.device import resolve_device
from polyvae.core.run import load_run
from polyvae.core.plugins import get_registry

from .demo_data import DIGIT_WORDS
from .generation import generate_files
from .training_run import run_training
from .ui import progress



@dataclass
class DemoResult:
    out_dir: Path
    manifest: Path
    run_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    report: Path | None = None


DEMO_EPOCHS = 20


def demo_config(modalities: list[str], epochs: int | None, device: str, seed: int) -> RunConfig:
    config = RunConfig()
    config.model.modalities = modalities
    config.train.device = device
    config.train.seed = seed
    # 20 epochs keep the whole demo within about three minutes on two CPU cores;
    # `polyvae train` itself defaults to 30.
    config.train.epochs = epochs if epochs is not None else DEMO_EPOCHS
    return config


def run_demo(out_dir: Path, size: int | None = None, epochs: int | None = None, device: str = "auto",
             seed: int = 0, say=lambda msg: click.echo(msg, err=True)) -> DemoResult:
    """Data -> training -> generation -> evaluation (-> interpolation, report when installed)."""
    from .demo_data import write_demo_dataset
    from .evaluation.evaluate import evaluate_run

    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    say("1/5 writing the demo dataset")
    manifest = write_demo_dataset(out_dir / "data", seed=seed, size=size, progress=progress)
    timings["data"] = time.perf_counter() - t

    registry = get_registry()
    modalities = [m for m in ("image", "text", "audio") if m in registry.modalities]
    run_dir = out_dir / "run"
    t = time.perf_counter()
    say(f"2/5 training an MVAE on {', '.join(modalities)}")
    if (run_dir / "checkpoint").exists():
        run_training(run_dir, manifest, demo_config(modalities, epochs, device, seed), resume=True)
    else:
        run_training(run_dir, manifest, demo_config(modalities, epochs, device, seed))
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    say("3/5 generating across modalities")
    dev = resolve_device(device)
    run = load_run(run_dir, device=dev)
    generated = out_dir / "generated"
    targets = [m for m in modalities if m != "text"]
    for word in DIGIT_WORDS:
        generate_files(run, [("text", word)], targets, 1, generated / f"from_text_{word}", seed=seed, device=dev)
    first_rows = _first_rows_per_label(manifest)
    for label, row in first_rows.items():
        if "image" in modalities and row.get("image"):
            generate_files(run, [("image", str(manifest.parent / row["image"]))],
                           [m for m in modalities if m != "image"], 1,
                           generated / f"from_image_{label}", seed=seed, device=dev)
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    say("4/5 evaluating coherence on held-out rows")
    evaluation = evaluate_run(run, manifest, dev, seed=seed, progress=progress)
    (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=float))
    timings["evaluate"] = time.perf_counter() - t

    result = DemoResult(out_dir, manifest, run_dir, timings, evaluation)
    t = time.perf_counter()
    say("5/5 interpolating voices and writing the report")
    for step in EXTRA_STEPS:
        step(result, run, dev)
    timings["extras"] = time.perf_counter() - t
    return result


def _first_rows_per_label(manifest: Path) -> dict[str, dict[str, str]]:
    from polyvae.core.manifest import read_manifest
    rows: dict[str, dict[str, str]] = {}
    for row in read_manifest(manifest).rows:
        rows.setdefault(row.get("label", ""), row)
    return dict(sorted(rows.items()))


#: further demo steps (voice interpolation, report); each takes (DemoResult, LoadedRun, device)
EXTRA_STEPS: list = []


def _interpolate_voices(result: DemoResult, run, device) -> None:
    """Two singers far apart in the demo set, singing 'seven', the voice moving between them."""
    if "audio" not in run.modalities or not run.modalities["audio"].private_dim:
        return
    from .voice.interpolate import interpolate_voices
    from .voice.singers import load_table
    names = load_table(run, device).names
    if len(names) < 2:
        return
    a, b = ("bass_boris", "soprano_sofia") if {"bass_boris", "soprano_sofia"} <= set(names) else names[:2]
    content = "text=seven" if "text" in run.modalities else None
    interpolate_voices(run, a, b, 8, result.out_dir / "interpolation" / f"{a}_to_{b}",
                       content=content, device=device)


EXTRA_STEPS.append(_interpolate_voices)


def _write_report(result: DemoResult, run, device) -> None:
    """Last demo step: ``OUT/report.html``, showing what the steps before it wrote."""
    from .report import demo_report
    demo_report(result, run, device)


EXTRA_STEPS.append(_write_report)
