"""Real voices judged by an independent ear: reconstruction, conversion, interpolation, matching.

    apt-get install asterisk-prompt-it-menardi-wav asterisk-prompt-fr-armelle asterisk-prompt-es-co \\
        espeak-ng flite sox
    .venv/bin/pip install --no-deps resemblyzer pyworld-prebuilt     # the ear and an F0 tracker
    .venv/bin/python benchmarks/voice_real.py --out /tmp/voice-real [--epochs 30] [--train 60] [--amounts 1.5 2]

The speakers: three real ones (Debian's Italian, French and Colombian-Spanish telephone prompts,
8 kHz) and five synthetic ones (flite slt, rms, awb; espeak-ng en-us+f4, en-gb+m3) reading
sentences, rendered at 8 kHz. Never the ``asterisk-core-sounds-*`` packages: those are kept for
independent evaluation. Each speaker has ``--train`` training utterances and 20 held out.

polyvae is trained on the training utterances (audio + speaker, ``--model mvae`` defaults) with
the speech model and, as the reference in the same run, the clip model. The ear is resemblyzer's
pretrained speaker encoder (its weights ship in its wheel); polyvae never imports it. Its
speaker centroids are the mean embeddings of each speaker's original training utterances, and
an output is "identified as" the speaker whose centroid is most similar (8-way). Figures, on
held-out utterances:

* reconstruction: ``voice-morph --amount 0``, identified as its own speaker;
* conversion: ``--amount 1`` toward every other speaker (``--per-pair`` utterances a pair),
  identified as the target (overall and real -> real), and the F0 contour's correlation with
  the source's (pyworld harvest, log-F0 on frames voiced in both); with ``--amounts``, also
  past the target (same clips, identification only);
* interpolation: 8 steps between two speakers with a held-out utterance of the first as the
  content; Spearman's rho of alpha with the ear's similarity to the second, per pair (each
  pair's curve is kept in the output);
* voice-match: top-1 on held-out clips, and the calibration's equal error rate;
* speed: seconds of audio converted per second (the ``voice-morph`` path, 2 threads).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from polyvae.core.manifest import write_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spoken_digits import speak  # noqa: E402

REAL = {"it_menardi": "asterisk-prompt-it-menardi-wav", "fr_armelle": "asterisk-prompt-fr-armelle",
        "es_co": "asterisk-prompt-es-co"}
SYNTHETIC = {"sy_slt": ("flite", "slt"), "sy_rms": ("flite", "rms"), "sy_awb": ("flite", "awb"),
             "sy_esf": ("espeak", "en-us+f4"), "sy_esm": ("espeak", "en-gb+m3")}
TEXTS = ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0")


# ---- data -------------------------------------------------------------------------------------
def sox(src: str, dst: Path, trim: bool = True) -> None:
    effects = ["silence", "1", "0.02", "-45d", "reverse", "silence", "1", "0.02", "-45d", "reverse",
               "pad", "0.05", "0.05"] if trim else []
    subprocess.run(["sox", src, "-r", "8000", "-c", "1", "-b", "16", str(dst), *effects], check=True,
                   capture_output=True)


def real_files(package: str) -> list[str]:
    listed = subprocess.run(["dpkg", "-L", package], check=True, capture_output=True, text=True).stdout.split()
    return sorted(f for f in listed if f.endswith((".wav", ".gsm")) and "/silence/" not in f)


def sentences(count: int, seed: int) -> list[str]:
    words = " ".join(Path(t).read_text(errors="ignore") for t in TEXTS if Path(t).exists()).split()
    words = [w for w in words if w.isalpha()]
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        start = rng.randrange(len(words) - 20)
        out.append(" ".join(words[start:start + rng.randint(4, 14)]))
    return out


def prepare(out: Path, train: int, held: int = 20, seed: int = 0) -> tuple[Path, dict[str, list[Path]]]:
    """Utterances of every speaker; a training manifest (audio, speaker) and the held-out files."""
    import soundfile as sf

    rng = random.Random(seed)
    rows, held_out = [], {}
    for name, package in REAL.items():
        folder = out / "clips" / name
        folder.mkdir(parents=True, exist_ok=True)
        for src in real_files(package):
            dst = folder / (src.split("/sounds/")[-1].rsplit(".", 1)[0].replace("/", "_") + ".wav")
            if not dst.exists():
                try:
                    sox(src, dst)
                except subprocess.CalledProcessError:
                    continue
    for name, (engine, voice) in SYNTHETIC.items():
        folder = out / "clips" / name
        folder.mkdir(parents=True, exist_ok=True)
        for k, text in enumerate(sentences(train + held, seed + len(name))):
            dst = folder / f"{k:03d}.wav"
            if not dst.exists():
                speak(engine, voice, text, dst, 8000, effects=("sinc", "100-3600"))   # telephone band, as the real ones
    for name in [*REAL, *SYNTHETIC]:
        files = sorted((out / "clips" / name).glob("*.wav"))
        seconds = {f: sf.info(f).duration for f in files}
        usable = [f for f in files if 1.2 <= seconds[f] <= 8.0]
        rng.shuffle(usable)
        held_out[name] = usable[:held]
        rows += [{"audio": f.relative_to(out).as_posix(), "speaker": name} for f in usable[held:held + train]]
    manifest = out / "train.csv"
    write_manifest(manifest, rows, ["audio", "speaker"])
    return manifest, held_out


# ---- the ear ------------------------------------------------------------------------------------
class Ear:
    """resemblyzer's speaker encoder; centroids from the speakers' original training utterances."""

    def __init__(self, manifest: Path):
        import soundfile as sf
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder("cpu", verbose=False)
        by_speaker: dict[str, list[np.ndarray]] = {}
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                samples, rate = sf.read(manifest.parent / row["audio"], dtype="float32")
                by_speaker.setdefault(row["speaker"], []).append(self.embed(samples, rate))
        self.names = sorted(by_speaker)
        centres = np.stack([np.mean(by_speaker[n], 0) for n in self.names])
        self.centroids = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def embed(self, samples: np.ndarray, rate: int) -> np.ndarray:
        from resemblyzer import preprocess_wav
        wav = preprocess_wav(np.asarray(samples, dtype=np.float32), source_sr=rate)
        if len(wav) < 1600:
            import librosa
            wav = librosa.resample(np.asarray(samples, dtype=np.float32), orig_sr=rate, target_sr=16000)
        return self.encoder.embed_utterance(wav)

    def similarities(self, samples: np.ndarray, rate: int) -> dict[str, float]:
        e = self.embed(samples, rate)
        return dict(zip(self.names, (self.centroids @ e).tolist()))

    def identify(self, samples: np.ndarray, rate: int) -> str:
        sims = self.similarities(samples, rate)
        return max(sims, key=sims.get)


def log_f0(samples: np.ndarray, rate: int) -> np.ndarray:
    import pyworld
    f0, _ = pyworld.harvest(np.asarray(samples, dtype=np.float64), rate, frame_period=10.0, f0_floor=60, f0_ceil=600)
    return np.where(f0 > 0, np.log(np.maximum(f0, 1e-3)), np.nan)


def f0_correlation(source: np.ndarray, source_rate: int, out: np.ndarray, out_rate: int) -> float | None:
    a, b = log_f0(source, source_rate), log_f0(out, out_rate)
    n = min(len(a), len(b))
    both = ~np.isnan(a[:n]) & ~np.isnan(b[:n])
    if both.sum() < 10:
        return None
    return float(np.corrcoef(a[:n][both], b[:n][both])[0, 1])


# ---- the measurements ---------------------------------------------------------------------------
def conversion_pairs(held: dict[str, list[Path]], per_pair: int, seed: int):
    """(source, target, held-out utterance of the source) for every ordered pair of speakers,
    ``per_pair`` utterances each: the same ones for every amount measured."""
    rng = random.Random(seed)
    names = sorted(held)
    for source in names:
        for target in names:
            if target != source:
                for path in rng.sample(held[source], per_pair):
                    yield source, target, path


def measure(model: str, manifest: Path, held: dict[str, list[Path]], out: Path, ear: Ear, epochs: int,
            per_pair: int, seed: int = 0, options: dict | None = None, tag: str = "", reuse: bool = False,
            amounts: tuple[float, ...] = (1.0,), config: dict | None = None) -> dict:
    import soundfile as sf
    import torch
    from scipy.stats import spearmanr

    import polyvae

    torch.set_num_threads(2)
    t = time.perf_counter()
    folder = out / f"run_{model}{tag}"
    if reuse and (folder / "model.safetensors").exists():
        run = polyvae.load(folder)
    else:
        run = polyvae.train(folder, data=manifest, epochs=epochs, progress=False, plots=False,
                            config={**(config or {}),
                                    "modality_options": {"audio": {"model": model, **(options or {})}}})
    train_seconds = time.perf_counter() - t
    names = sorted(held)
    real = set(REAL)
    result: dict = {"model": model, "options": options or {}, "epochs": epochs,
                    "train_seconds": round(train_seconds, 1)}
    # reconstruction and voice-match
    own, match, evidence = [], [], []
    for name in names:
        for path in held[name][:per_pair * 2]:
            again = run.morph(path, toward=name, amount=0.0)
            own.append(ear.identify(again.samples, again.sample_rate) == name)
            found = run.voice_match(path)
            match.append(found.nearest == name)
            evidence.append(found.evidence.enough if found.evidence else True)
    result["reconstruction_own_speaker"] = float(np.mean(own))
    result["voice_match_top1"] = float(np.mean(match))
    result["voice_match_enough_evidence"] = float(np.mean(evidence))
    # conversion
    hits, real_hits, correlations, real_correlations, audio_seconds, seconds = [], [], [], [], 0.0, 0.0
    for source, target, path in conversion_pairs(held, per_pair, seed):
        samples, rate = sf.read(path, dtype="float32")
        t = time.perf_counter()
        moved = run.morph(path, toward=target, amount=1.0)
        seconds += time.perf_counter() - t
        audio_seconds += len(samples) / rate
        hit = ear.identify(moved.samples, moved.sample_rate) == target
        hits.append(hit)
        if source in real and target in real:
            real_hits.append(hit)
        r = f0_correlation(samples, rate, moved.samples, moved.sample_rate)
        if r is not None:
            correlations.append(r)
            if source in real and target in real:
                real_correlations.append(r)
    result["conversion_to_target"] = float(np.mean(hits))
    result["conversion_real_to_real"] = float(np.mean(real_hits)) if real_hits else None
    result["f0_correlation_median"] = float(np.median(correlations)) if correlations else None
    result["f0_correlation_share_over_0.8"] = float(np.mean(np.asarray(correlations) >= 0.8)) if correlations else None
    # real speakers into real speakers: the synthetic voices' contours are flatter (about 2
    # semitones within a clip against 4), so the same pitch error weighs more in theirs
    result["f0_correlation_real_to_real_median"] = float(np.median(real_correlations)) if real_correlations else None
    result["conversion_audio_seconds_per_second"] = round(audio_seconds / max(seconds, 1e-9), 2)
    # past the target (--amount above 1): the same clips, the ear only
    for amount in [a for a in amounts if a != 1.0]:
        hits, real_hits = [], []
        for source, target, path in conversion_pairs(held, per_pair, seed):
            moved = run.morph(path, toward=target, amount=amount)
            hit = ear.identify(moved.samples, moved.sample_rate) == target
            hits.append(hit)
            if source in real and target in real:
                real_hits.append(hit)
        result[f"conversion_to_target_at_amount_{amount:g}"] = float(np.mean(hits))
        result[f"conversion_real_to_real_at_amount_{amount:g}"] = float(np.mean(real_hits)) if real_hits else None
    # interpolation
    rhos, curves = [], {}
    for a in names:
        for b in names:
            if a >= b:
                continue
            path = held[a][0]
            steps = run.interpolate(a, b, steps=8, content=f"audio={path}")
            sims = [ear.similarities(v.samples, v.sample_rate)[b] for v in steps.values]
            rhos.append(float(spearmanr(steps.alphas, sims).statistic))
            curves[f"{a} -> {b}"] = {"rho": round(rhos[-1], 3), "similarity_to_b": [round(v, 3) for v in sims]}
    result["interpolation_pairs"] = len(rhos)
    result["interpolation_monotone_share"] = float(np.mean(np.asarray(rhos) >= 0.9))
    result["interpolation_rho_median"] = float(np.median(rhos))
    result["interpolation_curves"] = curves            # per pair: where a path flattens or turns back
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="voice-real-")))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train", type=int, default=60, help="training utterances per speaker")
    parser.add_argument("--per-pair", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["speech", "clip"])
    parser.add_argument("--audio-options", default="{}", help="JSON of extra audio options, e.g. "
                        "'{\"renderer\": \"excitation\"}' (applied to the speech model)")
    parser.add_argument("--config", default="{}", help="run config sections as JSON, e.g. "
                        "'{\"train\": {\"lr_schedule\": \"cosine\"}}'")
    parser.add_argument("--tag", default="", help="suffix of the run folders")
    parser.add_argument("--amounts", type=float, nargs="+", default=[1.0],
                        help="conversion amounts to measure besides 1 (e.g. 1.5 2: past the target)")
    parser.add_argument("--reuse", action="store_true", help="measure a run folder already trained (train_seconds is then the load time)")
    args = parser.parse_args()
    manifest, held = prepare(args.out, args.train)
    ear = Ear(manifest)
    extra = json.loads(args.audio_options)
    runs = [measure(m, manifest, held, args.out, ear, args.epochs, args.per_pair,
                    options=extra if m == "speech" else {}, tag=args.tag, reuse=args.reuse,
                    amounts=tuple(args.amounts), config=json.loads(args.config)) for m in args.models]
    print(json.dumps(runs, indent=2))
    if len(runs) == 2:
        a, b = runs
        for key in ("reconstruction_own_speaker", "conversion_to_target", "conversion_real_to_real",
                    "interpolation_monotone_share", "voice_match_top1"):
            if a.get(key) and b.get(key):
                print(f"{key}: {a['model']} {a[key]:.3f} / {b['model']} {b[key]:.3f} = {a[key] / b[key]:.2f}x")


if __name__ == "__main__":
    main()
