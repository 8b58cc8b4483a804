"""Captioned colour shapes: text -> image per attribute, image -> text caption, at defaults.

Generates coloured shapes on black (shape x colour x size x position, small jitter in place,
size and brightness) with a caption per image, trains an image + text model with
``polyvae.train`` at default settings (only the epoch count is set), and measures on
held-out rows drawn the same way:

* text -> image: each attribute read back from the generated pixels (colour: mean hue of
  the foreground; size: side of its bounding box; position: its centroid; shape: a
  nearest-centroid classifier on the foreground's bounding-box crop, fitted on real images),
  with the same reading of the real held-out images as its ceiling. Each caption is drawn with
  ``--samples`` sample seeds (3: one seed's figure moves by up to 0.05 on shape) and reported
  as their mean, lowest and highest, and once from the posterior mean;
* image -> text: exact caption and per-word accuracy (``polyvae evaluate``'s definitions),
  and the share of generated captions naming all four attributes right.

Captions (``--captions``):

* ``short``: "a small red triangle at the left" (7 words, 4 attributes);
* ``sentences``: 10-20 words, a varied wording (templates and synonyms) chosen once per
  attribute combination, e.g. "in this picture you can see a tiny red triangle sitting on
  the left side", so an exact caption is still determined by the image;
* ``free``: the same wordings, drawn afresh for every row: no exact caption can be read off
  the image, so what counts is the attributes named.

Run from the repository root. A run of 3,000 rows and 12 epochs takes about 4 minutes on
the 2 idle cores (13-22 s an epoch) and 20-60 minutes when other jobs load them (65-270 s
an epoch at a load average of 6-10); ``--reuse`` measures a run already trained::

    .venv/bin/python benchmarks/captioned_shapes.py --captions short --epochs 12
    .venv/bin/python benchmarks/captioned_shapes.py --captions sentences --epochs 12
    .venv/bin/python benchmarks/captioned_shapes.py --captions short --options '{"text": {"tokens": "chars"}}'
"""
from __future__ import annotations

import argparse
import colorsys
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (255, 40, 40), "yellow": (250, 230, 30), "green": (40, 220, 40),
           "cyan": (30, 220, 230), "blue": (50, 70, 255), "magenta": (235, 40, 235)}
SIZES = {"small": 0.15, "large": 0.27}                 # half-width as a share of the side
POSITIONS = {"left": (0.29, 0.5), "right": (0.71, 0.5), "top": (0.5, 0.29), "bottom": (0.5, 0.71),
             "center": (0.5, 0.5)}

# varied wordings of the same four attributes (10-20 words)
TEMPLATES = (
    "there is a {size} {colour} {shape} {where} of the picture",
    "in this picture you can see a {size} {colour} {shape} sitting {where}",
    "the image shows one {colour} {shape} which is rather {size} and placed {where}",
    "look at the {size} {colour} {shape} that somebody has drawn {where} of this black image",
    "a single {shape} appears {where} and it is {size} and coloured {colour}",
    "on a black background we find a {colour} {shape} of {size} size {where}",
)
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}
WHERE_WORDS = {"left": ("on the left side", "near the left edge"),
               "right": ("on the right side", "near the right edge"),
               "top": ("near the top", "at the upper part"),
               "bottom": ("near the bottom", "at the lower part"),
               "center": ("right in the middle", "at the centre")}


# ---- data ---------------------------------------------------------------------------------
def draw(shape: str, colour: str, size: str, position: str, side: int, rng) -> Image.Image:
    """One shape on black, drawn at 4x and downsampled (anti-aliased edges)."""
    big = side * 4
    img = Image.new("RGB", (big, big))
    pen = ImageDraw.Draw(img)
    cx, cy = POSITIONS[position]
    cx, cy = (cx + rng.uniform(-0.04, 0.04)) * big, (cy + rng.uniform(-0.04, 0.04)) * big
    r = SIZES[size] * rng.uniform(0.9, 1.1) * big
    shade = rng.uniform(0.8, 1.0)
    fill = tuple(int(c * shade) for c in COLOURS[colour])
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = r * 0.85
        pen.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        pen.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=fill)
    else:                                                  # cross: two bars
        w = r * 0.38
        pen.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        pen.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    return img.resize((side, side), Image.Resampling.BOX)


def caption(attrs: dict, captions: str, rng) -> str:
    if captions == "short":
        return f"a {attrs['size']} {attrs['colour']} {attrs['shape']} at the {attrs['position']}"
    if captions == "sentences":     # one wording per combination, varied across combinations
        key = (SHAPES.index(attrs["shape"]), list(COLOURS).index(attrs["colour"]),
               list(SIZES).index(attrs["size"]), list(POSITIONS).index(attrs["position"]))
        rng = np.random.default_rng(list(key))
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    return template.format(size=SIZE_WORDS[attrs["size"]][rng.integers(3)], colour=attrs["colour"],
                           shape=attrs["shape"], where=WHERE_WORDS[attrs["position"]][rng.integers(2)])


