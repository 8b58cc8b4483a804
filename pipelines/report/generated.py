"""Report sections made by running the model: the latent scatter (hover shows the example),
cross-modal generation tables, prior samples, and interpolation views with a step slider."""
from __future__ import annotations

import json

import numpy as np

from polyvae.core.dataset import TensorData
from polyvae.core.run import LoadedRun

from .figures import colour_of
from .interpolations import InterpolationView, from_steps
from .media import audio_tag, data_uri, esc, img_tag, snippet, spectrogram_uri
from .samples import (Rendered, cross_modal, endpoint_rows, interpolate_rows, label_column, latent_means,
                      natural_key, prior_samples, project_2d, render_all, spread_rows)

KIND_ORDER = {"text": 0, "image": 1, "audio": 2, "file": 3}
SCATTER_POINTS = 400
#: metadata columns the scatter can be coloured by
COLOUR_COLUMNS = ("label", "speaker")
WIDTH, HEIGHT, MARGIN = 640, 460, 24


def kind_of(run: LoadedRun, m: str) -> str:
    return Rendered(run.modalities[m].extension, b"").kind


def ordered_modalities(run: LoadedRun) -> list[str]:
    return sorted(run.modalities, key=lambda m: (KIND_ORDER[kind_of(run, m)], m))


def latent_scatter(run: LoadedRun, data: TensorData, seed: int = 0) -> str:
    """An SVG scatter of latent means (PCA), coloured by label or singer (a menu switches when
    both exist); hovering a point shows its image, metadata and text."""
    rows = spread_rows(len(data), SCATTER_POINTS, seed)
    xy = project_2d(latent_means(run.model, data, rows))
    thumbs, texts = _tip_examples(run, data, rows)
    colourings = {c: _colouring([data.metadata[c][i] for i in rows])
                  for c in COLOUR_COLUMNS if any(data.metadata.get(c, []))}
    first_column = next(iter(colourings), None)
    colours = colourings[first_column]["colours"] if first_column else ["#1f77b4"] * len(rows)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    px = MARGIN + (xy - lo) / span * np.array([WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN])
    circles = "".join(f'<circle class="pt" data-i="{k}" cx="{x:.1f}" cy="{HEIGHT - y:.1f}" r="4.5" '
                      f'fill="{colours[k]}"></circle>' for k, (x, y) in enumerate(px))
    payload = {"columns": {c: [data.metadata[c][i] for i in rows] for c in colourings},
               "colourings": colourings, "rows": [data.rows[i] for i in rows], "texts": texts, "thumbs": thumbs}
    first = next((t for t in thumbs if t), "")
    tip_img = img_tag(first, "example under the pointer", "tip-img") if first else ""
    legend = ""
    if first_column:
        menu = "".join(f'<option value="{esc(c)}">{esc(c)}</option>' for c in colourings)
        chooser = (f'<label>colour by <select class="colour-by">{menu}</select></label>'
                   if len(colourings) > 1 else f'<div class="legend-title">{esc(first_column)}</div>')
        items = "".join(f'<li><span class="swatch" style="background:{colour}"></span>{esc(value or "(none)")}</li>'
                        for value, colour in colourings[first_column]["legend"])
        legend = f'<div class="legend-box">{chooser}<ul class="legend">{items}</ul></div>'
    coloured = f", coloured by {' or '.join(colourings)}" if colourings else ""
    return (f'<div class="scatter-wrap">'
            f'<svg class="scatter" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="latent means projected to two dimensions">'
            f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{HEIGHT - 1}" class="frame"></rect>{circles}</svg>'
            f'<div class="tip" hidden>{tip_img}<div class="tip-label"></div></div>{legend}'
            f'<script type="application/json" class="scatter-data">{_json(payload)}</script></div>'
            f'<p class="note">{len(rows)} rows, latent means projected on their first two principal '
            f"components{esc(coloured)}. Hover a point to see the example.</p>")


def _colouring(values: list[str]) -> dict:
    """A colour per point and the legend (value, colour) in natural order."""
    return {"colours": [colour_of(v, values) for v in values],
            "legend": [[v, colour_of(v, values)] for v in sorted(set(values), key=natural_key)]}


def _tip_examples(run: LoadedRun, data: TensorData, rows: list[int]) -> tuple[list[str], list[str]]:
    """Per point: a data URI of its image and its text (empty where the row lacks them)."""
    thumbs, texts = [""] * len(rows), [""] * len(rows)
    for m in ordered_modalities(run):
        kind = kind_of(run, m)
        have = [k for k, i in enumerate(rows) if bool(data.present[m][i])]
        if kind not in ("image", "text") or not have:
            continue
        rendered = render_all(run.modalities[m], data.data[m][[rows[k] for k in have]])
        for k, item in zip(have, rendered):
            if kind == "image" and not thumbs[k]:
                thumbs[k] = data_uri(item.data, item.extension)
            elif kind == "text" and not texts[k]:
                texts[k] = item.text()
    return thumbs, texts


