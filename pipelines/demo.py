"""``polyvae demo``: the main job end to end on the embedded demo dataset."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from polyvae.core.config import RunConfig
from polyvae.core.plugins import get_registry

from .demo_data import DIGIT_WORDS


@dataclass
class DemoResult:
    out_dir: Path
    manifest: Path
    run_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    report: Path | None = None


DEMO_EPOCHS = 16
#: the demo's clips are one sung word each: the clip-level audio model carries them (and the
#: voice latent its singers) at a third of the speech model's cost; `polyvae train` defaults
#: to "speech", which real recordings and voice conversion need
DEMO_AUDIO_MODEL = "clip"


def demo_config(modalities: list[str], epochs: int | None, device: str, seed: int) -> RunConfig:
    config = RunConfig()
    config.model.modalities = modalities
    config.train.device = device
    config.train.seed = seed
    # 16 epochs (bf16 autocast where the CPU has it) keep the whole demo within two minutes on
    # two idle CPU cores; `polyvae train` itself defaults to 30.
    config.train.epochs = epochs if epochs is not None else DEMO_EPOCHS
    if "audio" in modalities:
        config.modality_options["audio"] = {"model": DEMO_AUDIO_MODEL}
    return config


def run_demo(out_dir: Path, size: int | None = None, epochs: int | None = None, device: str = "auto",
             seed: int = 0, say=lambda msg: click.echo(msg, err=True)) -> DemoResult:
    """Data -> training -> generation -> evaluation -> voice interpolation -> report, all
    through the public API (:mod:`.api`)."""
    from . import api

    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    say("1/5 writing the demo dataset")
    manifest = api.demo_data(out_dir / "data", seed=seed, size=size, progress=True)
    timings["data"] = time.perf_counter() - t

    registry = get_registry()
    modalities = [m for m in ("image", "text", "audio") if m in registry.modalities]
    run_dir = out_dir / "run"
    t = time.perf_counter()
    say(f"2/5 training an MVAE on {', '.join(modalities)}")
    api.train(run_dir, manifest, config=demo_config(modalities, epochs, device, seed),
              resume=(run_dir / "checkpoint").exists())
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    say("3/5 generating across modalities")
    run = api.load(run_dir, device=device)
    generated = out_dir / "generated"
    targets = [m for m in modalities if m != "text"]
    for word in DIGIT_WORDS:
        run.generate(given={"text": word}, to=targets, seed=seed, out=generated / f"from_text_{word}")
    first_rows = _first_rows_per_label(manifest)
    for label, row in first_rows.items():
        if "image" in modalities and row.get("image"):
            run.generate(given={"image": manifest.parent / row["image"]}, to=[m for m in modalities if m != "image"],
                         seed=seed, out=generated / f"from_image_{label}")
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    say("4/5 evaluating coherence on held-out rows")
    evaluation = run.evaluate(manifest, seed=seed, progress=True)
    (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=float))
    timings["evaluate"] = time.perf_counter() - t

    result = DemoResult(out_dir, manifest, run_dir, timings, evaluation)
    t = time.perf_counter()
    say("5/5 interpolating voices and writing the report")
    _interpolate_voices(result, run)
    _write_report(result, run)
    timings["extras"] = time.perf_counter() - t
    return result


def _first_rows_per_label(manifest: Path) -> dict[str, dict[str, str]]:
    from polyvae.core.manifest import read_manifest
    rows: dict[str, dict[str, str]] = {}
    for row in read_manifest(manifest).rows:
        rows.setdefault(row.get("label", ""), row)
    return dict(sorted(rows.items()))


def _interpolate_voices(result: DemoResult, run) -> None:
    """Two singers far apart in the demo set, singing 'seven', the voice moving between them."""
    names = run.singers
    if len(names) < 2:
        return
    a, b = ("bass_boris", "soprano_sofia") if {"bass_boris", "soprano_sofia"} <= set(names) else names[:2]
    content = "text=seven" if "text" in run.modalities else None
    run.interpolate(a, b, 8, content=content, out=result.out_dir / "interpolation" / f"{a}_to_{b}")


def _write_report(result: DemoResult, run) -> None:
    """Last demo step: ``OUT/report.html``, showing what the steps before it wrote."""
    folders = sorted({p.parent for p in Path(result.out_dir).glob("**/path.json")
                      if run.path.resolve() not in p.resolve().parents})
    result.report = run.report(Path(result.out_dir) / "report.html", interpolations=folders)
