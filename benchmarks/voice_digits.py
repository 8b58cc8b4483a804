"""Content from any speaker: spoken digits (image + text + audio), the speech model against the
clip model in the same run.

    .venv/bin/pip install pocketsphinx        # the recogniser (its English model ships in the wheel)
    .venv/bin/python benchmarks/voice_digits.py --out /tmp/voice-digits [--epochs 30] [--reps 6]

Needs Debian's espeak-ng, flite and sox for the data (benchmarks/spoken_digits.py): 8 training
voices, 4 unseen ones. For each audio model (``speech``, the default, and ``clip``, the
reference) it trains the three-modality MVAE with default settings and reports:

* text -> audio: 10 clips generated from each digit word, read by PocketSphinx restricted to
  the ten digit words (its accuracy on the real training clips is printed as the ceiling: it
  reads some synthetic voices' own clips half the time);
* unseen voice -> image and -> text: ``polyvae evaluate`` coherence on the unseen voices'
  manifest (classifiers fitted on the training rows);
* held-out (seen voices) coherence, for reference;
* content after conversion (speech model): every unseen-voice clip morphed (``--amount 1``)
  toward a training voice (in turn), read by the recogniser, against the originals and against
  the recogniser's ceiling for those targets (how often it reads the target voice's own clips
  of the same word).

``--reuse`` measures run folders already trained in ``--out`` (``run_speech``, ``run_clip``);
``--config`` adds run config sections (e.g. ``'{"train": {"lr_schedule": "cosine"}}'``) and
``--tag`` a suffix to the run folders' names.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spoken_digits import WORDS, write_spoken_digits  # noqa: E402


class Recogniser:
    """PocketSphinx with a grammar of the ten digit words."""

    def __init__(self):
        from pocketsphinx import Decoder
        self.decoder = Decoder(samprate=16000, loglevel="FATAL")
        grammar = "#JSGF V1.0;\ngrammar digits;\npublic <digit> = " + " | ".join(WORDS) + " ;\n"
        self.decoder.add_jsgf_string("digits", grammar)
        self.decoder.activate_search("digits")

    def __call__(self, samples: np.ndarray, rate: int) -> str:
        import soxr
        x = soxr.resample(np.asarray(samples, dtype=np.float32), rate, 16000) if rate != 16000 else samples
        x = x / max(1e-6, float(np.abs(x).max())) * 0.5
        self.decoder.start_utt()
        self.decoder.process_raw((x * 32767).astype(np.int16).tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr.strip() if hyp else ""


def read_manifest(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def converted_content(run, unseen: Path, ear: Recogniser, amount: float = 1.0,
                      rates: dict | None = None) -> dict:
    """Share of the unseen voices' clips still read as their word after a morph toward a
    training voice (each clip toward the next voice in turn); with ``rates`` (:func:`read_rates`
    of the training clips) also the recogniser's own ceiling for those conversions: how often it
    reads the target voice's real clips of the same word."""
    voices = run.singers
    rows = read_manifest(unseen)
    heard, ceiling = 0, 0.0
    for k, row in enumerate(rows):
        target = voices[k % len(voices)]
        moved = run.morph(unseen.parent / row["audio"], toward=target, amount=amount)
        heard += ear(moved.samples, moved.sample_rate) == row["text"]
        if rates is not None:
            ceiling += rates.get((target, row["text"]), 0.0)
    result = {"unseen_content_after_conversion": heard / len(rows)}
    if rates is not None:
        result["content_ceiling_of_the_targets"] = round(ceiling / len(rows), 4)
    return result


def measure(model: str, train: Path, unseen: Path, out: Path, epochs: int, ear: Recogniser, n: int = 10,
            reuse: bool = False, extra: dict | None = None, tag: str = "", rates: dict | None = None) -> dict:
    import polyvae

    extra = extra or {}
    options = extra.get("modality_options", {})
    config = {**extra, "modality_options": {**options, "audio": {**options.get("audio", {}), "model": model}}}
    t = time.perf_counter()
    folder = out / f"run_{model}{tag}"
    if reuse and (folder / "model.safetensors").exists():
        run = polyvae.load(folder)
    else:
        run = polyvae.train(folder, data=train, config=config, epochs=epochs, progress=False, plots=False)
    seconds = time.perf_counter() - t
    heard = 0
    for word in WORDS:
        clips = run.generate(given={"text": word}, to=["audio"], n=n, seed=1)["audio"]
        heard += sum(ear(a.samples, a.sample_rate) == word for a in clips)
    held = run.evaluate(train)
    other = run.evaluate(unseen)
    result = {"model": model, "train_seconds": round(seconds, 1), "text_to_audio_recognised": heard / (10 * n),
              "unseen_audio_to_image": other["coherence"]["1"].get("audio->image"),
              "unseen_audio_to_text": other["coherence"]["1"].get("audio->text"),
              "heldout_coherence": held["coherence"]["1"]}
    if model == "speech":
        result.update(converted_content(run, unseen, ear, rates=rates))
    return result


def read_rates(manifest: Path, ear: Recogniser) -> tuple[float, dict]:
    """How often the recogniser reads the real clips of ``manifest`` as their word: overall, and
    per (speaker, word)."""
    import soundfile as sf
    hits: dict = {}
    for r in read_manifest(manifest):
        samples, rate = sf.read(manifest.parent / r["audio"], dtype="float32", always_2d=True)
        hits.setdefault((r.get("speaker", ""), r["text"]), []).append(ear(samples.mean(1), rate) == r["text"])
    overall = sum(sum(v) for v in hits.values()) / sum(len(v) for v in hits.values())
    return overall, {key: sum(v) / len(v) for key, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="voice-digits-")))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--models", nargs="+", default=["speech", "clip"])
    parser.add_argument("--reuse", action="store_true", help="measure the run folders already in --out")
    parser.add_argument("--config", default="{}", help="run config sections as JSON, e.g. "
                        "'{\"train\": {\"lr_schedule\": \"cosine\"}}'")
    parser.add_argument("--tag", default="", help="suffix of the run folders")
    args = parser.parse_args()
    train, unseen = args.out / "train" / "manifest.csv", args.out / "unseen" / "manifest.csv"
    if not train.exists():
        write_spoken_digits(args.out, args.reps)
    ear = Recogniser()
    on_training, rates = read_rates(train, ear)
    report = {"recogniser_on_real_unseen_clips": round(read_rates(unseen, ear)[0], 4),
              "recogniser_on_real_training_clips": round(on_training, 4),
              "runs": [measure(m, train, unseen, args.out, args.epochs, ear, reuse=args.reuse,
                               extra=json.loads(args.config), tag=args.tag, rates=rates)
                       for m in args.models]}
    print(json.dumps(report, indent=2))
    if len(report["runs"]) == 2:
        a, b = report["runs"]
        for key in ("text_to_audio_recognised", "unseen_audio_to_image", "unseen_audio_to_text"):
            if a[key] and b[key]:
                print(f"{key}: {a['model']} {a[key]:.3f} / {b['model']} {b[key]:.3f} = {a[key] / b[key]:.2f}x")


if __name__ == "__main__":
    main()
