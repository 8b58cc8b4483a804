"""Whether a trained run, or an evaluation, can be trusted as it is.

Each check measures one figure and, when it is off, says so in one line: what was measured,
the figure, and what to change. Training ends with a verdict (``RUN/verdict.json``, and a
:class:`~polyvae.core.errors.VerdictWarning` per problem); ``polyvae evaluate`` adds its own
(``"verdict"`` in its JSON).

The checks:

* the loss curve: still falling fast at the end (undertrained), or well above its best
  (overfitting);
* decoded examples (reconstructions, and each modality generated from each other one):
  each modality reports its own *symptoms* (:meth:`Modality.symptoms`): continuous data
  that barely varies from row to row (collapsed to the mean, measured as the decoded rows'
  spread against the real rows'), text that repeats itself;
* evaluation on too few rows to mean anything;
* whatever the model itself can tell (:meth:`AutoencoderModel.training_verdict`; linear-ae:
  its angle to PCA's subspace).
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import UsageError, VerdictWarning

if TYPE_CHECKING:
    from .dataset import TensorData
    from .models import AutoencoderModel

VERDICT = "verdict.json"
#: decoded rows that vary less than this share of the real rows' variance have collapsed
COLLAPSED_SPREAD = 0.2
#: fewer evaluated rows than this and a figure's sampling error swamps it
MIN_EVALUATION_ROWS = 30
#: the last quarter of the epochs bringing more than this share of the loss's whole fall
STILL_FALLING = 0.1
#: ... and moving the loss by more than this share of its value (below: noise, converged)
MATTERS = 0.01
#: the loss back up by more than this share of its fall since its best epoch: overfitting
CLIMBED_BACK = 0.25
#: rows decoded for the symptom checks (enough to see a collapse, cheap on a CPU)
SYMPTOM_ROWS = 256


@dataclass
class Symptom:
    """Something visibly wrong with a modality's decoded examples, measured."""

    check: str          # "collapsed", "repeats", "identical", ...
    modality: str
    text: str           # e.g. "image reconstructions vary 2% as much as the real image rows"
    figure: float
    #: 0..1, higher is worse: of several symptoms of one kind, the worst is reported
    severity: float = 1.0


@dataclass
class Finding:
    """One line of a verdict. ``level`` "warning" is a problem to act on; "note" a figure
    worth knowing (linear-ae's distance from PCA when it is small)."""

    check: str
    message: str
    figure: float | None = None
    level: str = "warning"

    def __str__(self) -> str:
        return self.message


def spread_ratio(decoded: torch.Tensor, real: torch.Tensor) -> float:
    """Variance across rows of the decoded examples over that of the real ones (summed over
    elements): about 1 when the decoded rows differ as the data does, near 0 when every row
    decodes to the same thing."""
    d = decoded.detach().flatten(1).double()
    r = real.detach().flatten(1).double()
    real_var = float(r.var(0, unbiased=False).sum())
    return float(d.var(0, unbiased=False).sum()) / real_var if real_var > 0 else 1.0


def collapsed_symptom(name: str, what: str, decoded: torch.Tensor, real: torch.Tensor) -> Symptom | None:
    """A :class:`Symptom` when ``decoded`` varies under :data:`COLLAPSED_SPREAD` of ``real``'s variance."""
    if decoded.shape[0] < 2:
        return None
    ratio = spread_ratio(decoded, real)
    if ratio >= COLLAPSED_SPREAD:
        return None
    return Symptom("collapsed", name, f"{name} {what} vary {ratio:.0%} as much as the real {name} rows "
                                      f"(collapsed towards the mean)", ratio, 1.0 - ratio)


