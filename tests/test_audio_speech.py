"""The speech model of the audio modality: pitch tracking, the frame layout, its likelihood per
(subset, clip) row, and conversion that keeps timing, voicing and intonation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polyvae.plugins.audio.modality import SPREAD_RATIO, AudioModality
from polyvae.plugins.audio.pitch import drop_outliers, harvest, yin
from polyvae.plugins.audio.speech import fill_unvoiced, intonation, split

SR = 16000


def harmonic(f0: float, seconds: float, rate: int = SR, vibrato: float = 0.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + vibrato * np.sin(2 * np.pi * 5 * t))) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.3 * wave).astype(np.float32)


def glide() -> np.ndarray:
    """One second of a harmonic tone gliding from 120 to 200 Hz."""
    f0 = 120 + 80 * np.arange(SR) / SR
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 10))).astype(np.float32)


def assert_follows_the_glide(wave: torch.Tensor) -> None:
    """YIN finds :func:`glide`'s contour in ``wave`` (samples,) within 2% over its middle."""
    track, voiced = yin(wave[None], SR, 160)
    frames = np.arange(track.shape[1]) * 160 / SR
    keep = voiced[0].numpy() & (frames > 0.1) & (frames < 0.9)
    assert keep.sum() > 50
    assert np.median(np.abs(track[0].numpy()[keep] / (120 + 80 * frames[keep]) - 1)) < 0.02


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0, 440.0])
def test_yin_finds_the_pitch_of_harmonic_tones(f0):
    track, voiced = yin(torch.from_numpy(harmonic(f0, 0.6))[None], SR, 160)
    inner = voiced[0, 5:-5]
    assert inner.float().mean() > 0.95
    assert float(track[0, 5:-5][inner].median()) == pytest.approx(f0, rel=0.01)


