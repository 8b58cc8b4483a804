"""The image and text plugins on real files and strings."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from polyvae.core.config import ModelConfig
from polyvae.core.errors import BadInput, UsageError
from polyvae.core.objective import likelihood_weights
from polyvae.plugins.image.modality import ImageModality
from polyvae.plugins.text.modality import TextModality


def _save(path, array, mode=None, **kw):
    Image.fromarray(array, mode) if mode else Image.fromarray(array)
    Image.fromarray(array).save(path, **kw)
    return path.name


def test_image_formats_channels_and_resizing(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((40, 40), 128, np.uint8)])
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.gif")
    Image.fromarray((gray.astype(np.uint16) * 257)).save(tmp_path / "deep.png")

    mod = ImageModality(size=16)
    raws = {name: mod.read(name, tmp_path) for name in ["g.png", "c.jpg", "a.png", "p.gif", "deep.png"]}
    assert raws["g.png"].shape == (16, 16, 1) and raws["deep.png"].shape == (16, 16, 1)
    assert raws["c.jpg"].shape == (16, 16, 3) and raws["a.png"].shape == (16, 16, 3)
    mod.fit(list(raws.values()))
    assert mod.channels == 3                                   # any colour image -> RGB run
    x = mod.preprocess(list(raws.values()))
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    gray_only = ImageModality(size=16)
    gray_only.fit([raws["g.png"]])
    assert gray_only.channels == 1 and gray_only.preprocess([raws["g.png"]]).shape == (1, 1, 16, 16)
    # balanced likelihoods count pixels: a colour image weighs what a grayscale one of its size does
    assert mod.num_elements() == gray_only.num_elements() == 16 * 16
    weights = likelihood_weights({"colour": mod, "gray": gray_only}, ModelConfig(reference_elements=256))
    assert weights == {"colour": 1.0, "gray": 1.0}


def test_image_likelihood_auto_is_gaussian_for_colour_bernoulli_for_grayscale():
    rng = np.random.default_rng(2)
    colour, gray = ImageModality(size=8), ImageModality(size=8)
    assert colour.likelihood == "auto"                          # unknown until the channels are
    colour.fit([rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)])
    gray.fit([rng.integers(0, 255, (8, 8, 1), dtype=np.uint8)])
    assert (colour.likelihood, gray.likelihood) == ("gaussian", "bernoulli")
    assert isinstance(colour.build_decoder(4)(torch.zeros(1, 4)), tuple)       # (means, log_sigma)
    assert isinstance(gray.build_decoder(4)(torch.zeros(1, 4)), torch.Tensor)  # logits
    assert colour.state()["likelihood"] == "gaussian"           # a run reloads what it trained with
    assert ImageModality(size=8, channels=3).likelihood == "gaussian"
    chosen = ImageModality(size=8, likelihood="bernoulli")      # a choice is kept
    chosen.fit([rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)])
    assert chosen.likelihood == "bernoulli"
    old = ImageModality(size=8)                                 # saved before the state named it
    old.load_state({"channels": 3, "size": 8, "arch": "plain"})
    assert old.likelihood == "bernoulli"
    with pytest.raises(UsageError, match="bernoulli, gaussian or auto"):
        ImageModality(likelihood="poisson")


def test_image_render_round_trip(tmp_path):
    mod = ImageModality(size=8)
    mod.load_state({"channels": 1, "size": 8})
    x = torch.linspace(0, 1, 64).view(1, 8, 8)
    mod.render(x, tmp_path / "out.png")
    back = mod.preprocess([mod.read("out.png", tmp_path)])[0]
    assert torch.allclose(back, x, atol=1 / 255)


@pytest.mark.parametrize("content,reason", [
    (None, "not found"),
    (b"", "empty file"),
    (b"GIF89a but not really", "not an image|cannot decode"),
    (b"hello, I am text", "not an image"),
])
def test_image_bad_files(tmp_path, content, reason):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInput, match=reason):
        ImageModality().read("x.png", tmp_path)


def test_truncated_png_is_bad_input(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInput, match="cannot decode"):
        ImageModality().read("t.png", tmp_path)


def test_image_options_are_checked():
    with pytest.raises(UsageError, match="unknown image option"):
        ImageModality(sise=32)
    with pytest.raises(UsageError, match="multiple of 4"):
        ImageModality(size=30)


def test_gaussian_image_likelihood_learns_sigma():
    mod = ImageModality(size=8, likelihood="gaussian")
    mod.load_state({"channels": 1, "size": 8})
    dec = mod.build_decoder(4)
    params = dec(torch.zeros(2, 4))
    assert isinstance(params, tuple)
    ll = mod.log_likelihood(params, torch.rand(2, 1, 8, 8))
    assert ll.shape == (2,) and torch.isfinite(ll).all()
    ll.sum().backward()
    assert dec.log_sigma.grad is not None


def test_text_vocabulary_round_trip_and_state():
    mod = TextModality(max_length=10)
    mod.fit(["seven", "three", "a longer sentence"])
    ids = mod.preprocess(["seven", "xyt"])
    assert ids.shape == (2, 10)
    assert mod.to_text(ids[0]) == "seven"
    assert mod.to_text(ids[1]) == "\N{REPLACEMENT CHARACTER}" * 2 + "t"     # unseen x, y
    assert mod.to_text(mod.preprocess(["a longer sentence"])[0]) == "a longer "    # cut to fit
    again = TextModality(max_length=10)
    again.load_state(mod.state())
    assert torch.equal(again.preprocess(["three"]), mod.preprocess(["three"]))
    # the cut is reported once the training texts are fitted, with the setting that avoids it
    assert mod.notes() == ["text: 1 of 3 training texts are cut to 9 characters (longest 17; "
                           "max_length 10 counts the end mark); set [modality_options.text] "
                           "max_length to keep more."]
    roomy = TextModality(max_length=64)
    roomy.fit(["seven", "three", "a longer sentence"])
    assert roomy.notes() == []


def test_text_bad_cells():
    mod = TextModality()
    with pytest.raises(BadInput, match="empty text"):
        mod.read("   ", None)
    with pytest.raises(BadInput, match="control characters"):
        mod.read("bell\x07", None)


@pytest.mark.parametrize("encoder", ["cnn", "gru"])
def test_text_encoder_decoder_learn_to_copy(encoder):
    torch.manual_seed(0)
    words = ["zero", "one", "two", "three", "four"]
    mod = TextModality(encoder=encoder, hidden=64, embed=32)
    mod.fit(words)
    x = mod.preprocess(words)
    enc, dec = mod.build_encoder(8), mod.build_decoder(8)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-2)
    for _ in range(150):
        mu, _ = enc(x)
        loss = -mod.log_likelihood(dec(mu, x), x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    mu, logvar = enc(x)
    assert mu.shape == (5, 8) and logvar.shape == (5, 8)
    decoded = [mod.to_text(row) for row in mod.generate(dec, mu)]
    assert decoded == words
    assert float(mod.distance(mod.generate(dec, mu), x).max()) == 0.0
