"""The audio modality as a plugin: registration, networks, likelihood, learning, rendering, the CLI."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import polyvae
from polyvae.core.plugins import build_registry
from polyvae.plugins.audio.modality import AudioModality


def ClipAudio(**options):
    """The clip model (one clip-level code), what these tests were written for."""
    return AudioModality(model="clip", **options)
from polyvae.plugins.audio.quality import spectral_convergence

SR = 16000
NOTES = {"low": 220.0, "mid": 330.0, "high": 494.0}


def voice(f0: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A sung-vowel stand-in: harmonics under a fixed formant-like envelope, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    wave = np.zeros_like(t)
    for k in range(1, 12):
        if f0 * k < SR / 2:
            envelope = math.exp(-((f0 * k - 700) / 600) ** 2) + 0.3 / k
            wave += envelope * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    wave *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)            # 20 ms fades
    return (0.3 * wave / np.abs(wave).max() + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def fitted():
    mod = ClipAudio()
    raws = [voice(f, seed=i) for i, f in enumerate([200, 250, 300, 350, 400, 450, 500, 550])]
    raws = [0.95 * r / np.abs(r).max() for r in raws]                 # as read() would leave them
    mod.fit(raws)
    return mod, raws, mod.preprocess(raws)


def test_registered_as_a_plugin():
    registry = build_registry()
    cls = registry.modality("audio")
    assert cls is AudioModality and cls.extension == "wav" and cls.version == "2" and cls.cell_is_path
    assert registry.info[("modality", "audio")].package == "polyvae"


@pytest.mark.parametrize("private_dim", [0, 3])
def test_networks_shapes_and_finite_likelihood(fitted, private_dim):
    mod, _, x = fitted
    mod = ClipAudio(private_dim=private_dim)
    mod.load_state({**fitted[0].state(), "options": {**fitted[0].state()["options"], "private_dim": private_dim}})
    encoder, decoder = mod.build_encoder(8), mod.build_decoder(8 + mod.private_dim)
    mu, logvar = encoder(x)
    assert mu.shape == logvar.shape == (8, 8 + private_dim)
    params = decoder(mu, x)
    assert params.mean.shape == x.shape
    ll = mod.log_likelihood(params, x)
    assert ll.shape == (8,) and torch.isfinite(ll).all()
    assert mod.generate(decoder, mu).shape == x.shape


@pytest.mark.parametrize("likelihood,scale", [("gaussian", "per-bin"), ("laplace", "global")])
def test_log_likelihood_matches_torch_distributions(fitted, likelihood, scale):
    mod = ClipAudio(likelihood=likelihood, likelihood_scale=scale)
    mod.load_state({**fitted[0].state(), "options": {**fitted[0].state()["options"],
                                                      "likelihood": likelihood, "likelihood_scale": scale}})
    x = fitted[2][:3]
    decoder = mod.build_decoder(4 + mod.private_dim)
    with torch.no_grad():
        decoder.raw_log_scale.normal_()
    params = decoder(torch.randn(3, 4 + mod.private_dim))
    dist = torch.distributions.Normal if likelihood == "gaussian" else torch.distributions.Laplace
    expected = dist(params.mean, params.log_scale.exp().expand_as(params.mean)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(mod.log_likelihood(params, x), expected, rtol=1e-4, atol=1e-2)
    lo, hi = -4.0, 1.0
    assert lo <= float(params.log_scale.detach().min()) and float(params.log_scale.detach().max()) <= hi


def test_encoder_and_decoder_overfit_a_few_clips(fitted):
    """Eight clips, 40 Adam steps of a deterministic autoencoder: the loss must fall a lot."""
    mod, _, x = fitted
    small = ClipAudio(width=64, hidden=128)
    small.load_state({**mod.state(), "options": {**mod.state()["options"], "width": 64, "hidden": 128}})
    encoder, decoder = small.build_encoder(8), small.build_decoder(8 + small.private_dim)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    losses = []
    for _ in range(40):
        mu, _ = encoder(x)
        loss = -mod.log_likelihood(decoder(mu), x).mean() / mod.num_elements()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    # measured: 1.43 -> 0.95 nats per element, reconstruction MSE 0.16 (predicting the mean: 1.0)
    assert losses[-1] < losses[0] - 0.3, losses[::10]
    with torch.no_grad():
        error = mod.distance(mod.generate(decoder, encoder(x)[0]), x).mean()
    assert float(error) < 0.3                       # data has unit variance per bin: most of it explained


def test_render_writes_a_playable_wav(fitted, tmp_path):
    mod, raws, x = fitted
    mod.render(x[2], tmp_path / "one.wav")
    info = sf.info(tmp_path / "one.wav")
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (SR, SR, 1, "PCM_16")
    audio, _ = sf.read(tmp_path / "one.wav", dtype="float32")
    assert 0.9 < np.abs(audio).max() <= 0.951                       # peak-normalised
    again = mod.preprocess([mod.read("one.wav", tmp_path)])          # the rendered file reads back
    original, back = (mod.normalizer.invert(v).exp() for v in (x[2:3], again))
    gain = (original * back).sum() / back.pow(2).sum()       # Griffin-Lim changes the crest factor,
    assert float(spectral_convergence(original, gain * back)) < 0.15   # so peak-normalising moves the level; measured 0.087

    paths = [tmp_path / f"b{i}.wav" for i in range(3)]
    mod.render_batch(x[:3], paths)
    assert all(sf.info(p).frames == SR for p in paths)
    waves = mod.spectrogram_to_audio(x[:3])
    assert waves.shape == (3, SR) and waves.dtype == torch.float32


def test_render_survives_garbage_decoder_output(fitted, tmp_path):
    mod, _, x = fitted
    wild = torch.full_like(x[0], 1e6)
    wild[0, 0] = float("nan")
    mod.render(wild, tmp_path / "wild.wav")
    audio, _ = sf.read(tmp_path / "wild.wav")
    assert np.isfinite(audio).all()


def test_mvae_trains_and_generates_audio_from_the_cli(tmp_path):
    """A small audio+text manifest through `polyvae train` and `polyvae generate --to audio`."""
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    rows = []
    for i in range(24):
        word = list(NOTES)[i % 3]
        name = f"clips/{i:02d}.wav" if i % 2 else f"clips/{i:02d}.flac"
        rate = 22050 if i % 4 == 0 else SR
        clip = voice(NOTES[word] * (1 + 0.01 * (i % 5)), seconds=1.5 if i == 3 else 1.0, seed=i)
        if rate != SR:
            clip = np.interp(np.arange(int(rate)) * SR / rate, np.arange(SR), clip).astype(np.float32)
        sf.write(data / name, clip, rate)
        rows.append({"audio": name, "text": word})
    with open(data / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["audio", "text"])
        writer.writeheader()
        writer.writerows(rows)
    run = tmp_path / "run"
    config = tmp_path / "c.toml"
    config.write_text("[modality_options.audio]\nn_mels = 32\nhop_length = 512\nwidth = 8\nhidden = 64\n"
                      "griffin_lim_iters = 8\n[train]\nnum_threads = 1\n")
    r = polyvae("train", run, "--data", data / "manifest.csv", "--epochs", "2", "--latent-dim", "4",
                "--batch-size", "8", "--device", "cpu", "--quiet", "--config", config)
    assert r.code == 0, r.err
    # the one 1.5 s clip is cut to the 1 s modelled, and the user is told how to keep more
    assert "audio: 1 of 24 clips are longer than the 1 s used (longest 1.50 s" in r.err
    assert "duration" in r.err
    saved = json.loads((run / "config.json").read_text())["modality_states"]["audio"]
    assert saved["options"]["n_mels"] == 32 and len(saved["normalization"]["mean"]) == 32
    r = polyvae("generate", run, "--given", "text=low", "--to", "audio", "--n", "2", "--out", tmp_path / "g")
    assert r.code == 0, r.err
    for k in range(2):
        info = sf.info(tmp_path / "g" / f"audio_{k}.wav")      # as long as the clip it judges it is
        assert info.samplerate == SR and 512 <= info.frames <= SR
    r = polyvae("generate", run, "--given", f"audio={data / 'clips' / '01.wav'}", "--to", "text",
                "--out", tmp_path / "t")
    assert r.code == 0, r.err

    (data / "clips" / "05.wav").write_text("not audio")
    r = polyvae("train", tmp_path / "run2", "--data", data / "manifest.csv", "--epochs", "1",
                "--device", "cpu", "--quiet", "--config", config)
    assert r.code == 2 and "05.wav" in r.err and "row 6" in r.err and "not a readable audio file" in r.err


def test_spectral_convergence_of_rendering_is_small(fitted):
    mod, _, x = fitted
    target = mod.normalizer.invert(x).exp()
    rendered = mod.features.mel_magnitude(mod.spectrogram_to_audio(x))
    assert float(spectral_convergence(target, rendered).max()) < 0.25


def test_notes_say_when_every_clip_is_far_shorter_than_the_duration(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", voice(220.0, seconds=0.4, seed=i), SR)
    mod = ClipAudio(duration=2.0)
    assert mod.notes() == []                                  # nothing read yet
    for i in range(3):
        mod.read(f"{i}.wav", tmp_path)
    assert mod.notes() == ["audio: every clip is at most 0.40 s but 2 s is modelled (the rest is "
                           "padding); a shorter [modality_options.audio] duration trains faster."]
