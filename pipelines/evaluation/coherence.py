"""Cross-modal coherence: do generations carry the label of the row they came from? And for
text generated from another modality, is it the row's own text (exact caption, per word)?"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import torch

from polyvae.core.dataset import TensorData
from polyvae.core.models import AutoencoderModel

from .classifiers import ModalityClassifier, fit_classifier


def labelled(data: TensorData) -> np.ndarray | None:
    """The ``label`` column as an array, or None when the data has no labels."""
    labels = data.metadata.get("label")
    if not labels or all(v == "" for v in labels):
        return None
    return np.asarray(labels)


def fit_classifiers(data: TensorData, labels: np.ndarray) -> dict[str, ModalityClassifier]:
    """One classifier per modality, on the labelled rows that have it."""
    out = {}
    for m, present in data.present.items():
        rows = (present.numpy() & (labels != ""))
        if rows.sum() >= 2 and len(set(labels[rows])) >= 2:
            out[m] = fit_classifier(m, data.data[m][torch.as_tensor(rows)], labels[rows])
    return out


@torch.no_grad()
def generate_all(model: AutoencoderModel, data: TensorData, given: list[str], target: str,
                 batch_size: int, device, generator: torch.Generator | None) -> tuple[torch.Tensor, np.ndarray]:
    """Generations of ``target`` from ``given`` for every row that has all of ``given``."""
    rows = torch.ones(len(data), dtype=torch.bool)
    for m in given:
        rows &= data.present[m]
    idx = rows.nonzero().squeeze(1)
    outs = []
    for start in range(0, len(idx), batch_size):
        batch = data.batch(idx[start:start + batch_size]).only(given).to(device)
        outs.append(model.generate(batch, [target], generator=generator)[target].cpu())
    if not outs:
        return torch.empty(0), idx.numpy()
    return torch.cat(outs), idx.numpy()


def coherence_table(model: AutoencoderModel, data: TensorData, labels: np.ndarray,
                    classifiers: dict[str, ModalityClassifier], batch_size: int = 256,
                    device="cpu", seed: int = 0, max_given: int | None = None) -> dict[str, dict[str, float]]:
    """Coherence for every given subset -> every other target modality.

    Returns ``{"1": {"text->image": 0.97, ...}, "2": {...}}`` grouped by number of given modalities.
    """
    mods = list(data.data)
    generator = torch.Generator(device=device).manual_seed(seed)
    table: dict[str, dict[str, float]] = {}
    for size in range(1, (max_given or len(mods) - 1) + 1):
        for given in combinations(mods, size):
            for target in mods:
                if target in given or target not in classifiers:
                    continue
                gen, rows = generate_all(model, data, list(given), target, batch_size, device, generator)
                keep = labels[rows] != ""
                if keep.sum() == 0:
                    continue
                acc = classifiers[target].accuracy(gen[torch.as_tensor(keep)], labels[rows][keep])
                table.setdefault(str(size), {})[f"{'+'.join(given)}->{target}"] = round(acc, 4)
    return table


@torch.no_grad()
def joint_coherence(model: AutoencoderModel, classifiers: dict[str, ModalityClassifier],
                    samples: int = 500, device="cpu", seed: int = 0) -> float | None:
    """Share of prior samples whose decoded modalities all get the same label."""
    mods = [m for m in model.modalities if m in classifiers]
    if len(mods) < 2:
        return None
    latent = model.latent_dim
    generator = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn(samples, latent, generator=generator, device=device)
    dims = model.private_dims
    private = {m: torch.randn(samples, dims[m], generator=generator, device=device) for m in mods if m in dims}
    decoded = model.decode(z, mods, private)
    predictions = np.stack([classifiers[m].predict(decoded[m].cpu()) for m in mods])
    return round(float((predictions == predictions[0]).all(0).mean()), 4)


def caption_table(model: AutoencoderModel, data: TensorData, batch_size: int = 256, device="cpu",
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """Exact caption and per-word accuracy (:func:`caption_scores`) of every text-like target
    (a discrete modality whose values are strings) generated from each other single modality,
    on the rows that have both: ``{"image->text": {"exact_caption": 0.97, "word_accuracy": 0.99}}``."""
    table: dict[str, dict[str, float]] = {}
    generator = torch.Generator(device=device).manual_seed(seed)
    for target, mod in model.modalities.items():
        if not mod.discrete:
            continue
        for given in model.modalities:
            if given == target:
                continue
            gen, rows = generate_all(model, data, [given], target, batch_size, device, generator)
            keep = data.present[target][torch.as_tensor(rows, dtype=torch.long)]
            if not bool(keep.any()):
                continue
            made = mod.to_values(gen[keep])
            real = mod.to_values(data.data[target][torch.as_tensor(rows)[keep]])
            if not all(isinstance(t, str) for t in made + real):
                continue
            scores = caption_scores(made, real)
            table[f"{given}->{target}"] = {k: round(v, 4) for k, v in scores.items()}
    return table


def caption_scores(generated: list[str], real: list[str]) -> dict[str, float]:
    """How close generated texts are to the real texts of the same rows, word by word.

    Texts are compared as words (split on whitespace, so spacing does not count; case does):

    * ``exact_caption``: share of rows whose generated text has exactly the real text's words;
    * ``word_accuracy``: mean over rows of (words equal at the same position) / (words in the
      longer of the two texts), so a missing, extra or wrong word each cost one position.

    E.g. real "a red circle", generated "a red square at": 2 of 4 positions right, 0.5.
    """
    if len(generated) != len(real):
        raise ValueError(f"{len(generated)} generated texts for {len(real)} real ones")
    if not real:
        return {"exact_caption": float("nan"), "word_accuracy": float("nan")}
    exact, words = 0, 0.0
    for made, truth in zip(generated, real):
        a, b = made.split(), truth.split()
        exact += a == b
        longest = max(len(a), len(b))
        words += sum(x == y for x, y in zip(a, b)) / longest if longest else 1.0
    return {"exact_caption": exact / len(real), "word_accuracy": words / len(real)}