def attributes_named(text: str) -> dict:
    """The attributes a caption names (None where it names none or several)."""
    words = text.split()
    joined = f" {text} "
    found = {"shape": [s for s in SHAPES if s in words], "colour": [c for c in COLOURS if c in words],
             "size": [s for s, names in SIZE_WORDS.items() if any(n in words for n in names)],
             "position": [p for p, phrases in WHERE_WORDS.items()
                          if f" at the {p} " in joined or any(f" {ph} " in joined for ph in phrases)]}
    return {k: v[0] if len(v) == 1 else None for k, v in found.items()}


def make_rows(n: int, side: int, captions: str, seed: int, folder: Path) -> list[dict]:
    """``n`` rows with every combination equally often (seeded), images written to ``folder``."""
    rng = np.random.default_rng(seed)
    combos = [(s, c, z, p) for s in SHAPES for c in COLOURS for z in SIZES for p in POSITIONS]
    picks = np.concatenate([rng.permutation(len(combos)) for _ in range(n // len(combos) + 1)])[:n]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, pick in enumerate(picks):
        attrs = dict(zip(("shape", "colour", "size", "position"), combos[pick]))
        name = f"{folder.name}/{k:05d}.png"
        draw(**attrs, side=side, rng=rng).save(folder.parent / name)
        rows.append({"image": name, "text": caption(attrs, captions, rng), **attrs,
                     "label": f"{attrs['shape']}-{attrs['colour']}"})
    return rows


# ---- reading attributes back from pixels ----------------------------------------------------
def foreground(img: np.ndarray) -> np.ndarray:
    """Mask of pixels brighter than a third of full scale in any channel (background is black)."""
    return img.max(-1) > 0.33


def extent(mask: np.ndarray) -> float:
    """Side of the foreground's bounding box (the larger of width and height), in pixels."""
    if not mask.any():
        return 0.0
    ys, xs = np.nonzero(mask)
    return float(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)


def crop_features(img: np.ndarray, side: int = 12) -> np.ndarray:
    """The foreground mask inside its bounding box, resized to ``side`` x ``side``."""
    mask = foreground(img)
    if not mask.any():
        return np.zeros(side * side)
    ys, xs = np.nonzero(mask)
    box = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.uint8) * 255
    return np.asarray(Image.fromarray(box).resize((side, side), Image.Resampling.BILINEAR),
                      dtype=np.float64).ravel() / 255.0


class AttributeReader:
    """Reads shape, colour, size and position from images; fitted on real labelled images."""

    def fit(self, images: list[np.ndarray], rows: list[dict]) -> "AttributeReader":
        extents = np.array([extent(foreground(i)) for i in images])
        sizes = np.array([r["size"] for r in rows])
        self.extent_cut = (extents[sizes == "small"].mean() + extents[sizes == "large"].mean()) / 2
        feats = np.stack([crop_features(i) for i in images])
        shapes = np.array([r["shape"] for r in rows])
        self.centroids = {s: feats[shapes == s].mean(0) for s in SHAPES}
        return self

    def read(self, img: np.ndarray) -> dict:
        mask = foreground(img)
        if mask.sum() < 3:
            return {"shape": None, "colour": None, "size": None, "position": None}
        pixels = img[mask]
        hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
        angle = np.angle(np.sum(hsv[:, 1] * np.exp(2j * np.pi * hsv[:, 0])))
        hue = (np.degrees(angle) + 360) % 360
        ref = {c: colorsys.rgb_to_hsv(*(np.array(v) / 255))[0] * 360 for c, v in COLOURS.items()}
        colour = min(ref, key=lambda c: min(abs(hue - ref[c]), 360 - abs(hue - ref[c])))
        ys, xs = np.nonzero(mask)
        side = img.shape[0]
        cx, cy = xs.mean() / side, ys.mean() / side
        position = min(POSITIONS, key=lambda p: (POSITIONS[p][0] - cx) ** 2 + (POSITIONS[p][1] - cy) ** 2)
        feat = crop_features(img)
        shape = min(self.centroids, key=lambda s: np.sum((self.centroids[s] - feat) ** 2))
        return {"shape": shape, "colour": colour, "size": "large" if extent(mask) > self.extent_cut else "small",
                "position": position}


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def attribute_accuracy(reader: AttributeReader, images: list[np.ndarray], rows: list[dict]) -> dict:
    read = [reader.read(i) for i in images]
    out = {k: float(np.mean([r[k] == row[k] for r, row in zip(read, rows)]))
           for k in ("shape", "colour", "size", "position")}
    out["all"] = float(np.mean([all(r[k] == row[k] for k in out) for r, row in zip(read, rows)]))
    return out


# ---- benchmark ----------------------------------------------------------------------------
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", choices=("short", "sentences", "free"), default="short")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--test-rows", type=int, default=300)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=3, help="text -> image is drawn with this many sample "
                        "seeds (0, 1, ...) and reported as their mean and range, beside the posterior mean")
    parser.add_argument("--options", default="{}", help="modality_options as JSON, e.g. '{\"image\": {\"size\": 64}}'")
    parser.add_argument("--config", default=None, help="run config as JSON (sections model, train), e.g. "
                        "'{\"model\": {\"likelihood_weights\": {\"image\": 4}}}'")
    parser.add_argument("--tag", default="", help="added to the run folder's name")
    parser.add_argument("--out", default="runs/captioned_shapes")
    parser.add_argument("--reuse", action="store_true", help="measure the run already trained in --out")
    args = parser.parse_args(argv)

    import torch
    import polyvae
    sys.path.insert(0, str(Path(__file__).parent))
    from common import machine_line
    from polyvae.core.manifest import write_manifest
    from polyvae.pipelines.evaluation.coherence import caption_scores

    out = Path(args.out)
    tag = f"{args.captions}-{args.size}px-{args.rows}"
    data = out / f"data-{tag}"
    if not (data / "train.csv").exists():
        train_rows = make_rows(args.rows, args.size, args.captions, args.seed, data / "train")
        test_rows = make_rows(args.test_rows, args.size, args.captions, args.seed + 1000, data / "test")
        columns = ["image", "text", "shape", "colour", "size", "position", "label"]
        write_manifest(data / "train.csv", train_rows, columns)
        write_manifest(data / "test.csv", test_rows, columns)
    import csv
    with open(data / "train.csv") as fh:
        train_rows = list(csv.DictReader(fh))
    with open(data / "test.csv") as fh:
        test_rows = list(csv.DictReader(fh))
    options = json.loads(args.options)
    options.setdefault("image", {}).setdefault("size", args.size)
    print(machine_line(torch.get_num_threads()))
    run_dir = out / f"run-{tag}{'-' + args.tag if args.tag else ''}"
    start = time.perf_counter()
    if args.reuse:
        run = polyvae.load(run_dir)
    else:
        run = polyvae.train(run_dir, data=data / "train.csv", modalities=["image", "text"], epochs=args.epochs,
                            seed=args.seed, modality_options=options, progress=False, plots=False,
                            config=json.loads(args.config) if args.config else None)
    trained = time.perf_counter() - start
    real = [as_array(Image.open(data / r["image"])) for r in test_rows]
    reader = AttributeReader().fit([as_array(Image.open(data / r["image"])) for r in train_rows[:1500]],
                                   train_rows[:1500])
    start = time.perf_counter()
    captions = [{"text": r["text"]} for r in test_rows]
    drawn = [run.generate(given=captions, to=["image"], seed=k)["image"] for k in range(max(1, args.samples))]
    texts = run.generate(given=[{"image": str(data / r["image"])} for r in test_rows], to=["text"])["text"]
    generating = time.perf_counter() - start
    mean_images = run.generate(given=captions, to=["image"], sample=False)["image"]
    ceiling = attribute_accuracy(reader, real, test_rows)
    per_seed = [attribute_accuracy(reader, [as_array(i) for i in images], test_rows) for images in drawn]
    t2i = {k: float(np.mean([a[k] for a in per_seed])) for k in per_seed[0]}
    spread = {k: (min(a[k] for a in per_seed), max(a[k] for a in per_seed)) for k in per_seed[0]}
    t2i_mean = attribute_accuracy(reader, [as_array(i) for i in mean_images], test_rows)
    scores = caption_scores(texts, [r["text"] for r in test_rows])
    named = [attributes_named(t) for t in texts]
    attrs_right = float(np.mean([all(n[k] == r[k] for k in ("shape", "colour", "size", "position"))
                                 for n, r in zip(named, test_rows)]))
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    print(f"\ncaptions {args.captions}, {args.rows} rows, {args.size} px, {len(epochs)} epochs, options {options}")
    print(f"training {trained:.0f} s ({'reused' if args.reuse else 'this run'}), generating "
          f"{(len(drawn) + 1) * len(test_rows)} {generating:.1f} s; held-out rows: {len(test_rows)}")
    print(f"{'':34s}{'shape':>8s}{'colour':>8s}{'size':>8s}{'position':>9s}{'all':>7s}")
    columns = (("shape", 8), ("colour", 8), ("size", 8), ("position", 9), ("all", 7))
    for name, acc in (("real images (ceiling)", ceiling), (f"text -> image, {len(drawn)} sample seeds", t2i),
                      ("  lowest seed", {k: v[0] for k, v in spread.items()}),
                      ("  highest seed", {k: v[1] for k, v in spread.items()}),
                      ("text -> image, posterior mean", t2i_mean)):
        print(f"{name:34s}" + "".join(f"{acc[k]:{w}.3f}" for k, w in columns))
    print(f"image -> text: exact caption {scores['exact_caption']:.3f}, per-word accuracy "
          f"{scores['word_accuracy']:.3f}, all four attributes named right {attrs_right:.3f}")
    for r, t in list(zip(test_rows, texts))[:4]:
        print(f"  real: {r['text']!r}\n  made: {t!r}")


if __name__ == "__main__":
    main()
