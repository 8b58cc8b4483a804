"""``polyvae evaluate``: one JSON object of figures for a trained run.

Each figure is a *section*: a function of an :class:`EvaluationContext` returning a dict
(or None when it does not apply). Sections are listed in :data:`SECTIONS`; adding a
measurement means adding a function there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from polyvae.core.dataset import TensorData
from polyvae.core.manifest import read_manifest
from polyvae.core.models import CROSS_MODAL, DECODE, LIKELIHOOD, PRIOR
from polyvae.core.run import LoadedRun
from polyvae.core.training import evaluate_loss
from polyvae.core.verdict import announce, evaluation_verdict

from .classifiers import ModalityClassifier
from .coherence import caption_table, coherence_table, fit_classifiers, joint_coherence, labelled
from .likelihood import iwae_log_likelihood


@dataclass
class EvaluationContext:
    run: LoadedRun
    reference: TensorData            # real rows the classifiers / probes are fitted on
    rows: TensorData                 # rows being evaluated (held out when possible)
    device: torch.device
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    _classifiers: dict[str, ModalityClassifier] | None = None

    @property
    def labels(self) -> np.ndarray | None:
        return labelled(self.rows)

    @property
    def classifiers(self) -> dict[str, ModalityClassifier]:
        if self._classifiers is None:
            ref_labels = labelled(self.reference)
            self._classifiers = fit_classifiers(self.reference, ref_labels) if ref_labels is not None else {}
        return self._classifiers


def section_loss(ctx: EvaluationContext) -> dict:
    """The training loss at full KL weight and its terms (for a multimodal VAE: the balanced
    likelihoods summed over the sub-sampled subsets; see log_likelihood for a true bound)."""
    terms = evaluate_loss(ctx.run.model, ctx.rows, 256, float("inf"), ctx.device)
    return {"training_objective": {k: v for k, v in terms.items() if k not in ("beta", "elbo")}}


@torch.no_grad()
def section_reconstruction(ctx: EvaluationContext) -> dict:
    """Mean reconstruction error per modality from all present modalities (modality.distance)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    model = ctx.run.model
    for start in range(0, len(ctx.rows), 256):
        batch = ctx.rows.batch(slice(start, start + 256)).to(ctx.device)
        for m, err in model.reconstruction_error(batch).items():
            have = batch.present[m]
            sums[m] = sums.get(m, 0.0) + float(err[have].sum())
            counts[m] = counts.get(m, 0) + int(have.sum())
    return {"reconstruction": {m: sums[m] / counts[m] for m in sums if counts[m]}}


def section_classifiers(ctx: EvaluationContext) -> dict | None:
    """Accuracy of the judging classifiers on real held-out rows: the ceiling of coherence."""
    if ctx.labels is None or not ctx.classifiers:
        return None
    labels = ctx.labels
    out = {}
    for m, clf in ctx.classifiers.items():
        have = ctx.rows.present[m].numpy() & (labels != "")
        if have.any():
            out[m] = round(clf.accuracy(ctx.rows.data[m][torch.as_tensor(have)], labels[have]), 4)
    return {"classifier_accuracy_on_real": out}


def section_coherence(ctx: EvaluationContext) -> dict | None:
    """Cross-modal coherence per given subset -> target, grouped by subset size."""
    if ctx.labels is None or len(ctx.run.modalities) < 2 or not ctx.classifiers:
        return None
    return {"coherence": coherence_table(ctx.run.model, ctx.rows, ctx.labels, ctx.classifiers,
                                         device=ctx.device, seed=ctx.seed)}


def section_captions(ctx: EvaluationContext) -> dict | None:
    """Text generated from each other modality against the row's own text: exact caption and
    per-word accuracy (no labels needed)."""
    model = ctx.run.model
    if len(ctx.run.modalities) < 2 or not model.supports(CROSS_MODAL):
        return None
    table = caption_table(model, ctx.rows, device=ctx.device, seed=ctx.seed)
    return {"caption_accuracy": table} if table else None


def section_joint_coherence(ctx: EvaluationContext) -> dict | None:
    """Unconditional coherence: prior samples whose modalities all read as one label."""
    if not (ctx.run.model.supports(PRIOR) and ctx.run.model.supports(DECODE)) or len(ctx.classifiers) < 2:
        return None
    value = joint_coherence(ctx.run.model, ctx.classifiers, device=ctx.device, seed=ctx.seed)
    return None if value is None else {"joint_coherence": value}


