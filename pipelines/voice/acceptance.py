"""The voice feature's acceptance figures on labelled clips (the demo data), reproducibly.

    python -m polyvae.pipelines.voice.acceptance RUN_DIR HELD_OUT_MANIFEST [--out DIR] [--json]

* interpolation: for every pair of the run's singers, a path (linear and spherical) with
  the content held at ``--content``; Spearman's rho of alpha with the re-encoded voice
  distance to A (should be >= 0.9) and to B (<= -0.9);
* voice-match: share of held-out clips whose nearest singer is their own, for the run's
  validation split and for the clips of ``HELD_OUT_MANIFEST`` (e.g. ``polyvae data demo
  OTHER --seed 1``: other renditions, never seen in training);
* content after a morph: an audio digit classifier (RBF SVM on real training log-mels)
  reads the ``label`` of morphed held-out clips, each moved toward another singer;
* content in the voice latent: the digit read from w by a logistic regression (chance 0.1).
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from polyvae.core.manifest import SPEAKER_COLUMN
from polyvae.core.run import load_run
from polyvae.pipelines.run_data import held_out, read_rows

from .encoding import encode_voice
from .interpolate import interpolate_voices
from .morph import morph_voice
from .singers import load_table, voice_modality


def _quiet(items, _label):
    return items


def interpolation_figures(run, out_dir: Path, content: str, steps: int) -> dict:
    table = load_table(run)
    result = {}
    for kind in ("linear", "spherical"):
        rows = []
        for a, b in itertools.combinations(table.names, 2):
            files = interpolate_voices(run, a, b, steps, out_dir / f"{kind}_{a}_{b}", kind=kind, content=content)
            record = json.loads(files[-1].read_text())
            rows.append({"from": a, "to": b, "rho_to_from": record["spearman_alpha_distance_to_from"],
                         "rho_to_to": record["spearman_alpha_distance_to_to"]})
        worst = min(min(r["rho_to_from"], -r["rho_to_to"]) for r in rows)
        result[kind] = {"pairs": rows, "worst_abs_rho": worst,
                        "pairs_passing": sum(r["rho_to_from"] >= 0.9 and r["rho_to_to"] <= -0.9 for r in rows)}
    return result


def match_accuracy(run, data, modality: str) -> dict:
    """Nearest-singer accuracy over the clips of ``data`` (as voice-match ranks them)."""
    table = load_table(run)
    speakers = data.metadata.get(SPEAKER_COLUMN, [])
    keep = [i for i in range(len(data)) if bool(data.present[modality][i]) and speakers[i] in table.singers]
    w = encode_voice(run, modality, data.data[modality][keep])
    d = table.distance(w[:, None], table.matrix()[None])
    predicted = [table.names[j] for j in d.argmin(1).tolist()]
    truth = [speakers[i] for i in keep]
    per = {s: float(np.mean([p == s for p, t in zip(predicted, truth) if t == s])) for s in table.names}
    return {"clips": len(keep), "accuracy": float(np.mean([p == t for p, t in zip(predicted, truth)])),
            "per_singer": per}


def digit_in_voice(run, train_rows, other, modality: str) -> float:
    """How much content leaks into the voice latent: a logistic regression fitted on training
    clips' voice latents reads the digit of held-out clips (chance: 0.1)."""
    from sklearn.linear_model import LogisticRegression

    def latents_and_labels(data):
        labels = np.array(data.metadata.get("label", [""] * len(data)))
        keep = np.flatnonzero(data.present[modality].numpy() & (labels != ""))
        return encode_voice(run, modality, data.data[modality][keep]).numpy(), labels[keep]

    w_train, y_train = latents_and_labels(train_rows)
    w_test, y_test = latents_and_labels(other)
    return float(LogisticRegression(max_iter=2000).fit(w_train, y_train).score(w_test, y_test))


def digit_classifier(x: torch.Tensor, labels: np.ndarray, seed: int = 0):
    """RBF SVM on the flat normalised log-mels of real clips.

    No per-feature standardisation (unlike :func:`~polyvae.pipelines.evaluation.classifiers.fit_classifier`):
    the plugin already scales every mel bin to unit variance, while the frames of silence
    before and after each phrase have almost no variance across real clips, so a
    per-feature scaler would blow the faint noise of any resynthesised clip there up to
    dominate the kernel (every rendered clip then lands in one class, whatever it sings).
    """
    from sklearn.svm import SVC

    from polyvae.pipelines.evaluation.classifiers import ModalityClassifier

    svm = SVC(C=10.0, gamma="scale", random_state=seed).fit(x.flatten(1).numpy(), labels)
    return ModalityClassifier("audio", svm)


def morph_content(run, train_rows, test_manifest: Path, out_dir: Path, amounts=(0.5, 1.0),
                  limit: int = 200, seed: int = 0) -> dict:
    """Digit accuracy of a classifier trained on real clips, on real and on morphed held-out clips."""
    from polyvae.core.manifest import read_manifest

    modality = voice_modality(run.model)
    mod = run.modalities[modality]
    labels = np.array(train_rows.metadata["label"])
    have = train_rows.present[modality].numpy() & (labels != "")
    clf = digit_classifier(train_rows.data[modality][torch.as_tensor(have)], labels[have], seed)
    table = load_table(run)
    manifest = read_manifest(test_manifest)
    rng = np.random.default_rng(seed)
    rows = [r for r in manifest.rows if r.get(modality) and r.get("label") and r.get(SPEAKER_COLUMN)]
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(limit, len(rows)), replace=False))]
    truth = np.array([r["label"] for r in rows])
    real = mod.preprocess([mod.read(r[modality], manifest.base_dir) for r in rows])
    out = {"clips": len(rows), "real_accuracy": clf.accuracy(real, truth),
           "shuffled_labels_accuracy": clf.accuracy(real, rng.permutation(truth))}
    for amount in amounts:
        morphed = []
        for k, r in enumerate(rows):
            others = [n for n in table.names if n != r[SPEAKER_COLUMN]]
            toward = others[rng.integers(len(others))]
            path = out_dir / f"morph_{amount:g}_{k:03d}.wav"
            morph_voice(run, manifest.base_dir / r[modality], toward, amount, path)
            morphed.append(mod.read(path.name, path.parent))
        out[f"morph_{amount:g}_accuracy"] = clf.accuracy(mod.preprocess(morphed), truth)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("held_out_manifest", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--content", default="text=seven")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--morph-clips", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    run = load_run(args.run_dir)
    modality = voice_modality(run.model)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="voice-acceptance-"))
    data = read_rows(run, Path(run.config.data.manifest), progress=_quiet)
    train_rows, validation = held_out(run, data)
    other = read_rows(run, args.held_out_manifest, progress=_quiet)
    report = {
        "match_validation_split": match_accuracy(run, validation, modality),
        "match_other_seed": match_accuracy(run, other, modality),
        "interpolation": interpolation_figures(run, out_dir / "paths", args.content, args.steps),
        "digit_from_voice_latent": digit_in_voice(run, train_rows, other, modality),
        "morph_content": morph_content(run, train_rows, args.held_out_manifest, out_dir / "morphs",
                                       limit=args.morph_clips),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
