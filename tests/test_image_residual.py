"""Residual image networks: 32 and 64 px colour images, train -> generate -> evaluate end to
end on tiny captioned shapes, and runs saved before residual blocks and words still load."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import polyvae
from polyvae.plugins.image.modality import ImageModality
from polyvae.plugins.image.networks import (ImageDecoder, ImageEncoder, ResidualImageDecoder,
                                            ResidualImageEncoder)

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (40, 70, 230)}
SHAPES = ("circle", "square")
#: two epochs on a few rows: the verdict rightly says undertrained; not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::polyvae.VerdictWarning")


def write_shapes(folder: Path, n: int = 24, side: int = 64, seed: int = 0) -> Path:
    """``n`` RGB pictures of a coloured shape on black, captioned "a <colour> <shape> at the left"."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour, shape = list(COLOURS)[i % 3], SHAPES[(i // 3) % 2]
        img = Image.new("RGB", (side, side))
        x, y, r = side * 0.4 + rng.uniform(-2, 2), side * 0.5, side * 0.2
        box = [x - r, y - r, x + r, y + r]
        (ImageDraw.Draw(img).ellipse if shape == "circle" else ImageDraw.Draw(img).rectangle)(box, fill=COLOURS[colour])
        img.save(folder / "images" / f"{i:03d}.png")
        rows.append({"image": f"images/{i:03d}.png", "text": f"a {colour} {shape} at the left"})
    manifest = folder / "manifest.csv"     # no label column: the caption figures need none
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.mark.parametrize("size,grid", [(32, 8), (64, 8), (16, 4)])
def test_residual_networks_shapes_and_identity_start(size, grid):
    enc, dec = ResidualImageEncoder(3, size, 10), ResidualImageDecoder(3, size, 10, gaussian=True)
    x = torch.rand(2, 3, size, size)
    mu, logvar = enc(x)
    assert mu.shape == logvar.shape == (2, 10)
    mean, log_sigma = dec(mu)
    assert mean.shape == (2, 3, size, size) and log_sigma.shape == ()
    assert dec.side == grid
    blocks = [m for m in dec.modules() if type(m).__name__ == "ResidualBlock"]
    assert len(blocks) == (2 if size == 64 else 1) and all(not b.body[-1].weight.any() for b in blocks)


def test_arch_is_saved_and_a_state_without_it_builds_the_plain_networks():
    mod = ImageModality(size=64)
    mod.fit([np.zeros((64, 64, 3), np.uint8)])
    assert mod.state() == {"channels": 3, "size": 64, "arch": "residual", "likelihood": mod.likelihood}
    assert isinstance(mod.build_encoder(8), ResidualImageEncoder)
    old = ImageModality(size=32)
    old.load_state({"channels": 3, "size": 32})                # saved before the option
    assert isinstance(old.build_encoder(8), ImageEncoder) and isinstance(old.build_decoder(8), ImageDecoder)
    # the old networks' parameter names and shapes are unchanged, so their weights load
    reference = ImageDecoder(3, 32, 8)
    old.build_decoder(8).load_state_dict(reference.state_dict())
    with pytest.raises(polyvae.UsageError, match="arch"):
        ImageModality(arch="unet")


def test_64px_colour_captions_train_generate_and_evaluate(tmp_path):
    manifest = write_shapes(tmp_path / "data")
    run = polyvae.train(tmp_path / "run", data=manifest, modalities=["image", "text"], epochs=2, batch_size=8,
                        latent_dim=8, modality_options={"image": {"size": 64}}, progress=False, plots=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    state = config["modality_states"]["image"]
    assert (state["channels"], state["size"], state["arch"]) == (3, 64, "residual")
    assert " red" in config["modality_states"]["text"]["words"]
    out = run.generate(given=[{"text": "a red circle at the left"}, {"text": "a blue square at the left"}],
                       to=["image"])
    assert [(im.size, im.mode) for im in out["image"]] == [((64, 64), "RGB")] * 2
    texts = polyvae.load(tmp_path / "run").generate(given={"image": tmp_path / "data" / "images" / "000.png"},
                                                    to=["text"], n=2)["text"]
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    result = run.evaluate(manifest)
    scores = result["caption_accuracy"]["image->text"]
    assert set(scores) == {"exact_caption", "word_accuracy"}
    assert 0.0 <= scores["exact_caption"] <= scores["word_accuracy"] <= 1.0


def test_a_run_saved_before_residual_blocks_and_words_still_loads(tmp_path):
    """A run trained with the old networks, its config stripped of every key added since,
    loads and generates as before."""
    manifest = write_shapes(tmp_path / "data", n=12, side=32)
    options = {"image": {"arch": "plain", "likelihood": "bernoulli"},      # the defaults of then
               "text": {"tokens": "chars", "no_repeat_ngram": 0}}
    polyvae.train(tmp_path / "run", data=manifest, modalities=["image", "text"], epochs=1, batch_size=6,
                  latent_dim=4, modality_options=options, progress=False, plots=False)
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    config["modality_options"] = {}
    del config["modality_states"]["image"]["arch"]
    del config["modality_states"]["image"]["likelihood"]
    del config["modality_states"]["text"]["no_repeat_ngram"]
    assert "words" not in config["modality_states"]["text"]
    path.write_text(json.dumps(config))
    run = polyvae.load(tmp_path / "run")
    images = run.generate(given={"text": "a red circle at the left"}, to=["image"])["image"]
    assert images[0].size == (32, 32)
    text = run.generate(given={"image": tmp_path / "data" / "images" / "001.png"}, to=["text"])["text"][0]
    assert isinstance(text, str)