# ---- the loss curve ------------------------------------------------------------------------
def loss_trend(history: list[dict]) -> Finding | None:
    """Undertrained (still falling fast) or overfitting (well above its best), from the
    validation loss per epoch (the training loss when nothing was held out)."""
    key = "validation/loss" if all("validation/loss" in h for h in history) else "train/loss"
    losses = [float(h[key]) for h in history if key in h and math.isfinite(float(h[key]))]
    if len(losses) < 2:
        return None
    which = "validation loss" if key.startswith("validation") else "training loss"
    epochs = len(losses)
    best = min(range(epochs), key=losses.__getitem__)
    fall = losses[0] - losses[best]
    tail = max(1, epochs // 4)
    recent = losses[-1 - tail] - losses[-1]
    scale = max(abs(losses[best]), 1e-12)
    if fall > 0 and best == epochs - 1 and recent / fall > STILL_FALLING and recent / scale > MATTERS:
        return Finding("undertrained", f"the {which} was still falling at the end: the last {tail} of "
                       f"{epochs} epochs brought {recent / fall:.0%} of its fall "
                       f"({losses[0]:.4g} -> {losses[-1]:.4g})", recent / fall)
    excess = losses[-1] - losses[best]
    if fall > 0 and epochs - best >= 3 and excess / fall > CLIMBED_BACK and excess / scale > 2 * MATTERS:
        return Finding("overfitting", f"the {which} climbed back {excess / fall:.0%} of its fall after "
                       f"its best, at epoch {best + 1} of {epochs}", excess / fall)
    return None


# ---- decoded examples ----------------------------------------------------------------------
@torch.no_grad()
def decoded_symptoms(model: "AutoencoderModel", data: "TensorData", device) -> list[Symptom]:
    """Symptoms of each modality decoded from all of a row (reconstruction) and, for models
    that generate across modalities, from each single other modality; on up to
    :data:`SYMPTOM_ROWS` rows of ``data``."""
    from .models import CROSS_MODAL

    if len(data) < 2:
        return []
    rows = data.subset(list(range(min(len(data), SYMPTOM_ROWS))))
    batch = rows.batch(slice(None)).to(device)
    was_training = model.training
    model.eval()
    found: list[Symptom] = []
    try:
        try:
            reconstructed = model.reconstruct(batch)
        except (NotImplementedError, UsageError):       # a model that does not decode: nothing to see
            return []
        except Exception as exc:        # like a plot, a check must never undo a finished run
            warnings.warn(VerdictWarning(f"decoded examples could not be checked ({type(exc).__name__}: {exc})"),
                          stacklevel=3)
            return []
        decoded = {m: ("reconstructions", x) for m, x in reconstructed.items()}
        for m, (what, x) in decoded.items():
            found += _symptoms_of(model, m, what, x, batch)
        if model.supports(CROSS_MODAL) and len(model.modalities) > 1:
            for source in model.modalities:
                for target in model.modalities:
                    if target == source:
                        continue
                    try:
                        out = model.generate(batch.only([source]), [target], sample=False)[target]
                    except Exception as exc:
                        warnings.warn(VerdictWarning(f"{target} generated from {source} could not be checked "
                                                     f"({type(exc).__name__}: {exc})"), stacklevel=3)
                        continue
                    keep = batch.present[source] & batch.present[target]
                    found += _symptoms_of(model, target, f"generated from {source}", out, batch, keep)
    finally:
        model.train(was_training)
    return _worst_per_modality_check(found)


def _symptoms_of(model, m: str, what: str, x: torch.Tensor, batch, keep: torch.Tensor | None = None) -> list[Symptom]:
    have = batch.present[m] if keep is None else keep
    if int(have.sum()) < 2:
        return []
    return model.modalities[m].symptoms(x[have].cpu(), batch.data[m][have].cpu(), what)


def _worst_per_modality_check(found: list[Symptom]) -> list[Symptom]:
    """One symptom per (check, modality): the one with the most extreme figure."""
    worst: dict[tuple[str, str], Symptom] = {}
    for s in found:
        key = (s.check, s.modality)
        if key not in worst or s.severity > worst[key].severity:
            worst[key] = s
    return list(worst.values())


# ---- verdicts ------------------------------------------------------------------------------
def training_verdict(model: "AutoencoderModel", history: list[dict], train: "TensorData",
                     validation: "TensorData", device, run_dir: Path) -> list[Finding]:
    """The verdict on a run that just finished training."""
    findings: list[Finding] = []
    trend = loss_trend(history)
    # held-out rows when there are enough to see a pattern; else the training rows (a
    # model that cannot even reproduce those is the clearer case)
    rows = validation if len(validation) >= MIN_EVALUATION_ROWS else train
    symptoms = decoded_symptoms(model, rows, device)
    epochs = len(history)
    longer = f"train longer (polyvae train {run_dir} --resume --epochs {max(2 * epochs, epochs + 10)})"
    more_rows = f"more rows (it had {len(train)} training rows)"
    measured = ([trend.message] if trend is not None else []) + [s.text for s in symptoms]
    worst = trend.figure if trend is not None else \
        (max(symptoms, key=lambda s: s.severity).figure if symptoms else None)
    if trend is not None and trend.check == "overfitting":
        findings.append(Finding("overfitting", "overfitting: " + "; ".join(measured) + f". To fix: train on {more_rows}, "
                                f"or for fewer epochs (the best was epoch {_best_epoch(history)}).", worst))
    elif trend is not None:
        findings.append(Finding("undertrained", "undertrained: " + "; ".join(measured) + f". To fix: {longer}"
                                + (f", or on {more_rows}" if len(train) < 500 else "") + ".", worst))
    elif symptoms:
        findings.append(Finding("too-few-rows-or-epochs", "too few rows or epochs for the model: "
                                + "; ".join(measured) + f". To fix: train on {more_rows}, or {longer}.", worst))
    findings += model.training_verdict(train, device)
    return findings


def _best_epoch(history: list[dict]) -> int:
    key = "validation/loss" if all("validation/loss" in h for h in history) else "train/loss"
    return 1 + min(range(len(history)), key=lambda i: float(history[i].get(key, math.inf)))


def evaluation_verdict(model: "AutoencoderModel", rows: "TensorData", device, on_training_manifest: bool
                       ) -> list[Finding]:
    """The verdict on an evaluation of ``rows``."""
    findings: list[Finding] = []
    n = len(rows)
    if n < MIN_EVALUATION_ROWS:
        margin = 1.96 * math.sqrt(0.25 / max(n, 1))
        where = ("hold out more of the training manifest ([train] validation_fraction in --config) "
                 "or pass a manifest of other rows with --data") if on_training_manifest else \
            "pass a manifest with more rows"
        findings.append(Finding("few-rows", f"unreliable figures: evaluated on {n} row{'s' if n != 1 else ''}, "
                                f"where an accuracy is uncertain by up to +-{margin:.2f} (95%); evaluate on at "
                                f"least {MIN_EVALUATION_ROWS} rows: {where}.", float(n)))
    symptoms = decoded_symptoms(model, rows, device)
    if symptoms:
        findings.append(Finding("undertrained", "the run looks undertrained: " + "; ".join(s.text for s in symptoms)
                                + ". Train longer (--resume --epochs N) or on more rows.",
                                max(symptoms, key=lambda s: s.severity).figure))
    return findings


def announce(findings: list[Finding], note=lambda _msg: None) -> None:
    """Each warning as a :class:`VerdictWarning`, each note through ``note``."""
    for f in findings:
        if f.level == "warning":
            warnings.warn(VerdictWarning(f.message), stacklevel=2)
        else:
            note(f.message)


def write_verdict(run_dir: Path, findings: list[Finding]) -> None:
    from .atomic import write_text_atomic
    write_text_atomic(Path(run_dir) / VERDICT, json.dumps([asdict(f) for f in findings], indent=2) + "\n")


def read_verdict(run_dir: Path) -> list[Finding]:
    path = Path(run_dir) / VERDICT
    if not path.exists():
        return []
    return [Finding(**f) for f in json.loads(path.read_text(encoding="utf-8"))]
