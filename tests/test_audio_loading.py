"""Reading audio files of every kind into fixed-length mono clips, and refusing bad ones."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from polyvae.core.errors import BadInput
from polyvae.plugins.audio.modality import AudioModality


def ClipAudio(**options):
    """The clip model (one clip-level code), what these tests were written for."""
    return AudioModality(model="clip", **options)

SR = 16000


def tone(rate: int, seconds: float, f0: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def dominant_hz(clip: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(clip * np.hanning(len(clip))))
    return float(np.argmax(spectrum) * rate / len(clip))


def test_formats_rates_and_channels(tmp_path):
    stereo = np.stack([tone(44100, 1.5, 1000), tone(44100, 1.5, 1000, 0.2)], axis=1)
    sf.write(tmp_path / "stereo44k.wav", stereo, 44100)
    sf.write(tmp_path / "mono8k.wav", tone(8000, 1.0, 500), 8000)
    sf.write(tmp_path / "clip.flac", tone(22050, 1.2, 750), 22050)
    sf.write(tmp_path / "deep.wav", tone(SR, 1.0, 300), SR, subtype="PCM_24")
    sf.write(tmp_path / "float.wav", tone(48000, 1.0, 2000), 48000, subtype="FLOAT")
    expected = {"stereo44k.wav": 1000, "mono8k.wav": 500, "clip.flac": 750, "deep.wav": 300, "float.wav": 2000}
    if "VORBIS" in sf.available_subtypes("OGG"):
        sf.write(tmp_path / "clip.ogg", tone(48000, 1.0, 600), 48000, format="OGG", subtype="VORBIS")
        expected["clip.ogg"] = 600
    mod = ClipAudio()
    for name, f0 in expected.items():
        clip = mod.read(name, tmp_path)
        assert clip.shape == (SR,) and clip.dtype == np.float32, name
        assert abs(float(np.abs(clip).max()) - 0.95) < 1e-3, name          # peak-normalised
        assert abs(dominant_hz(clip) - f0) <= 2.0, name                    # resampled, not sped up


def test_resampling_is_clean(tmp_path):
    """soxr-quality resampling: a 44.1 kHz tone lands at 16 kHz without audible images or loss."""
    sf.write(tmp_path / "a.wav", tone(44100, 1.0, 1000), 44100)
    clip = ClipAudio(peak_normalize=False).read("a.wav", tmp_path)
    reference = tone(SR, 1.0, 1000)
    middle = slice(1000, 15000)                                   # away from the edges
    assert np.max(np.abs(clip[middle] - reference[middle])) < 1e-3


def test_mono_mix_and_level_kept_without_normalisation(tmp_path):
    left = tone(SR, 1.0, 440, 0.5)
    sf.write(tmp_path / "s.wav", np.stack([left, np.zeros_like(left)], axis=1), SR, subtype="FLOAT")
    clip = ClipAudio(peak_normalize=False).read("s.wav", tmp_path)
    np.testing.assert_allclose(clip, 0.5 * left, atol=1e-6)


def test_length_policies(tmp_path):
    first, second = tone(SR, 1.0, 300), tone(SR, 1.0, 1200)
    sf.write(tmp_path / "long.wav", np.concatenate([first, second]), SR, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", tone(SR, 0.5, 300), SR, subtype="FLOAT")

    trim = ClipAudio(peak_normalize=False)
    np.testing.assert_allclose(trim.read("long.wav", tmp_path), first, atol=1e-6)
    padded = trim.read("short.wav", tmp_path)
    assert np.abs(padded[:8000]).max() > 0.4 and np.all(padded[8000:] == 0)

    center = ClipAudio(peak_normalize=False, length_policy="center-crop")
    middle = center.read("long.wav", tmp_path)
    np.testing.assert_allclose(middle, np.concatenate([first, second])[8000:24000], atol=1e-6)
    centred = center.read("short.wav", tmp_path)
    assert np.all(centred[:4000] == 0) and np.all(centred[12000:] == 0)
    assert np.abs(centred[4000:12000]).max() > 0.4

    other = ClipAudio(duration=0.25, sample_rate=8000)
    assert other.read("long.wav", tmp_path).shape == (2000,)


def _write_bad(tmp_path, kind: str) -> str:
    """Create the bad file ``kind`` in tmp_path and return its name."""
    good = tone(SR, 2.0)
    if kind == "missing":
        return "nope.wav"
    if kind == "folder":
        (tmp_path / "dir.wav").mkdir()
        return "dir.wav"
    if kind == "empty":
        (tmp_path / "e.wav").write_bytes(b"")
        return "e.wav"
    if kind == "zero-frames":
        sf.write(tmp_path / "z.wav", np.zeros(0, np.float32), SR)
        return "z.wav"
    if kind == "text":
        (tmp_path / "t.wav").write_text("this is a note, not a recording\n")
        return "t.wav"
    if kind == "garbage":
        (tmp_path / "g.flac").write_bytes(np.random.default_rng(0).bytes(5000))
        return "g.flac"
    if kind in ("truncated-wav", "truncated-flac", "truncated-ogg"):
        ext = kind.split("-")[1]
        sf.write(tmp_path / f"full.{ext}", good, SR)
        data = (tmp_path / f"full.{ext}").read_bytes()
        (tmp_path / f"cut.{ext}").write_bytes(data[:len(data) // 4])
        return f"cut.{ext}"
    if kind in ("nan", "inf"):
        bad = good.copy()
        bad[100] = np.nan if kind == "nan" else np.inf
        sf.write(tmp_path / "n.wav", bad, SR, subtype="FLOAT")
        return "n.wav"
    if kind == "silent":
        sf.write(tmp_path / "s.wav", np.zeros(SR, np.float32), SR)
        return "s.wav"
    if kind == "silent-part":
        late = np.concatenate([np.zeros(2 * SR, np.float32), good])    # sound only after 2 s
        sf.write(tmp_path / "late.wav", late, SR)
        return "late.wav"
    if kind == "absurd-rate":
        sf.write(tmp_path / "r.wav", good[:400], 100)
        return "r.wav"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,reason", [
    ("missing", r"^audio file not found$"),
    ("folder", r"folder"),
    ("empty", r"^empty file \(0 bytes\)$"),
    ("zero-frames", r"no audio in the file \(0 frames\)"),
    ("text", r"^not a readable audio file \(soundfile: Format not recognised.\)$"),
    ("garbage", r"not a readable audio file"),
    ("truncated-wav", r"^truncated audio file: the WAV header declares \d+ data bytes, only \d+"),
    ("truncated-flac", r"^truncated or corrupt audio file \(soundfile: .*\)$"),
    ("truncated-ogg", r"truncated|corrupt|not a readable|malformed"),
    ("nan", r"^audio contains NaN or infinite samples$"),
    ("inf", r"^audio contains NaN or infinite samples$"),
    ("silent", r"^silent audio: peak -inf dBFS in the clip; silence cannot be modelled$"),
    ("silent-part", r"silent audio: .* in the 1 s used \(pad-trim\)"),
    ("absurd-rate", r"^absurd sample rate 100 Hz"),
])
def test_bad_files_give_one_line_reasons(tmp_path, kind, reason):
    name = _write_bad(tmp_path, kind)
    with pytest.raises(BadInput, match=reason) as info:
        ClipAudio().read(name, tmp_path)
    assert "\n" not in info.value.reason and info.value.file is None   # the caller adds the file


def test_center_crop_reaches_sound_that_pad_trim_misses(tmp_path):
    name = _write_bad(tmp_path, "silent-part")                       # 2 s silence, then 2 s tone
    clip = ClipAudio(length_policy="center-crop").read(name, tmp_path)
    assert np.all(clip[:SR // 2 - 10] == 0) and np.abs(clip[SR // 2 + 10:]).max() > 0.9
