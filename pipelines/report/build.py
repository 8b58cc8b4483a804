"""``build_report``: a run directory -> one self-contained HTML file."""
from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from polyvae.core.atomic import write_text_atomic
from polyvae.core.dataset import TensorData, _no_progress
from polyvae.core.models import DECODE
from polyvae.core.run import CONFIG, LoadedRun, load_run

from . import generated, tables
from .interpolations import find_folders, read_folder
from .page import Section, render_page

REPORT = "report.html"
#: held-out rows needed before the examples are drawn from them rather than from every row
MIN_HELD_OUT = 20


class ReportWarning(UserWarning):
    """A section of the report could not be built; the page says so in its place."""


@dataclass
class Examples:
    data: TensorData | None
    note: str


def choose_examples(run: LoadedRun, manifest: Path | None, progress=_no_progress) -> Examples:
    """Rows to show: the held-out rows of the training manifest, or every row of ``manifest``."""
    from polyvae.pipelines.run_data import held_out, is_training_manifest, read_rows
    given = manifest is not None
    path = Path(manifest) if given else Path(run.config.data.manifest)
    if not path.is_file():
        return Examples(None, f"manifest {path} not found: prior samples only (pass --data MANIFEST)")
    data = read_rows(run, path, on_bad_input="skip", progress=progress)
    skipped = f", {len(data.skipped)} bad row(s) skipped" if data.skipped else ""
    if is_training_manifest(run, path):
        _, validation = held_out(run, data)
        if len(validation) >= MIN_HELD_OUT:
            return Examples(validation, f"{len(validation)} held-out rows of {path}{skipped}")
    return Examples(data, f"{len(data)} rows of {path}{skipped}")


def build_report(run_dir: str | Path | LoadedRun, out: str | Path | None = None, manifest: str | Path | None = None,
                 interpolations: tuple[Path, ...] | list[Path] = (), device="cpu", seed: int = 0,
                 progress=_no_progress, say: Callable[[str], None] = lambda _msg: None) -> Path:
    """Write the report of ``run_dir`` (a path, or a run already loaded) to ``out`` (default
    ``RUN/report.html``); returns its path.

    ``interpolations`` are extra folders of ``step_*`` files (``RUN/interpolation/*/`` are found
    on their own). Sections that need rows of data use ``manifest`` (default: the run's training
    manifest); without one the page shows prior samples instead.
    """
    from polyvae.pipelines.plots import PLOTS, read_history

    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir, device=device)
    run_dir = run.path
    out = Path(out) if out is not None else run_dir / REPORT
    history = read_history(run_dir)
    examples = choose_examples(run, Path(manifest) if manifest else None, progress)
    sections: list[Section] = []

    def add(key: str, title: str, build: Callable[[], str]) -> None:
        say(f"report: {title.lower()}")
        try:
            body = build()
        except Exception as exc:         # one broken section should not cost the whole page
            message = f"{title}: could not be built ({type(exc).__name__}: {exc})"
            warnings.warn(message, ReportWarning, stacklevel=2)
            body = f'<p class="warn">{tables.esc(message)}</p>'
        sections.append(Section(key, title, body))

    add("overview", "Overview", lambda: tables.overview(run.config, run_dir, history, examples.note))
    add("metrics", "Metrics", lambda: _metrics(run_dir, history))
    add("plots", "Training plots", lambda: tables.plot_gallery(run_dir / PLOTS))
    data = examples.data
    if data is not None and len(data):
        add("latent", "Latent space", lambda: generated.latent_scatter(run, data, seed))
        add("generation", "Cross-modal generation", lambda: generated.cross_modal_tables(run, data, seed))
    else:
        add("generation", "Prior samples", lambda: '<p class="note">' + tables.esc(examples.note) + "</p>"
            + generated.prior_gallery(run, seed=seed))
    add("interpolation", "Interpolation", lambda: _interpolations(run, data, run_dir, interpolations))
    add("config", "Configuration", lambda: tables.config_block(run_dir / CONFIG, run.config))

    m = run.config.model
    subtitle = (f"{m.model} on {', '.join(m.modalities)} \u00b7 {len(history)} epoch(s) \u00b7 "
                f"report written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    write_text_atomic(out, render_page(f"polyvae run: {run_dir.resolve().name}", subtitle, sections))
    out.chmod(0o644)
    return out


def _metrics(run_dir: Path, history: list[dict]) -> str:
    body = tables.metrics_table(history)
    evaluation = tables.find_evaluation(run_dir)
    if evaluation is not None:
        body += "<h3>Evaluation</h3>" + tables.evaluation_table(evaluation)
    return body


def _interpolations(run: LoadedRun, data: TensorData | None, run_dir: Path, extra) -> str:
    views = []
    if data is not None and len(data) >= 2 and run.model.supports(DECODE):
        fresh = generated.fresh_interpolation(run, data)
        if fresh is not None:
            views.append(fresh)
    views += [read_folder(folder) for folder in find_folders(run_dir, list(extra))]
    if not views:
        return '<p class="note">No interpolation: the model cannot decode latents and no step files were found.</p>'
    return "".join(generated.interpolation_html(v) for v in views)
