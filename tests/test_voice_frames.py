"""Frame banks (kNN-VC's matching set): nearest frames by worked numbers, the speech model's
frame codes and frames, the bank stored beside singers.json and refused when stale."""
from __future__ import annotations

import pytest
import torch

from polyvae.core import sound
from polyvae.core.sound import FrameBank
from polyvae.pipelines.voice.singers import FRAMES_FILE, SingerEntry, SingerTable, read_table, write_table
from polyvae.plugins.audio.speech import split

from test_audio_speech import fitted, speech_clips  # noqa: F401  (the fixture and its clips)


def test_nearest_averages_the_k_frames_with_the_nearest_keys(monkeypatch):
    bank = FrameBank(keys=torch.tensor([[0.0], [1.0], [10.0], [11.0]]),
                     frames=torch.tensor([[0.0, 1.0], [2.0, 3.0], [100.0, 0.0], [200.0, 0.0]]))
    queries = torch.tensor([[[0.4], [10.6], [-5.0]]])                     # (1, 3, K=1)
    torch.testing.assert_close(bank.nearest(queries, k=1), torch.tensor([[[0.0, 1.0], [200.0, 0.0], [0.0, 1.0]]]))
    torch.testing.assert_close(bank.nearest(queries, k=2), torch.tensor([[[1.0, 2.0], [150.0, 0.0], [1.0, 2.0]]]))
    assert bank.nearest(queries, k=99).shape == (1, 3, 2)              # k is bounded by the bank
    with pytest.raises(ValueError, match="width 2"):
        bank.nearest(torch.zeros(1, 3, 2))
    monkeypatch.setattr(sound, "QUERY_CHUNK", 2)                        # searched in chunks: same answer
    torch.testing.assert_close(bank.nearest(queries, k=2), torch.tensor([[[1.0, 2.0], [150.0, 0.0], [1.0, 2.0]]]))


def test_a_frame_is_matched_with_the_codes_around_it():
    from polyvae.pipelines.voice.frames import with_context
    codes = torch.arange(1.0, 6.0).view(1, 5, 1)                       # one clip, 5 frames, K = 1
    keys = with_context(codes, span=2)
    assert keys.shape == (1, 5, 3)
    assert keys[0].tolist() == [[0, 1, 3], [0, 2, 4], [1, 3, 5], [2, 4, 0], [3, 5, 0]]
    assert torch.equal(with_context(codes, span=0), codes)


def test_a_bank_keeps_the_frames_inside_the_clips_evenly_thinned():
    codes = torch.arange(12.0).view(2, 6, 1)
    frames = torch.arange(12.0).view(2, 6, 1) * 10
    inside = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.float32)
    bank = FrameBank.of(codes, frames, inside)
    assert bank.keys[:, 0].tolist() == [0, 1, 2, 3, 6, 7, 8]
    torch.testing.assert_close(bank.frames, bank.keys * 10)
    thin = FrameBank.of(codes, frames, inside, limit=3)
    assert thin.keys[:, 0].tolist() == [0, 3, 8]                        # first, middle, last
    with pytest.raises(ValueError):
        FrameBank(torch.zeros(3, 2), torch.zeros(4, 2))


def test_speech_frame_codes_and_frames_line_up_with_the_clips(fitted):  # noqa: F811
    mod, x, _, decoder = fitted
    decoder.eval()
    with torch.no_grad():
        codes = mod.frame_codes(decoder, x)
    spec, _, _, inside = split(x, 32)
    assert codes.shape == (x.shape[0], x.shape[-1], mod.opts.content_dim)
    assert float(codes[inside < 0.5].abs().max()) == 0.0                # nothing outside the clips
    with torch.no_grad():                                               # the posterior's means, at the frame rate
        mu, _ = decoder.posterior(spec, inside)
    stride = mod.opts.stride
    torch.testing.assert_close(codes[0, ::stride][inside[0, ::stride] > 0.5],
                               mu[0].transpose(0, 1)[inside[0, ::stride] > 0.5])
    frames, mask = mod.spectral_frames(x)
    assert torch.equal(frames, spec.transpose(1, 2)) and torch.equal(mask, inside)


def test_with_spectral_frames_moves_only_the_spectrum_inside_the_clips(fitted):  # noqa: F811
    mod, x, _, _ = fitted
    goal = torch.full((x.shape[0], x.shape[-1], 32), 2.0)
    moved = mod.with_spectral_frames(x, goal, 0.25)
    spec, _, _, inside = split(x, 32)
    new = moved[:, :32].transpose(1, 2)
    old = spec.transpose(1, 2)
    torch.testing.assert_close(new[inside > 0.5], old[inside > 0.5] + 0.25 * (2.0 - old[inside > 0.5]))
    assert torch.equal(new[inside < 0.5], old[inside < 0.5])
    assert torch.equal(moved[:, 32:], x[:, 32:])                        # pitch, voicing, extent kept
    assert torch.equal(mod.with_spectral_frames(x, goal, 0.0), x)


def _table(weights: str) -> SingerTable:
    g = torch.Generator().manual_seed(0)
    table = SingerTable("audio", torch.ones(3), weights=weights)
    for k, name in enumerate(["low", "high"]):
        bank = FrameBank(torch.randn(5 + k, 4, generator=g), torch.randn(5 + k, 8, generator=g))
        table.singers[name] = SingerEntry(torch.randn(3, generator=g), 10, frames=bank)
    table.singers["quiet"] = SingerEntry(torch.randn(3, generator=g), 10)          # no bank
    return table


def test_frame_banks_are_stored_beside_singers_json_and_refused_when_stale(tmp_path):
    table = _table("abc")
    write_table(tmp_path, table)
    assert (tmp_path / FRAMES_FILE).exists()
    again = read_table(tmp_path)
    for name in ("low", "high"):                                        # float16 on disk
        torch.testing.assert_close(again.frames(name).keys.float(), table.frames(name).keys, atol=2e-3, rtol=1e-3)
        torch.testing.assert_close(again.frames(name).frames.float(), table.frames(name).frames,
                                   atol=2e-3, rtol=1e-3)
    assert again.frames("quiet") is None
    write_table(tmp_path / "other", _table("xyz"))                       # banks made with other weights
    (tmp_path / FRAMES_FILE).write_bytes((tmp_path / "other" / FRAMES_FILE).read_bytes())
    assert read_table(tmp_path) is None                                 # so the table is rebuilt
    (tmp_path / FRAMES_FILE).unlink()
    assert read_table(tmp_path) is None
