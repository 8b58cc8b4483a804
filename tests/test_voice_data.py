"""``polyvae data voices``: long recordings in a folder per speaker become utterances cut
where there is speech, at one loudness, and a manifest training reads."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import soundfile as sf

from clihelp import polyvae

from polyvae.pipelines.demo_data import SINGERS, sing_digit
from polyvae.pipelines.voice.slicing import SlicingConfig, frame_energy, normalise_loudness, slice_voices

RATE = 16000


def long_recording(singer, digits, gaps, rng, level=0.3):
    """Sung digits of ``singer`` separated by ``gaps`` seconds of faint noise; returns the
    signal and the true (start, end) of each digit in seconds."""
    parts, spans, t = [], [], 0.0
    for digit, gap in zip(digits, gaps):
        noise = rng.normal(0, 3e-4, int(gap * RATE)).astype(np.float32)
        parts.append(noise)
        t += gap
        clip = sing_digit(singer, digit, rng, RATE, 1.0) * level
        parts.append(clip)
        spans.append((t, t + 1.0))
        t += 1.0
    parts.append(rng.normal(0, 3e-4, RATE // 2).astype(np.float32))
    return np.concatenate(parts), spans


@pytest.fixture
def recordings(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "recordings"
    truth = {}
    for singer in SINGERS[:2]:
        folder = root / singer.name / "session1"
        folder.mkdir(parents=True)
        wave, spans = long_recording(singer, [1, 4, 7, 2, 9, 0], [0.7, 1.2, 0.9, 1.5, 0.8, 1.1], rng,
                                     level=0.1 if singer is SINGERS[0] else 0.6)
        sf.write(folder / "long.flac", wave, RATE)          # one long file per speaker
        truth[singer.name] = spans
    # a short single-utterance file with a transcript, at another rate, in stereo
    one = sing_digit(SINGERS[2], 5, rng, 44100, 1.0) * 0.5
    (root / SINGERS[2].name).mkdir()
    sf.write(root / SINGERS[2].name / "five.wav", np.stack([one, one], axis=1), 44100)
    (root / SINGERS[2].name / "five.txt").write_text("five\n")
    (root / SINGERS[2].name / "broken.wav").write_bytes(b"RIFF not really a wav")
    return root, truth


def test_long_recordings_become_utterances_at_the_speech(recordings, tmp_path):
    root, truth = recordings
    report = slice_voices(root, tmp_path / "out", SlicingConfig(min_seconds=0.5, max_seconds=5.0))
    got = {}
    for u in report.utterances:
        got.setdefault(u.speaker, []).append((u.start, u.end))
    for name, spans in truth.items():
        assert len(got[name]) == len(spans), (name, got[name])
        for (a, b), (ta, tb) in zip(got[name], spans):
            # inside the sung second plus the 0.15 s of context (a phrase may end early),
            # and covering most of it
            assert ta - 0.15 - 0.1 <= a and b <= tb + 0.15 + 0.1, ((a, b), (ta, tb))
            assert min(b, tb) - max(a, ta) >= 0.7, ((a, b), (ta, tb))
    # every utterance at the target loudness, whatever the level it was recorded at
    for u in report.utterances:
        wave, rate = sf.read(u.path, dtype="float32")
        level = frame_energy(wave, rate)
        active = level > level.max() - 30
        rms = 10 * math.log10(np.mean(10 ** (level[active] / 10)))
        assert abs(rms - (-23.0)) < 1.0 and np.abs(wave).max() < 10 ** (-1 / 20) + 1e-3
    # the manifest trains: audio paths relative to it, speakers, and the transcript
    with open(report.manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"audio", "speaker", "text", "source", "start", "end"} <= set(rows[0])
    assert all((report.manifest.parent / r["audio"]).is_file() for r in rows)
    five = [r for r in rows if r["speaker"] == SINGERS[2].name]
    assert len(five) == 1 and five[0]["text"] == "five"
    assert sf.info(report.manifest.parent / five[0]["audio"]).channels == 1
    assert any("broken.wav" in s for s in report.skipped)
    assert report.warnings() and all("only" in w for w in report.warnings())


def test_a_stretch_longer_than_the_maximum_is_split_at_a_quiet_moment(tmp_path):
    rng = np.random.default_rng(5)
    singer = SINGERS[4]
    wave = np.concatenate([sing_digit(singer, d, rng, RATE, 1.0) * 0.5 for d in range(6)])   # 6 s, no gap
    (tmp_path / "r" / "x").mkdir(parents=True)
    sf.write(tmp_path / "r" / "x" / "run.wav", wave, RATE)
    report = slice_voices(tmp_path / "r", tmp_path / "o", SlicingConfig(min_seconds=0.5, max_seconds=2.5))
    lengths = [u.end - u.start for u in report.utterances]
    assert len(lengths) >= 3 and max(lengths) <= 2.5 + 0.31


def test_loudness_keeps_the_peak_under_the_ceiling():
    x = np.zeros(16000, np.float32)
    x[8000] = 1.0                                   # a click: RMS target would clip it
    x[:4000] = 0.01 * np.sin(np.arange(4000) / 5)
    y = normalise_loudness(x, 16000, -10.0)
    assert np.abs(y).max() <= 10 ** (-1 / 20) + 1e-6


def test_cli_and_its_errors(recordings, tmp_path):
    root, _ = recordings
    r = polyvae("data", "voices", root, "--out", tmp_path / "out", "--min-seconds", "0.5")
    assert r.code == 0, r.err
    assert r.out.strip() == str(tmp_path / "out" / "manifest.csv")
    assert f"{SINGERS[0].name}: 6 utterance(s)" in r.err and "skipped:" in r.err and "Warning:" in r.err
    flat = tmp_path / "flat"
    flat.mkdir()
    sf.write(flat / "a.wav", np.zeros(100, np.float32), RATE)
    r = polyvae("data", "voices", flat, "--out", tmp_path / "o2")
    assert r.code == 2 and "need a folder per speaker" in r.err
    r = polyvae("data", "voices", root, "--out", tmp_path / "o3", "--min-seconds", "20")
    assert r.code == 2 and "--min-seconds" in r.err
