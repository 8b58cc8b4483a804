"""Report sections read straight from the run directory: overview, metrics, evaluation,
training plots and the run's config."""
from __future__ import annotations

import json
import math
from pathlib import Path

from polyvae.core.config import RunConfig

from .media import esc, file_uri, img_tag

#: metric columns shown first, in this order, when present
LEADING = ["epoch", "train/loss", "validation/loss"]
TRAILING = ["train/beta", "seconds", "examples_per_second"]


def number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return esc(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def overview(config: RunConfig, run_dir: Path, history: list[dict], data_note: str) -> str:
    m, t = config.model, config.train
    facts = [("run directory", str(run_dir)), ("model", m.model), ("modalities", ", ".join(m.modalities)),
             ("fusion", m.fusion), ("latent dimensions", m.latent_dim),
             ("epochs", f"{len(history)} of {t.epochs}"),
             ("rows", f"{config.data.train_rows} training, {config.data.validation_rows} validation, "
                      f"{config.data.skipped_rows} skipped"),
             ("manifest", config.data.manifest or "?"), ("examples shown", data_note),
             ("polyvae", config.polyvae_version or "?"), ("seed", t.seed)]
    if history:
        last = history[-1]
        for key in ("validation/loss", "train/loss"):
            if key in last:
                facts.insert(6, (f"final {key}", number(last[key])))
                break
    from polyvae.core.verdict import read_verdict
    facts += [("verdict" if f.level == "warning" else "note", f.message) for f in read_verdict(run_dir)]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                   for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def metric_columns(history: list[dict]) -> list[str]:
    keys = []
    for h in history:
        keys += [k for k in h if k not in keys]
    lead = [k for k in LEADING if k in keys]
    trail = [k for k in TRAILING if k in keys]
    middle = sorted((k for k in keys if k not in lead + trail and not k.endswith("/beta")
                     and not k.endswith("/elbo")), key=lambda k: (k.split("/", 1)[-1], k))
    return lead + middle + trail


def metrics_table(history: list[dict]) -> str:
    if not history:
        return '<p class="note">metrics.jsonl has no complete epoch yet.</p>'
    columns = metric_columns(history)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{number(h.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for h in history)
    return f'<div class="scroll"><table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def flatten(obj: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out += flatten(v, f"{prefix}/{k}" if prefix else str(k))
        return out
    if isinstance(obj, list) and len(obj) > 8:
        return [(prefix, f"[{len(obj)} values]")]
    return [(prefix, obj)]


def find_evaluation(run_dir: Path) -> Path | None:
    """``RUN/evaluation.json``, or the one ``polyvae demo`` writes beside the run."""
    for candidate in (run_dir / "evaluation.json", run_dir.parent / "evaluation.json"):
        if candidate.is_file():
            return candidate
    return None


#: what each top-level figure of ``polyvae evaluate`` means, in a sentence
METRIC_NOTES = {
    "run": "The run directory evaluated.",
    "data": "The rows evaluated: a manifest, or rows given in Python.",
    "rows": "How many rows the figures are taken on (the held-out rows on the training manifest).",
    "notes": "Where the rows and the judging classifiers came from.",
    "verdict": "What makes these figures or this run not to be trusted as they are (too few rows, outputs "
               "collapsed to the mean, text that loops), each with its figure and what to change; empty: "
               "nothing found.",
    "training_objective": "The training loss at full KL weight and its terms on these rows (lower is better).",
    "reconstruction": "Error of each modality rebuilt from all of a row's modalities: squared error for images "
                      "and audio, share of wrong tokens (words or characters) for text (lower is better).",
    "classifier_accuracy_on_real": "Accuracy of the judging classifiers on real rows: the ceiling of coherence.",
    "coherence": "Share of generations that a classifier trained on real rows gives the label of the row they "
                 "came from, per given modalities -> target (higher is better; chance is 1 / labels).",
    "caption_accuracy": "Text generated from another modality (e.g. image->text) against the row's own text: "
                        "share of rows with exactly its words (exact_caption), and of word positions right "
                        "out of the longer text's (word_accuracy); higher is better.",
    "joint_coherence": "Share of prior samples whose decoded modalities all read as the same label.",
    "log_likelihood": "Importance-weighted estimate of log p(x), in nats per row (higher is better).",
    "linear_probe_accuracy": "Accuracy of a logistic regression reading the label from the latent means.",
    "pca_comparison": "linear-ae: largest angle between the learnt subspace and PCA's (0 degrees: the same) "
                      "and both reconstruction errors.",
    "denoising": "PSNR of corrupted rows and of the model's denoised rows against the clean ones (dB, higher "
                 "is better).",
    "audio_playback": "Spectral convergence of real clips after the way back to sound and forward again "
                      "(0 is exact): the floor under any rendered audio.",
}


def evaluation_table(path: Path) -> str:
    """Every figure of an ``evaluation.json``, each group headed by what it means."""
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as exc:
        return f'<p class="note">{esc(path)}: unreadable ({esc(exc)})</p>'
    rows = ""
    for key, value in record.items():
        note = METRIC_NOTES.get(key, "Reported by a plugin of this run (its model or a modality).")
        items = flatten(value, key)
        rows += (f'<tr class="metric-group"><th>{esc(key)}</th><td class="metric-note">'
                 f"{esc(note)}</td></tr>")
        if items != [(key, value)]:
            rows += "".join(f"<tr><th>{esc(k)}</th><td>{number(v)}</td></tr>" for k, v in items)
        else:
            rows += f"<tr><th></th><td>{number(value)}</td></tr>"
    return f'<p class="note">from {esc(path)}</p><table class="facts evaluation">{rows}</table>'


#: plots shown first, in this order (by file-name prefix); the rest follow alphabetically
PLOT_ORDER = ("losses", "latent", "cross", "generated")


def plot_gallery(folder: Path) -> str:
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    rank = lambda p: next((k for k, prefix in enumerate(PLOT_ORDER) if p.stem.startswith(prefix)), len(PLOT_ORDER))
    files.sort(key=lambda p: (rank(p), p.name))
    if not files:
        return '<p class="note">No plots in this run directory (trained without plots?).</p>'
    figures = "".join(f'<figure>{img_tag(file_uri(p), p.stem, "plot")}<figcaption>{esc(p.name)}</figcaption></figure>'
                      for p in files)
    return f'<div class="gallery">{figures}</div>'


def config_block(config_path: Path, config: RunConfig) -> str:
    plugins = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v.get('version', '?'))}</td><td>{esc(v.get('package', '?'))}</td></tr>"
                      for k, v in config.plugins.items())
    text = config_path.read_text() if config_path.exists() else config.to_json()
    return (f'<table class="facts"><thead><tr><th>plugin</th><th>version</th><th>package</th></tr></thead>'
            f"<tbody>{plugins}</tbody></table>"
            f"<details><summary>config.json ({len(text)} characters)</summary><pre>{esc(text)}</pre></details>")