def section_log_likelihood(ctx: EvaluationContext) -> dict | None:
    """Importance-weighted log-likelihood estimate (K = 32), for models that declare one."""
    if not ctx.run.model.supports(LIKELIHOOD):
        return None
    k = 32
    value = iwae_log_likelihood(ctx.run.model, ctx.rows, k=k, device=ctx.device, seed=ctx.seed)
    return {"log_likelihood": {"iwae": value, "k": k, "unit": "nats per row"}}


@torch.no_grad()
def _features(ctx: EvaluationContext, data: TensorData) -> np.ndarray:
    from polyvae.pipelines.encoding import encode_rows
    return encode_rows(ctx.run, data, device=ctx.device)


def section_linear_probe(ctx: EvaluationContext) -> dict | None:
    """Accuracy of a logistic regression on the latent means (fitted on reference rows)."""
    ref_labels, labels = labelled(ctx.reference), ctx.labels
    if ref_labels is None or labels is None or len(set(ref_labels)) < 2:
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    keep = ref_labels != ""
    probe.fit(_features(ctx, ctx.reference)[keep], ref_labels[keep])
    have = labels != ""
    accuracy = float((probe.predict(_features(ctx, ctx.rows)[have]) == labels[have]).mean())
    return {"linear_probe_accuracy": round(accuracy, 4)}


@torch.no_grad()
def section_model_figures(ctx: EvaluationContext) -> dict | None:
    """What only the run's model can tell (``linear-ae``: the angle to PCA's subspace;
    ``denoising-ae``: PSNR before and after denoising), through the model contract."""
    return ctx.run.model.evaluation_figures(ctx.reference, ctx.rows, ctx.device, ctx.seed) or None


@torch.no_grad()
def section_modality_figures(ctx: EvaluationContext) -> dict | None:
    """What each modality tells about itself on the evaluated rows (audio: playback quality)."""
    out: dict = {}
    for m, mod in ctx.run.modalities.items():
        have = ctx.rows.present[m]
        if bool(have.any()):
            out.update(mod.evaluation_figures(ctx.rows.data[m][have]))
    return out or None


SECTIONS: list[Callable[[EvaluationContext], dict | None]] = [
    section_loss, section_reconstruction, section_classifiers, section_coherence, section_captions,
    section_joint_coherence, section_log_likelihood, section_linear_probe, section_model_figures,
    section_modality_figures,
]


def evaluate_run(run: LoadedRun, manifest: Path | list, device: torch.device, seed: int = 0,
                 progress=None) -> dict:
    """All sections on ``manifest`` (a manifest path, or rows as dicts of modality -> value):
    its held-out split when it is the training manifest."""
    from polyvae.pipelines.run_data import (held_out, is_training_manifest, read_rows, rows_from_values,
                                            training_manifest)

    kwargs = {"progress": progress} if progress is not None else {}
    in_python = not isinstance(manifest, (str, Path))
    data = rows_from_values(run, list(manifest)) if in_python else read_rows(run, manifest, **kwargs)
    notes = []
    on_training_manifest = not in_python and is_training_manifest(run, manifest)
    if on_training_manifest:
        reference, rows = held_out(run, data)
        if len(rows) == 0:
            reference, rows = data, data
            notes.append("no held-out rows in the training manifest: figures are on training rows")
        else:
            notes.append(f"training manifest: evaluated on its {len(rows)} held-out rows")
    else:
        trained_on = training_manifest(run)
        reference = rows = data
        if trained_on is not None:
            try:
                reference, _ = held_out(run, read_rows(run, trained_on, **kwargs))
                notes.append("classifiers fitted on the run's training rows")
            except Exception:   # the training manifest changed since; judge with this data
                notes.append("classifiers fitted on the evaluated data itself")
        else:
            notes.append("training manifest not found: classifiers fitted on the evaluated data itself")
    ctx = EvaluationContext(run, reference, rows, device, seed, notes)
    run.model.to(device).eval()
    torch.manual_seed(seed)
    source = f"{len(data)} rows given in Python" if in_python else str(manifest)
    result: dict = {"run": str(run.path), "data": source, "rows": len(rows)}
    for section in SECTIONS:
        part = section(ctx)
        if part:
            result.update(part)
    result["notes"] = ctx.notes
    findings = evaluation_verdict(run.model, rows, device, on_training_manifest)
    result["verdict"] = [f.message for f in findings]
    announce(findings)
    return result