def test_yin_calls_silence_and_noise_unvoiced():
    silence = torch.zeros(1, SR // 2)
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, SR // 2).astype(np.float32))[None]
    assert not yin(silence, SR, 160)[1].any()
    assert yin(noise, SR, 160)[1].float().mean() < 0.1


def test_harvest_follows_a_glide_and_leaves_silence_and_padding_unvoiced():
    clip = np.concatenate([np.zeros(SR // 4, np.float32), glide()])      # 0.25 s of silence first
    track, voiced = harvest([clip, clip[:SR // 2]], SR, 160, frames=140, threads=2)
    assert track.shape == voiced.shape == (2, 140)
    centres = np.arange(140) * 160 / SR
    inner = (centres > 0.35) & (centres < 1.15)
    expected = 120 + 80 * (centres[inner] - 0.25)
    assert bool(voiced[0, inner].all())
    assert np.abs(track[0, inner].numpy() / expected - 1).max() < 0.02
    assert not voiced[0, centres < 0.2].any()                              # the silence
    assert not voiced[1, centres > 0.55].any()                             # past the shorter clip's end
    torch.testing.assert_close(track[1, 40:45], track[0, 40:45])           # the same audio, the same pitch


def test_a_speech_state_saved_before_the_pitch_tracker_option_loads_with_yin():
    mod = AudioModality(n_mels=32, width=16, hidden=32)
    mod.fit(speech_clips())
    assert mod.opts.pitch_tracker == "harvest"                 # the default
    state = mod.state()
    del state["options"]["pitch_tracker"]
    old = AudioModality(n_mels=32, width=16, hidden=32)
    old.load_state(state)
    assert old.opts.pitch_tracker == "yin"
    fresh = AudioModality(n_mels=32, width=16, hidden=32)
    fresh.load_state(mod.state())
    assert fresh.opts.pitch_tracker == "harvest"


def test_drop_outliers_removes_octave_jumps_and_isolated_frames():
    # a monotone voice around 100 Hz with one octave jump, one sub-octave frame and a lone voiced frame
    f0 = torch.tensor([[100.0, 101, 102, 200, 103, 104, 105, 55, 104, 103, 102, 0, 0, 98, 0, 0, 100, 101, 102]])
    voiced = f0 > 0
    kept = drop_outliers(f0, voiced)
    dropped = (voiced & ~kept)[0].nonzero().flatten().tolist()
    assert dropped == [3, 7, 13]
    assert not drop_outliers(f0[:, :2], voiced[:, :2]).any()


def test_fill_unvoiced_interpolates_between_voiced_frames():
    values = torch.tensor([[0.0, 2.0, 0.0, 0.0, 5.0, 0.0], [0.0] * 6])
    voiced = torch.tensor([[False, True, False, False, True, False], [False] * 6])
    out = fill_unvoiced(values, voiced)
    torch.testing.assert_close(out[0], torch.tensor([2.0, 2.0, 3.0, 4.0, 5.0, 5.0]))
    assert torch.equal(out[1], torch.zeros(6))


def speech_clips() -> list[np.ndarray]:
    """Clips of different lengths and pitches (0.4 s to 1.1 s)."""
    return [harmonic(f0, seconds) for f0, seconds in
            [(110, 0.4), (140, 0.7), (180, 1.0), (220, 0.9), (260, 1.1), (120, 0.8), (200, 0.6), (240, 1.0)]]


def test_the_clip_length_is_fitted_and_frames_carry_pitch_voicing_and_extent():
    mod = AudioModality(n_mels=32, width=16, hidden=32)
    clips = speech_clips()
    mod.fit(clips)
    # 95% of the clips whole: the 0.95 quantile of their lengths, rounded up to 0.25 s
    expected = math.ceil(np.quantile([len(c) / SR for c in clips], 0.95) / 0.25) * 0.25
    assert mod.opts.duration == pytest.approx(expected)
    x = mod.preprocess(clips)
    assert x.shape == (8, 32 + 3, mod.shape[1]) and mod.shape[1] % 8 == 0
    spec, f0, voiced, inside = split(x, 32)
    hop = mod.opts.hop_length
    for clip, m, v in zip(clips, inside, voiced):
        frames = int(m.sum())
        assert abs(frames - len(clip) / hop) <= 2             # the clip's own extent
        assert not bool(v[frames + 1:].any()) and v[2:frames - 2].float().mean() > 0.9
    # log-F0 normalised on the training clips' voiced frames: higher voices higher
    level = [float(f[v.bool()].mean()) for f, v in zip(f0, voiced)]
    assert np.argsort(level).tolist() == np.argsort([110, 140, 180, 220, 260, 120, 200, 240]).tolist()
    tone = intonation(f0, voiced, inside)
    # a steady tone has no intonation: under a fifth of a semitone away from the clip's
    # first and last two frames (where Harvest's window reaches past the clip)
    interior = voiced.bool().clone()
    for row, frames in zip(interior, inside.sum(-1).long().tolist()):
        row[:2] = False
        row[frames - 2:] = False
    assert float((tone * 0.1)[interior].abs().max()) * 12 / math.log(2) < 0.2


@pytest.fixture
def fitted():
    torch.manual_seed(0)
    mod = AudioModality(n_mels=32, width=16, hidden=32, private_dim=4)
    clips = speech_clips()
    mod.fit(clips)
    x = mod.preprocess(clips)
    encoder, decoder = mod.build_encoder(6), mod.build_decoder(6 + 4)
    return mod, x, encoder, decoder


def test_likelihood_rows_match_one_clip_at_a_time(fitted):
    """What does not depend on z is computed once per clip: the bound of a (subset, clip) row
    is the same whichever rows are scored together."""
    mod, x, encoder, decoder = fitted
    decoder.eval()
    h = torch.randn(3 * 8, 6)
    w = torch.randn(8, 4)
    rows = torch.arange(8).repeat(3)
    together = mod.log_likelihood_rows(decoder, h, x, rows, w)
    assert together.shape == (24,) and torch.isfinite(together).all()
    for k in (0, 5, 13, 22):
        alone = mod.log_likelihood_rows(decoder, h[k:k + 1], x[rows[k]:rows[k] + 1], torch.zeros(1, dtype=torch.long),
                                        w[rows[k]:rows[k] + 1])
        torch.testing.assert_close(together[k:k + 1], alone, rtol=1e-4, atol=1e-3)
    # z matters: another z gives another bound for the same clip
    other = mod.log_likelihood_rows(decoder, h.flip(0), x, rows, w)
    assert not torch.allclose(together, other)


def test_conversion_keeps_timing_voicing_and_intonation(fitted):
    mod, x, encoder, decoder = fitted
    decoder.eval()
    mu, _ = encoder(x)
    z, w_own = mu[:, :6], mu[:, 6:]
    w_other = torch.randn(8, 4) * 3
    own = mod.reconstruct(decoder, torch.cat([z, w_own], -1), x)
    moved = mod.reconstruct(decoder, torch.cat([z, w_other], -1), x)
    for out in (own, moved):
        assert out.shape == x.shape
        _, f0, voiced, inside = split(out, 32)
        assert torch.equal(inside, x[:, 34]) and torch.equal(voiced, x[:, 33])
        _, _, v, m = split(x, 32)
        # the output's log-F0 is the source's contour at another level and range: an exact
        # affine function of the source's intonation on every voiced frame
        tone = intonation(x[:, 32], v, m)
        for f, t, keep in zip(f0.detach(), tone, v.bool()):
            design = torch.stack([torch.ones_like(t[keep]), t[keep]], 1).double()
            fit = torch.linalg.lstsq(design, f[keep, None].double()).solution
            assert float(fit[1]) > 0
            torch.testing.assert_close((design @ fit)[:, 0].float(), f[keep], atol=1e-4, rtol=0)
    assert not torch.allclose(own[:, :32], moved[:, :32])        # the voice changed the spectrum
    waves = mod.waveforms(moved)
    lengths = [len(a.samples) for a in mod.to_values(moved)]
    hop = mod.opts.hop_length
    for clip, n, wave in zip(speech_clips(), lengths, waves):
        assert abs(n - len(clip)) <= 2 * hop                     # as long as the source
        assert float(wave[n:].abs().max()) == 0.0


def test_generation_from_z_alone_has_an_extent_and_plays(fitted):
    mod, x, encoder, decoder = fitted
    out = mod.generate(decoder, torch.randn(5, 6 + 4))
    assert out.shape == (5, 35, x.shape[-1])
    _, _, voiced, inside = split(out, 32)
    assert bool((inside[:, 0] == 1).all())                       # a clip starts at its first frame
    values = mod.to_values(out)
    assert all(a.sample_rate == SR and 0 < len(a.samples) <= mod.clip_samples for a in values)


def test_envelope_projection_and_warps():
    from polyvae.plugins.audio.speech_networks import envelope_projection, warp_bank

    p = envelope_projection(40, 12)
    torch.testing.assert_close(p @ p, p, atol=1e-5, rtol=1e-5)           # a projection
    assert abs(float(torch.trace(p)) - 12) < 1e-4                        # onto 12 dimensions
    smooth = torch.linspace(-1, 1, 40)                                   # slow: kept
    ripple = torch.tensor([(-1.0) ** k for k in range(40)])              # harmonic ripple: removed
    torch.testing.assert_close(p @ smooth, smooth, atol=0.05, rtol=0)
    assert float((p @ ripple).norm() / ripple.norm()) < 0.15
    bank = warp_bank(40, 0.0, 8000.0, 1.2, count=5)
    assert bank.shape == (5, 40, 40)
    torch.testing.assert_close(bank[2], torch.eye(40), atol=1e-6, rtol=0)   # ratio 1: unchanged
    peak = torch.zeros(40)
    peak[20] = 1.0
    assert int((bank[4] @ peak).argmax()) > 20 > int((bank[0] @ peak).argmax())   # formants move up / down


def test_the_pulse_train_is_the_sum_of_its_harmonics_under_nyquist():
    from polyvae.plugins.audio.spectrogram import pulse_train
    hz = torch.cat([torch.linspace(40, 500, 4000), torch.full((2000,), 100.0), torch.linspace(9000, 30, 200)])
    hz = torch.stack([hz, hz.flip(-1)])
    phase = 2 * math.pi * torch.cumsum(hz.double() / SR, dim=-1).remainder(1.0)
    expected = sum(torch.where(k * hz.double() < SR / 2, torch.cos(k * phase), torch.zeros_like(phase)) for k in range(1, 81))
    torch.testing.assert_close(pulse_train(hz, SR).double(), expected, atol=1e-3, rtol=0)
    # one period is 160 samples at 100 Hz: there the phase is 0 and the 79 harmonics under 8 kHz add up
    assert float(pulse_train(torch.full((1, 320), 100.0), SR)[0, 159]) == pytest.approx(79.0, abs=1e-4)


@pytest.mark.parametrize("renderer", ["excitation", "split"])
def test_excitation_rendering_keeps_the_pitch_contour(renderer):
    """The excitation renderer (and the split one, excitation below 600 Hz) imposes the decoded
    F0: a gliding tone's rendering has the glide."""
    mod = AudioModality(n_mels=64, renderer=renderer)
    mod.fit([glide(), harmonic(150, 1.0)])
    assert_follows_the_glide(mod.waveforms(mod.preprocess([glide()]))[0])


def test_conversions_render_with_their_own_renderer_and_keep_the_glide():
    """By default a conversion (what voice-morph writes) is rendered by the split renderer, at
    600 Hz with 0.6 of the low band, so the converted pitch contour is heard; everything else
    by Griffin-Lim."""
    from polyvae.core.errors import UsageError

    mod = AudioModality(n_mels=64)
    assert (mod.opts.renderer, mod.opts.conversion_renderer) == ("griffin-lim", "split")
    assert (mod.opts.split_hz, mod.opts.split_share) == (600.0, 0.6)
    mod.fit([glide(), harmonic(150, 1.0)])
    x = mod.preprocess([glide()])
    torch.manual_seed(0)
    converted = torch.from_numpy(mod.converted_values(x)[0].samples)
    torch.manual_seed(0)
    split_wave = mod.waveforms(x, "split")[0, :len(converted)].clamp(-1, 1)
    torch.testing.assert_close(converted, split_wave, atol=1e-4, rtol=0)
    plain = torch.from_numpy(mod.to_values(x)[0].samples)
    assert float((plain - converted).abs().max()) > 0.05               # Griffin-Lim's, not the same
    assert_follows_the_glide(converted)
    with pytest.raises(UsageError, match="conversion_renderer must be one of griffin-lim, excitation, split"):
        AudioModality(conversion_renderer="world")


def test_the_excitation_shaped_by_the_envelope_is_heard_at_its_own_pitch():
    """A magnitude decoded or matched from frames at another pitch (here a 130 Hz tone's) carries
    their harmonics: a 200 Hz pulse train shaped by it peaks where the two combs meet (390-400 Hz)
    and YIN hears about 400 Hz; shaped by its envelope (power averaged over 300 Hz, the split
    renderer's default) it is heard at 200 Hz."""
    mod = AudioModality(n_mels=64)
    assert mod.opts.split_envelope_hz == 300.0
    t = np.arange(SR) / SR
    tone = (0.3 * sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 40))).astype(np.float32)
    mod.fit([tone])                                                  # a clip of one second
    feats = mod.features
    linear = feats.magnitude(torch.from_numpy(tone)[None])
    hz = torch.full((1, linear.shape[-1]), 200.0)
    sounding = torch.ones_like(hz, dtype=torch.bool)
    heard = {}
    for envelope in (0.0, 300.0):
        f0, voiced = yin(feats.excitation(linear, hz, sounding, envelope_hz=envelope), SR, 160)
        heard[envelope] = float(f0[0][voiced[0]].median())
    assert heard[0.0] > 350.0 and heard[300.0] == pytest.approx(200.0, abs=2.0)
    # the envelope: a flat magnitude stays flat, a harmonic comb 130 Hz apart flattens, the power is about kept
    flat = torch.ones(1, feats.config.n_freqs, 3)
    torch.testing.assert_close(feats.smoothed_along_frequency(flat, 300.0), flat)
    whole = feats.smoothed_along_frequency(linear, 300.0)
    comb, smooth = linear[0, 5:60].mean(-1), whole[0, 5:60].mean(-1)
    assert float(smooth.std() / smooth.mean()) < 0.5 * float(comb.std() / comb.mean())
    assert float(whole.pow(2).sum() / linear.pow(2).sum()) == pytest.approx(1.0, abs=0.15)


def test_split_rendering_is_griffin_lim_above_the_cutoff_and_excitation_below():
    """excitation_below joins the two renderings in the STFT: away from the cross-fade, each band's
    magnitude is the one of the renderer it comes from."""
    mod = AudioModality(n_mels=64)
    t = np.arange(SR) / SR
    phase = 2 * np.pi * np.cumsum(140 + 40 * t) / SR
    voice = (0.3 * sum(np.sin(k * phase) / k for k in range(1, 30))).astype(np.float32)
    mod.fit([voice, harmonic(150, 1.0)])
    x = mod.preprocess([voice])
    spec, f0, voiced, inside = split(x, 64)
    log_mel = mod._normalizer().invert(spec)
    linear = mod.features.mel_to_linear(log_mel.exp())
    hz = (f0 * mod.pitch_stats.std + mod.pitch_stats.mean).exp()
    sounding = (voiced > 0.5) & (inside > 0.5)
    feats = mod.features
    waves = {"split": feats.excitation_below(linear, hz, sounding, 600.0),
             "0.6": feats.excitation_below(linear, hz, sounding, 600.0, share=0.6),
             "0": feats.excitation_below(linear, hz, sounding, 600.0, share=0.0),
             "excitation": feats.excitation(linear, hz, sounding), "griffin-lim": feats.griffin_lim(linear)}
    bands = {name: feats.magnitude(wave) for name, wave in waves.items()}
    bin_hz = SR / feats.config.n_fft
    low, high = slice(1, int(450 / bin_hz)), slice(int(800 / bin_hz), None)

    def gap(a, b, band):
        return float((bands[a][:, band] - bands[b][:, band]).norm() / bands[b][:, band].norm())
    assert gap("split", "griffin-lim", high) < 0.05 < 0.2 < gap("split", "griffin-lim", low)
    assert gap("split", "excitation", low) < 0.05 < 0.2 < gap("split", "excitation", high)
    # a share of the low band: each bin there is that share of the excitation's STFT and the rest
    # Griffin-Lim's (share 0: Griffin-Lim alone)
    window = feats._tables(linear.device)[0]
    stft = {name: feats._stft(wave, window) for name, wave in waves.items()}
    mixed = stft["griffin-lim"] + 0.6 * (stft["excitation"] - stft["griffin-lim"])

    def off(a, b, band):
        return float((a[..., band] - b[..., band]).abs().norm() / b[..., band].abs().norm())
    assert off(stft["0.6"], mixed, low) < 0.05 and off(stft["0.6"], stft["griffin-lim"], high) < 0.05
    assert off(stft["0"], stft["griffin-lim"], slice(1, None)) < 0.05
    assert min(off(stft["0.6"], stft[k], low) for k in ("excitation", "griffin-lim")) > 0.2


def test_pitch_track_in_chunks_equals_all_at_once(monkeypatch):
    import polyvae.plugins.audio.speech as speech
    waves = torch.from_numpy(np.stack([harmonic(f, 0.3) for f in (110.0, 180.0, 260.0, 330.0, 95.0)]))
    whole = speech.pitch_track(waves, SR, 160, 31)
    monkeypatch.setattr(speech, "PITCH_FRAMES_PER_CHUNK", 62)          # two clips at a time
    chunked = speech.pitch_track(waves, SR, 160, 31)
    torch.testing.assert_close(chunked[0], whole[0])
    assert torch.equal(chunked[1], whole[1])
    assert whole[1].float().mean() > 0.8


def test_spectral_profile_is_set_exactly_on_the_frames_inside_the_clips(fitted):
    """with_profile moves the per-bin mean and spread of clips taken together to the ones asked
    for, on the frames inside them; pitch, voicing, extent and the padding after each clip stay
    as they were."""
    mod, x, _, _ = fitted
    low, high = x[:4], x[4:]
    target = mod.spectral_profile(high)
    assert target.shape == (64,)
    moved = mod.with_profile(low, target)
    spec, _, _, inside = split(low, 32)
    ratio = target[32:] / mod.spectral_profile(low)[32:]
    lo, hi = SPREAD_RATIO
    if bool(((ratio > lo) & (ratio < hi)).all()):          # within the bounds: both set exactly
        assert torch.allclose(mod.spectral_profile(moved), target, atol=1e-4)
    else:
        assert torch.allclose(mod.spectral_profile(moved)[:32], target[:32], atol=1e-4)
    assert torch.equal(moved[:, 32:], low[:, 32:])
    moved_spec = moved[:, :32]
    assert torch.equal(moved_spec.transpose(1, 2)[inside < 0.5], spec.transpose(1, 2)[inside < 0.5])
    # by hand: the mean and (population) spread over every inside frame of the four clips
    frames = spec.transpose(1, 2)[inside > 0.5]
    profile = mod.spectral_profile(low)
    assert torch.allclose(profile[:32], frames.mean(0), atol=1e-6)
    assert torch.allclose(profile[32:], frames.std(0, unbiased=False), atol=1e-5)


def test_with_profile_scales_deviations_by_the_bounded_spread_ratio(fitted):
    """Worked numbers: each bin's deviations from its mean are scaled by target spread / own
    spread, at most 1.25 and at least 1/1.25, then the mean is set; a mean-only profile (n_mels
    values, tables saved before spreads) moves the mean by one offset per bin."""
    assert SPREAD_RATIO == (0.8, 1.25)
    mod, x, _, _ = fitted
    clips = x[:4]
    own = mod.spectral_profile(clips)
    mean, spread = own[:32], own[32:]
    wanted = torch.cat([mean + 1.0, spread * 1.1])
    wanted[32] = spread[0] * 10.0                               # bin 0 asks for 10x: bounded to 1.25x
    wanted[33] = spread[1] * 0.1                                # bin 1 asks for 0.1x: bounded to 0.8x
    moved = mod.with_profile(clips, wanted)
    spec, _, _, inside = split(clips, 32)
    frames = spec.transpose(1, 2)[inside > 0.5]
    out = moved[:, :32].transpose(1, 2)[inside > 0.5]
    factor = torch.full((32,), 1.1)
    factor[0], factor[1] = 1.25, 0.8
    expected = (frames - mean) * factor + mean + 1.0
    assert torch.allclose(out, expected, atol=1e-4)
    # the old, mean-only profile: one offset per bin, frame-to-frame differences untouched
    shifted = mod.with_profile(clips, mean + 0.25)
    step = (shifted[:, :32] - clips[:, :32]).transpose(1, 2)[inside > 0.5]
    assert torch.allclose(step, torch.full_like(step, 0.25), atol=1e-5)


def test_the_clip_model_has_no_spectral_profile():
    mod = AudioModality(model="clip", n_mels=32, width=16, hidden=32)
    clips = [np.pad(c, (0, SR - len(c))) if len(c) < SR else c[:SR] for c in speech_clips()]
    mod.fit(clips)
    x = mod.preprocess(clips)
    assert mod.spectral_profile(x) is None
    assert mod.with_profile(x, torch.zeros(32)) is x


def test_stretched_lays_each_clip_over_the_window_and_unstretched_undoes_it():
    from polyvae.plugins.audio.speech import stretched, unstretched
    x = torch.arange(20.0).view(1, 1, 20).repeat(2, 1, 1)          # frame t holds t
    length = torch.tensor([10, 20])
    s = stretched(x, length)
    # a 10-frame clip over 20 frames: frame j reads position j * 9 / 19
    torch.testing.assert_close(s[0, 0, :3], torch.tensor([0.0, 9 / 19, 18 / 19]))
    assert float(s[0, 0, -1]) == 9.0 and float(s[1, 0, -1]) == 19.0
    torch.testing.assert_close(s[1], x[1])                          # a clip as long as the window: itself
    back = unstretched(s, length)
    torch.testing.assert_close(back[0, 0, :10], torch.arange(10.0))
    assert not bool(back[0, 0, 10:].any())                          # nothing after the clip's end
    torch.testing.assert_close(back[1], x[1])


def test_the_clip_head_is_fitted_to_stretched_clips_and_decodes_their_length(fitted):
    mod, x, encoder, decoder = fitted
    assert mod.opts.clip_time == "stretched" and decoder.shape.stretch
    n, t = 32, x.shape[-1]
    target = decoder.head_target(x)
    inside = split(x, n)[3]
    length = inside.sum(-1)
    # the last channel: the clip's length as a share of the window, on every frame
    torch.testing.assert_close(target[:, n + 2], (length / t)[:, None].expand(-1, t))
    # the clip's last frame lands on the window's last frame
    last = length.long() - 1
    torch.testing.assert_close(target[:, :n, -1], x[torch.arange(8), :n, last])
    # decoding from z: the length channel's mean sets the extent (a head whose last layer puts
    # out only its bias, and no voice level, decodes a constant share)
    decoder.eval()
    last_layer = decoder.head.deconv[-1]
    decoder.head.level = None
    with torch.no_grad():
        last_layer.weight.zero_()
        last_layer.bias.zero_()
        for share in (0.25, 0.5, 0.75, 1.0):
            last_layer.bias[n + 2] = share
            out = decoder(torch.zeros(1, 6 + 4))
            assert int(out[0, n + 2].sum()) == round(share * t)


def test_speech_start_is_the_lead_in_before_the_first_voiced_frame():
    from polyvae.plugins.audio.speech import LEAD_IN, from_speech_start, speech_start
    t = 40
    voiced = torch.zeros(3, t)
    voiced[0, 30:35] = 1                          # speech late in the window
    voiced[1, 5:9] = 1                            # sooner than the lead-in: kept from the start
    inside = torch.ones(3, t)
    inside[:, 38:] = 0
    assert speech_start(voiced, inside).tolist() == [30 - LEAD_IN, 0, 0]    # nothing voiced: 0
    n = 2                                                          # 2 "mel" bins, then f0, voiced, inside
    x = torch.cat([torch.arange(float(t)).expand(3, 2, t), torch.zeros(3, 1, t), voiced[:, None], inside[:, None]], 1)
    moved = from_speech_start(x, n)
    start = 30 - LEAD_IN
    torch.testing.assert_close(moved[0, 0, :t - start], torch.arange(float(start), t))
    assert not bool(moved[0, :, t - start:].any())                # the freed frames are outside the clip
    assert int(moved[0, n + 2].sum()) == 38 - start and bool(moved[0, n + 1, LEAD_IN])
    torch.testing.assert_close(moved[1:], x[1:])


def test_leading_silence_does_not_move_the_shared_code():
    """Two renditions of one sound, after 0.2 s and after 0.6 s of silence, give the shared
    expert the same clip (speech start); read from the file's start they differ."""
    tone = harmonic(150.0, 0.5)
    clips = [np.concatenate([np.zeros(int(SR * lead), np.float32), tone]) for lead in (0.2, 0.6)]
    codes = {}
    for start in ("speech", "file"):
        torch.manual_seed(0)
        mod = AudioModality(n_mels=32, width=16, hidden=32, private_dim=4, clip_start=start, pitch_tracker="yin")
        mod.fit(speech_clips() + clips)
        encoder = mod.build_encoder(6).eval()
        with torch.no_grad():
            codes[start] = encoder(mod.preprocess(clips))[0][:, :6]
    moved = {k: float((c[0] - c[1]).abs().max()) for k, c in codes.items()}
    assert moved["speech"] < 1e-4 and moved["file"] > 1e-3          # (an untrained expert's codes are small)


def test_a_speech_state_saved_before_clip_time_loads_absolute():
    mod = AudioModality(n_mels=32, width=16, hidden=32)
    mod.fit(speech_clips())
    state = mod.state()
    del state["options"]["clip_time"]
    del state["options"]["clip_start"]
    old = AudioModality(n_mels=32, width=16, hidden=32)
    old.load_state(state)
    assert old.opts.clip_time == "absolute" and not old.speech_shape().stretch
    assert old.opts.clip_start == "file" and not old.speech_shape().from_speech
    x = old.preprocess(speech_clips()[:2])
    assert old.build_decoder(6).head_target(x) is x               # fitted to the clips as they are
