"""Per-modality label classifiers trained on real data: the judges of coherence.

Each modality's preprocessed tensor is flattened (integer ids become one-hot) and a
standardised RBF support-vector classifier is fitted on the real training rows. They never see a
generated example during fitting, so a generation counts as coherent only if it looks
like real data of the right class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def features(x: torch.Tensor, vocab_size: int | None = None) -> np.ndarray:
    """Flat float features of a batch; integer tensors (ids) are one-hot encoded."""
    if not torch.is_floating_point(x):
        size = vocab_size or int(x.max()) + 1
        x = torch.nn.functional.one_hot(x.clamp(0, size - 1), size)
    return x.detach().float().flatten(1).cpu().numpy()


@dataclass
class ModalityClassifier:
    """A fitted label classifier for one modality."""

    modality: str
    pipeline: object
    vocab_size: int | None = None

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.pipeline.predict(features(x, self.vocab_size))

    def accuracy(self, x: torch.Tensor, labels: np.ndarray) -> float:
        return float((self.predict(x) == labels).mean()) if len(labels) else float("nan")


def fit_classifier(modality: str, x: torch.Tensor, labels: np.ndarray, seed: int = 0,
                   max_rows: int = 4000) -> ModalityClassifier:
    """An RBF SVM on standardised flat features of (at most ``max_rows``) real rows."""
    vocab = None if torch.is_floating_point(x) else int(x.max()) + 1
    if len(labels) > max_rows:
        keep = np.random.default_rng(seed).choice(len(labels), max_rows, replace=False)
        x, labels = x[torch.as_tensor(keep)], labels[keep]
    # Centre only: per-feature scaling would blow up near-constant features (the silent
    # frames around a clip), where any resynthesis noise then decides the class.
    pipe = make_pipeline(StandardScaler(with_std=False), SVC(C=10.0, gamma="scale", random_state=seed))
    pipe.fit(features(x, vocab), labels)
    return ModalityClassifier(modality, pipe, vocab)
