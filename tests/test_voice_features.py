"""Voice features recover what the demo synthesiser put in; differences read as plain sentences."""
from __future__ import annotations

import math

import numpy as np
import pytest

from polyvae.pipelines.demo_data.singing import sing_digit, singer_by_name
from polyvae.pipelines.voice.features import VoiceFeatures, measure
from polyvae.pipelines.voice.match import describe_differences

SR = 16000


def sung(name: str, digit: int = 0, seed: int = 0) -> np.ndarray:
    return sing_digit(singer_by_name(name), digit, np.random.default_rng(seed))


@pytest.mark.parametrize("name", ["bass_boris", "soprano_sofia"])
def test_median_pitch_is_the_singers_tonic(name):
    """Digit 0 holds the tonic (tuned within 0.3 semitones); digit 9 leaps an octave."""
    monotone = measure(sung(name, 0), SR)
    semitones = 12 * math.log2(monotone.median_pitch_hz / singer_by_name(name).base_hz)
    assert abs(semitones) < 0.6, semitones
    assert monotone.pitch_range_semitones < 2.0
    assert measure(sung(name, 9), SR).pitch_range_semitones > 10.0


@pytest.mark.parametrize("name", ["tenor_tariq", "bass_boris"])
def test_vibrato_rate_and_depth(name):
    singer = singer_by_name(name)
    f = measure(sung(name, 0, seed=1), SR)
    assert abs(f.vibrato_rate_hz - singer.vibrato_hz) < 0.8, f
    assert 0.4 * singer.vibrato_cents < f.vibrato_depth_cents < 1.5 * singer.vibrato_cents, f


@pytest.mark.parametrize("name", ["child_kai", "rough_rex"])
def test_no_vibrato_where_none_was_sung(name):
    """rough_rex has strong jitter (pitch noise): noise is not vibrato."""
    f = measure(sung(name, 0), SR)
    assert f.vibrato_rate_hz == 0.0 and f.vibrato_depth_cents == 0.0


def test_breathy_voice_has_a_lower_harmonics_to_noise_ratio_and_small_tract_is_brighter():
    breathy, clear = measure(sung("alto_alma"), SR), measure(sung("tenor_tariq"), SR)
    assert breathy.hnr_db < clear.hnr_db - 5.0, (breathy.hnr_db, clear.hnr_db)
    assert measure(sung("child_kai"), SR).brightness_hz > 2 * measure(sung("bass_boris"), SR).brightness_hz


def test_silence_has_no_pitch_and_does_not_crash():
    f = measure(np.zeros(SR, dtype=np.float32), SR)
    assert math.isnan(f.median_pitch_hz) and f.voiced_fraction == 0.0


def test_feature_median_over_clips_and_json_round_trip():
    a = VoiceFeatures(100.0, 5.0, 1000.0, 20.0, 5.0, 40.0, 0.8)
    b = VoiceFeatures(200.0, 7.0, 3000.0, float("nan"), 0.0, 0.0, 0.6)
    c = VoiceFeatures(400.0, 9.0, 2000.0, 10.0, 6.0, 50.0, 0.7)
    median = VoiceFeatures.median_of([a, b, c])
    assert median.median_pitch_hz == 200.0 and median.brightness_hz == 2000.0 and median.hnr_db == 15.0
    assert VoiceFeatures.from_json(a.to_json()) == a


def test_differences_in_plain_words():
    mine = VoiceFeatures(220.0, 6.0, 1500.0, 12.0, 0.0, 0.0, 0.8)
    theirs = VoiceFeatures(440.0, 9.0, 2000.0, 20.0, 5.8, 60.0, 0.8)
    lines = describe_differences(mine, theirs, "soprano_sofia")
    assert lines[0] == "Pitch: your median is 220 Hz, 12.0 semitones lower than soprano_sofia's 440 Hz."
    assert "narrower than soprano_sofia's 9.0" in lines[1]
    assert "darker than" in lines[2] and "1500 Hz vs 2000 Hz" in lines[2]
    assert "breathier than" in lines[3]
    assert lines[4].startswith("Vibrato: soprano_sofia sings with vibrato (5.8 Hz, ±60 cents); you sing without")
    same = describe_differences(theirs, theirs, "x")
    assert "about the same as" in same[0] and "about as bright as" in same[2] and "about as fast as" in same[4]
