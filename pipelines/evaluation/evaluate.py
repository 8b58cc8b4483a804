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
from polyvae.core.run import LoadedRun
from polyvae.core.training import evaluate_loss

from .classifiers import ModalityClassifier
from .coherence import coherence_table, fit_classifiers, joint_coherence, labelled
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


def section_joint_coherence(ctx: EvaluationContext) -> dict | None:
    """Unconditional coherence: prior samples whose modalities all read as one label."""
    if not hasattr(ctx.run.model, "decode") or len(ctx.classifiers) < 2:
        return None
    value = joint_coherence(ctx.run.model, ctx.classifiers, device=ctx.device, seed=ctx.seed)
    return None if value is None else {"joint_coherence": value}


def section_log_likelihood(ctx: EvaluationContext) -> dict | None:
    """Importance-weighted log-likelihood estimate (K = 32), multimodal VAEs only."""
    if not hasattr(ctx.run.model, "fusion"):
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


def section_pca(ctx: EvaluationContext) -> dict | None:
    """linear-ae only: largest principal angle to PCA's top-k subspace, and MSE against PCA's."""
    if getattr(ctx.run.model, "name", "") != "linear-ae":
        return None
    from polyvae.plugins.models.classic.linear import compare_with_pca
    (m,) = ctx.run.modalities
    x = ctx.reference.data[m][ctx.reference.present[m]]
    return {"pca_comparison": compare_with_pca(ctx.run.model.cpu(), x).as_dict()}


@torch.no_grad()
def section_denoising(ctx: EvaluationContext) -> dict | None:
    """denoising-ae only: PSNR of noisy and of denoised held-out rows against the clean ones."""
    model = ctx.run.model
    if getattr(model, "name", "") != "denoising-ae":
        return None
    from polyvae.plugins.models.classic.common import psnr
    (m,) = ctx.run.modalities
    clean = ctx.rows.data[m][ctx.rows.present[m]].to(ctx.device)
    generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    noisy = model.corrupt(clean, generator)
    from polyvae.core.batch import Batch
    batch = Batch({m: noisy}, {m: torch.ones(len(noisy), dtype=torch.bool, device=ctx.device)})
    denoised = model.reconstruct(batch)[m]
    before, after = float(psnr(noisy, clean).mean()), float(psnr(denoised, clean).mean())
    return {"denoising": {"psnr_noisy_db": before, "psnr_denoised_db": after, "gain_db": after - before,
                          "noise": model.options.noise, "noise_level": model.options.noise_level}}


def section_playback(ctx: EvaluationContext) -> dict | None:
    """Audio only: spectral convergence of held-out mels -> Griffin-Lim audio -> mels (64 clips)."""
    mod = ctx.run.modalities.get("audio")
    if mod is None or not hasattr(mod, "spectrogram_to_audio"):
        return None
    from polyvae.plugins.audio.quality import griffin_lim_report
    x = ctx.rows.data["audio"][ctx.rows.present["audio"]][:64]
    return {"audio_playback": griffin_lim_report(mod, x)}


SECTIONS: list[Callable[[EvaluationContext], dict | None]] = [
    section_loss, section_reconstruction, section_classifiers, section_coherence,
    section_joint_coherence, section_log_likelihood, section_linear_probe, section_pca,
    section_denoising, section_playback,
]


def evaluate_run(run: LoadedRun, manifest: Path, device: torch.device, seed: int = 0,
                 progress=None) -> dict:
    """All sections on ``manifest``: its held-out split when it is the training manifest."""
    from polyvae.pipelines.run_data import held_out, is_training_manifest, read_rows

    kwargs = {"progress": progress} if progress is not None else {}
    data = read_rows(run, manifest, **kwargs)
    notes = []
    if is_training_manifest(run, manifest):
        reference, rows = held_out(run, data)
        if len(rows) == 0:
            reference, rows = data, data
            notes.append("no held-out rows in the training manifest: figures are on training rows")
        else:
            notes.append(f"training manifest: evaluated on its {len(rows)} held-out rows")
    else:
        trained_on = run.config.data.get("manifest")
        reference = rows = data
        if trained_on and Path(trained_on).exists():
            try:
                reference, _ = held_out(run, read_rows(run, Path(trained_on), **kwargs))
                notes.append("classifiers fitted on the run's training rows")
            except Exception:   # the training manifest changed since; judge with this data
                notes.append("classifiers fitted on the evaluated data itself")
        else:
            notes.append("training manifest not found: classifiers fitted on the evaluated data itself")
    ctx = EvaluationContext(run, reference, rows, device, seed, notes)
    run.model.to(device).eval()
    torch.manual_seed(seed)
    result: dict = {"run": str(run.path), "data": str(manifest), "rows": len(rows)}
    for section in SECTIONS:
        part = section(ctx)
        if part:
            result.update(part)
    result["notes"] = ctx.notes
    return result
