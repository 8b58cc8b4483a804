"""Voice-match on voices unlike the demo's: espeak-ng speakers saying digit words.

Command (from the repository root; needs Debian's ``espeak-ng`` and ``sox``, which are not
polyvae dependencies: ``apt-get install espeak-ng sox``)::

    .venv/bin/python benchmarks/voice_other_speakers.py --out /tmp/voices              # mixed files, 30 epochs
    .venv/bin/python benchmarks/voice_other_speakers.py --out /tmp/voices2 --uniform --epochs 60

Writes 240 clips (6 espeak-ng voices x 10 digit words x 4 renditions at random speaking
rates; pitch varied per clip, or with ``--uniform`` fixed per voice and every file 44.1 kHz
stereo FLAC; otherwise a mix of 8 kHz 8-bit WAV, 32 kHz 24-bit WAV, 44.1 kHz stereo FLAC and
48 kHz Ogg) with a font-rendered image and a text per clip, trains the three-modality MVAE
twice, with the ``speaker`` term on (the default) and off (``private_supervision = 0``, the
reference), and prints the share of the run's held-out clips whose nearest singer, as
``polyvae voice-match`` ranks them, is their own.
"""
from __future__ import annotations

import argparse
import glob
import random
import shutil
import subprocess
import sys
from pathlib import Path

from polyvae.core.manifest import write_manifest

ROOT = Path(__file__).resolve().parents[1]
WORDS = "zero one two three four five six seven eight nine".split()
#: name -> (espeak-ng voice, base pitch 0..99)
VOICES = {"mike": ("en+m1", 40), "rob": ("en+m3", 50), "fay": ("en+f2", 50), "ann": ("en+f4", 60),
          "kroak": ("en+croak", 45), "will": ("en-us+m7", 35)}
FORMATS = {"flac44s": ("flac", ["-r", "44100", "-c", "2"]), "wav8k": ("wav", ["-r", "8000", "-b", "8"]),
           "ogg48k": ("ogg", ["-r", "48000"]), "wav32k24": ("wav", ["-r", "32000", "-b", "24"])}


def write_dataset(out: Path, uniform: bool, seed: int = 0) -> Path:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = random.Random(seed)
    fonts = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/*.ttf"))
    if not fonts:
        sys.exit("needs the DejaVu fonts (/usr/share/fonts/truetype/dejavu)")
    for sub in ("img", "wav"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rows, k = [], 0
    for _ in range(4):
        for speaker, (voice, base) in VOICES.items():
            for digit, word in enumerate(WORDS):
                k += 1
                size = rng.choice([28, 40, 64])
                image = Image.new("RGB", (size, size), "white")
                font = ImageFont.truetype(rng.choice(fonts), int(size * rng.uniform(0.6, 0.85)))
                ImageDraw.Draw(image).text((size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)),
                                           str(digit), fill=(rng.randint(0, 60),) * 3, font=font, anchor="mm")
                image = image.rotate(rng.uniform(-15, 15), fillcolor="white")
                if rng.random() < 0.5:
                    image = image.filter(ImageFilter.GaussianBlur(0.6))
                image_path = f"img/{k:04d}.{rng.choice(['png', 'jpg'])}"
                image.save(out / image_path)
                pitch = base + rng.randint(-5, 5) if uniform else rng.randint(30, 70)
                raw = out / f"raw_{k}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(rng.randint(120, 200)), "-p", str(pitch),
                                "-w", str(raw), word], check=True)
                ext, args = FORMATS["flac44s" if uniform else rng.choice(sorted(FORMATS))]
                audio_path = f"wav/{k:04d}.{ext}"
                subprocess.run(["sox", str(raw), *args, str(out / audio_path)], check=True)
                raw.unlink()
                text = rng.choice([word, word.capitalize(), word.upper() + "!"])
                rows.append({"image": image_path, "text": text, "audio": audio_path, "speaker": speaker,
                             "label": digit})
    rng.shuffle(rows)
    manifest = out / "manifest.csv"
    write_manifest(manifest, rows, ["image", "text", "audio", "speaker", "label"])
    return manifest


def held_out_match(run_dir: Path, manifest: Path) -> dict:
    from polyvae.core.run import load_run
    from polyvae.pipelines.run_data import held_out, read_rows
    from polyvae.pipelines.voice.acceptance import match_accuracy

    run = load_run(run_dir)
    _, validation = held_out(run, read_rows(run, manifest, progress=lambda items, _label: items))
    return match_accuracy(run, validation, "audio")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--uniform", action="store_true", help="pitch fixed per voice, every file 44.1 kHz FLAC")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool} (apt-get install espeak-ng sox)")
    manifest = args.out / "data" / "manifest.csv"
    if not manifest.exists():
        manifest = write_dataset(args.out / "data", args.uniform)
    polyvae = str(ROOT / ".venv" / "bin" / "polyvae")
    results = {}
    for name, weight in (("speaker term off (reference)", 0.0), ("default", None)):
        run_dir = args.out / ("run_off" if weight == 0.0 else "run_default")
        if not (run_dir / "model.safetensors").exists():
            cmd = [polyvae, "train", str(run_dir), "--data", str(manifest), "--epochs", str(args.epochs)]
            if weight is not None:
                config = args.out / "off.toml"
                config.write_text(f"[model]\nprivate_supervision = {weight}\n")
                cmd += ["--config", str(config)]
            print(f"training {run_dir} ({name}, {args.epochs} epochs)", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[name] = held_out_match(run_dir, manifest)
    reference = results["speaker term off (reference)"]["accuracy"]
    print(f"{'run':32s} {'held-out clips':>14s} {'nearest singer right':>21s} {'x reference':>12s}")
    for name, r in results.items():
        ratio = r["accuracy"] / reference if reference else float("inf")
        print(f"{name:32s} {r['clips']:14d} {r['accuracy']:21.1%} {ratio:12.2f}")


if __name__ == "__main__":
    main()