def cross_modal_tables(run: LoadedRun, data: TensorData, seed: int = 0, image_samples: int = 4) -> str:
    """For each modality: one example per label given alone, and every other modality generated
    (a single-modality run shows reconstructions instead)."""
    parts = []
    mods = ordered_modalities(run)
    for source in mods:
        targets = [m for m in mods if m != source] or [source]
        if not bool(data.present[source].any()):
            continue
        samples = {t: image_samples if kind_of(run, t) == "image" else 1 for t in targets}
        rows = cross_modal(run.model, run.modalities, data, source, targets, samples, seed=seed)
        head = f"<th>given {esc(source)}</th>" + "".join(
            f"<th>{esc(t)}{f' ({samples[t]} samples)' if samples[t] > 1 else ''}</th>" for t in targets)
        body = ""
        for row in rows:
            cells = f"<td>{snippet(row.given, f'given {source}: {row.caption}')}"
            cells += f'<div class="caption">{esc(row.caption)}</div></td>' if row.given.kind != "text" else "</td>"
            for t in targets:
                cells += "<td>" + "".join(snippet(item, f"{t} from {row.caption}") for item in row.outputs[t]) + "</td>"
            body += f"<tr>{cells}</tr>"
        what = " (reconstruction)" if targets == [source] else ""
        parts.append(f'<h3>{esc(source)} \u2192 {esc(", ".join(targets))}{what}</h3>'
                     f'<div class="scroll"><table class="cross"><thead><tr>{head}</tr></thead>'
                     f"<tbody>{body}</tbody></table></div>")
    return "".join(parts) or '<p class="note">No example has any of the run\'s modalities.</p>'


def prior_gallery(run: LoadedRun, n: int = 8, seed: int = 0) -> str:
    samples = prior_samples(run.model, run.modalities, run.config.data.tensors, n, seed)
    rows = "".join(f"<tr><th>{esc(m)}</th><td>" + "".join(snippet(item, f"{m} prior sample {k}")
                                                           for k, item in enumerate(samples[m])) + "</td></tr>"
                   for m in ordered_modalities(run))
    return f'<table class="cross"><tbody>{rows}</tbody></table>'


def fresh_interpolation(run: LoadedRun, data: TensorData, steps: int = 8) -> InterpolationView | None:
    """A straight latent path between examples of the first and last label, every modality decoded."""
    ends = endpoint_rows(data, list(run.modalities))
    if ends is None:
        return None
    rows, a, b = ends
    alphas, decoded = interpolate_rows(run.model, run.modalities, rows, a, b, steps, ordered_modalities(run))
    column = label_column(rows)
    name = (lambda i: f"{column} {rows.metadata[column][i]}") if column else (lambda i: f"row {rows.rows[i]}")
    return from_steps(f"latent path: {name(a)} \u2192 {name(b)}", alphas, decoded,
                      f"linear path between the latent means of manifest rows {rows.rows[a]} and "
                      f"{rows.rows[b]}, each step decoded to every modality")


def interpolation_html(view: InterpolationView) -> str:
    """Step cards (each with its image, spectrogram, audio player and text) and a slider stage."""
    if not view.steps:
        return ""
    n = len(view.steps)
    cards, first = [], {}
    for k, step in enumerate(view.steps):
        alpha = f"\u03b1 = {step.alpha:.2f}" if step.alpha is not None else f"step {k}"
        inner = ""
        if "image" in step.items:
            uri = data_uri(step.items["image"].data, step.items["image"].extension)
            inner += img_tag(uri, f"step {k}", "step-image")
            first.setdefault("image", uri)
        if "audio" in step.items:
            spec, audio = spectrogram_uri(step.items["audio"]), data_uri(step.items["audio"].data,
                                                                         step.items["audio"].extension)
            inner += img_tag(spec, f"step {k} spectrogram", "step-spec") + audio_tag(audio, f"step {k} audio", "step-audio")
            first.setdefault("spec", spec)
            first.setdefault("audio", audio)
        if "text" in step.items:
            inner += f'<span class="step-text">{esc(step.items["text"].text())}</span>'
            first.setdefault("text", step.items["text"].text())
        cards.append(f'<figure class="step{" current" if k == 0 else ""}" data-k="{k}" data-alpha="{esc(alpha)}">'
                     f"{inner}<figcaption>{esc(alpha)}</figcaption></figure>")
    stage = ""
    if "image" in first:
        stage += img_tag(first["image"], "current step", "stage-image")
    if "spec" in first:
        stage += img_tag(first["spec"], "current step spectrogram", "stage-spec")
    if "text" in first:
        stage += f'<div class="stage-text">{esc(first["text"])}</div>'
    if "audio" in first:
        stage += audio_tag(first["audio"], "current step audio", "stage-audio")
    alpha0 = view.steps[0].alpha
    label = f"1 / {n}" + (f" (\u03b1 = {alpha0:.2f})" if alpha0 is not None else "")
    strips = "".join(f'<figure>{img_tag(data_uri(data, "png"), name, "strip")}<figcaption>{esc(name)}</figcaption></figure>'
                     for name, data in view.strips)
    return (f'<div class="interp"><h3>{esc(view.title)}</h3>'
            + (f'<p class="note">{esc(view.note)}</p>' if view.note else "")
            + f'<div class="stage">{stage}</div>'
            f'<label class="slider">step <input type="range" class="step-slider" min="0" max="{n - 1}" value="0" step="1">'
            f'<output class="step-label">{esc(label)}</output></label>'
            f'<div class="steps">{"".join(cards)}</div>{strips}</div>')


def _json(payload: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(payload).replace("</", "<\\/")
