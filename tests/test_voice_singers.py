"""Singer embeddings: aggregation by hand, the metric, singers.json, path endpoints, windows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polyvae.core.errors import UsageError
from polyvae.plugins.audio.modality import AudioModality
from polyvae.pipelines.interpolation import alphas
from polyvae.pipelines.voice.encoding import clip_windows
from polyvae.pipelines.voice.features import VoiceFeatures
from polyvae.pipelines.voice.interpolate import spearman, voice_path
from polyvae.pipelines.voice.morph import morph_latents
from polyvae.pipelines.voice.singers import SingerEntry, SingerTable, aggregate, read_table, write_table


def test_aggregate_by_hand():
    latents = torch.tensor([[1.0, 0.0], [3.0, 2.0], [10.0, 4.0], [12.0, 8.0], [50.0, 50.0]])
    groups, scale = aggregate(latents, ["a", "a", "b", "b", ""])          # the unnamed row is ignored
    assert torch.equal(groups["a"][0], torch.tensor([2.0, 1.0])) and groups["a"][1] == 2
    assert torch.equal(groups["b"][0], torch.tensor([11.0, 6.0])) and groups["b"][1] == 2
    # pooled within-singer variance: sum of squared deviations / (clips - singers)
    # dim 0: (1+1+1+1)/2 = 2; dim 1: (1+1+4+4)/2 = 5
    torch.testing.assert_close(scale, torch.tensor([math.sqrt(2.0), math.sqrt(5.0)]))


def test_aggregate_needs_speakers():
    with pytest.raises(UsageError, match="speaker"):
        aggregate(torch.zeros(3, 2), ["", "", ""])
    with pytest.raises(ValueError):
        aggregate(torch.zeros(3, 2), ["a", "b"])


def _table() -> SingerTable:
    table = SingerTable("audio", torch.tensor([1.0, 2.0]))
    table.singers["low"] = SingerEntry(torch.tensor([0.0, 0.0]), 3, VoiceFeatures(100, 5, 900, 20, 5, 40, 0.8))
    table.singers["high"] = SingerEntry(torch.tensor([3.0, 4.0]), 4)
    table.singers["mid"] = SingerEntry(torch.tensor([1.0 / 3.0, 0.1234567]), 5)
    return table


def test_metric_ranking_and_similarity():
    table = _table()
    # scaled difference of [3, 4] from 0 with scale [1, 2] is [3, 2]: rms = sqrt((9 + 4) / 2)
    d = table.distance(torch.tensor([3.0, 4.0]), table.embedding("low"))
    assert float(d) == pytest.approx(math.sqrt(6.5))
    ranking = table.rank(torch.tensor([2.9, 3.9]))
    assert [r["singer"] for r in ranking] == ["high", "mid", "low"]
    assert ranking[0]["similarity"] == pytest.approx(math.exp(-0.5 * ranking[0]["distance"] ** 2))
    assert table.rank(torch.tensor([3.0, 4.0]))[0] == {"singer": "high", "distance": 0.0, "similarity": 1.0,
                                                       "percentile": None, "same_voice": None}
    with pytest.raises(UsageError, match="no singer 'nobody'.*low, high, mid"):
        table.embedding("nobody")


def test_singers_json_round_trip_is_exact(tmp_path):
    table = _table()
    write_table(tmp_path, table)
    again = read_table(tmp_path)
    assert again.names == table.names and torch.equal(again.scale, table.scale)
    for name in table.names:
        assert torch.equal(again.embedding(name), table.embedding(name))        # bit for bit
        assert again.singers[name].clips == table.singers[name].clips
    assert again.singers["low"].features == table.singers["low"].features
    (tmp_path / "singers.json").write_text("{not json")
    assert read_table(tmp_path) is None                                       # rebuilt on next use


@pytest.mark.parametrize("kind", ["linear", "spherical"])
def test_path_endpoints_are_the_voice_latents_exactly(kind):
    table = _table()
    a, b = table.embedding("mid"), table.embedding("high")
    path = voice_path(table, a, b, alphas(7), kind)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    if kind == "spherical":
        return
    # distance to A grows and to B shrinks along the line itself
    to_a = table.distance(path, a.view(1, -1)).tolist()
    to_b = table.distance(path, b.view(1, -1)).tolist()
    assert to_a == sorted(to_a) and to_b == sorted(to_b, reverse=True)
    assert spearman(alphas(7).tolist(), to_a) == 1.0 and spearman(alphas(7).tolist(), to_b) == -1.0


def test_spherical_path_keeps_its_radius_around_the_average_singer():
    table = SingerTable("audio", torch.tensor([1.0, 1.0]))
    table.singers["x"] = SingerEntry(torch.tensor([1.0, 0.0]), 1)
    table.singers["y"] = SingerEntry(torch.tensor([-1.0, 0.0]), 1)
    table.singers["z"] = SingerEntry(torch.tensor([0.0, 2.0]), 1)              # centre: (0, 2/3)
    centre = table.matrix().mean(0)
    path = voice_path(table, table.embedding("x"), table.embedding("z"), alphas(5), "spherical")
    radii = (path - centre).norm(dim=1)
    torch.testing.assert_close(radii, torch.linspace(float(radii[0]), float(radii[-1]), 5))


def test_morph_latents_endpoints_and_midpoint():
    w = torch.tensor([[0.0, 2.0], [4.0, -2.0]])
    target = torch.tensor([1.0, 1.0])
    assert torch.equal(morph_latents(w, target, 0.0), w)
    assert torch.equal(morph_latents(w, target, 1.0), target.expand(2, 2))
    assert torch.equal(morph_latents(w, target, 0.5), torch.tensor([[0.5, 1.5], [2.5, -0.5]]))
    # past the target: the difference from the recording's voice exaggerated
    assert torch.equal(morph_latents(w, target, 1.5), torch.tensor([[1.5, 0.5], [-0.5, 2.5]]))


def test_clip_windows_cut_pad_and_drop_silence():
    size = 100
    loud = np.sin(np.arange(size) / 3.0).astype(np.float32)
    wave = np.concatenate([0.5 * loud, np.zeros(size, np.float32), loud, 0.5 * loud[:40]])
    windows, starts = clip_windows(wave, size, AudioModality().as_clip)   # as the run's clips are read
    assert starts == [0, 200, 300]                   # the silent window is dropped
    assert [w.shape for w in windows] == [(size,), (size,), (40,)]   # the short tail stays short
    assert all(np.abs(w).max() == pytest.approx(0.95) for w in windows)
    windows, starts = clip_windows(wave[:310], size)    # a 10-sample tail is too short to keep
    assert starts == [0, 200]


def test_equal_error_threshold_worked_numbers():
    from polyvae.pipelines.voice.calibration import equal_error_threshold

    # apart: threshold halfway across the gap, no error
    assert equal_error_threshold(np.array([0.5, 1.0]), np.array([2.0, 3.0])) == (1.5, 0.0)
    # overlapping: genuine 1, 2, 3, 4 and impostor 2.5, 3.5, 4.5, 5.5 cross between 3 and 3.5:
    # below 3.25 one genuine of four (4) is rejected and one impostor of four (2.5) accepted
    t, eer = equal_error_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.5, 3.5, 4.5, 5.5]))
    assert t == pytest.approx(3.25) and eer == pytest.approx(0.25)


def test_calibration_percentiles_and_evidence():
    from polyvae.pipelines.voice.calibration import calibrate
    from polyvae.pipelines.voice.match import weigh_evidence

    gen = torch.Generator().manual_seed(0)
    centres = {"a": torch.tensor([0.0, 0.0]), "b": torch.tensor([6.0, 0.0]), "c": torch.tensor([0.0, 6.0])}
    latents, speakers = [], []
    for name, c in centres.items():
        latents.append(c + torch.randn(30, 2, generator=gen))
        speakers += [name] * 30
    latents = torch.cat(latents)
    groups, scale = aggregate(latents, speakers)
    table = SingerTable("audio", scale, {n: SingerEntry(m, k) for n, (m, k) in groups.items()})
    cal = calibrate(latents, speakers, groups, table.distance)
    assert cal.eer < 0.02 and 1.0 < cal.threshold < 3.5
    # a voice at a's centre is closer to a than every other speaker's clip is
    assert cal.percentile("a", float(table.distance(centres["a"], groups["a"][0]))) == 100.0
    # one between a and b is not enough evidence for either, a clear one is
    clear = weigh_evidence(table, centres["a"].view(1, 2) + 0.1, voiced_seconds=3.0)
    assert clear.enough and clear.confidence > 0.95
    between = weigh_evidence(table, torch.tensor([[3.0, 0.0]]), voiced_seconds=3.0)
    assert not between.enough and "within this recording's noise" in between.reason
    short = weigh_evidence(table, centres["a"].view(1, 2), voiced_seconds=0.4)
    assert not short.enough and "0.4 s of voiced sound" in short.reason
    # many windows of the same in-between voice are still ambiguous only if they disagree
    assert weigh_evidence(table, torch.tensor([[2.0, 0.0]] * 25), voiced_seconds=9.0).enough
