"""The embedded demo dataset: files, determinism, balance, and audio that carries digit and voice."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from polyvae.core.errors import BadInput
from polyvae.pipelines.demo_data import (DIGIT_PHRASES, DIGIT_WORDS, MANIFEST_COLUMNS, SAMPLE_RATE,
                                         SINGERS, assign_singers, load_digit_set, sing_digit,
                                         singer_by_name, write_demo_dataset)
from polyvae.pipelines.demo_data.digits import balanced_subset
from polyvae.pipelines.demo_data.writer import clip_rng

SIZE = 40


def _rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo"), seed=0, size=SIZE)


def test_manifest_columns_rows_and_balance(demo):
    assert demo.name == "manifest.csv"
    with open(demo, newline="") as fh:
        assert next(csv.reader(fh)) == list(MANIFEST_COLUMNS) == ["image", "text", "audio", "speaker", "label"]
    rows = _rows(demo)
    assert len(rows) == SIZE
    assert sorted({r["label"] for r in rows}) == [str(d) for d in range(10)]
    assert all(sum(r["label"] == str(d) for r in rows) == SIZE // 10 for d in range(10))
    assert {r["speaker"] for r in rows} == {s.name for s in SINGERS}
    assert all(r["text"] == DIGIT_WORDS[int(r["label"])] for r in rows)
    assert len({r["image"] for r in rows}) == SIZE and len({r["audio"] for r in rows}) == SIZE


def test_files_exist_and_decode(demo):
    for row in _rows(demo):
        image_path, audio_path = demo.parent / row["image"], demo.parent / row["audio"]
        assert not Path(row["image"]).is_absolute() and image_path.is_file()
        with Image.open(image_path) as img:
            assert img.format == "PNG" and img.mode == "L" and img.size == (32, 32)
            pixels = np.asarray(img)
        assert pixels.max() > 150 and pixels.min() < 50           # a drawn digit, not a blank
        audio, sr = sf.read(audio_path, dtype="float32")
        assert sr == SAMPLE_RATE and audio.ndim == 1 and audio.shape == (SAMPLE_RATE,)
        assert np.isfinite(audio).all()
        assert 0.85 < np.abs(audio).max() <= 1.0                   # peak-normalised, not clipped
        assert np.sqrt(np.mean(audio ** 2)) > 0.05                  # not silent


def test_images_are_the_sklearn_digits(demo):
    digits = load_digit_set()
    row = _rows(demo)[0]
    index = int(Path(row["image"]).stem)
    assert int(row["label"]) == digits.labels[index]
    with Image.open(demo.parent / row["image"]) as img:
        small = np.asarray(img.resize((8, 8), Image.Resampling.BOX), dtype=np.float64)
    assert np.corrcoef(small.ravel(), digits.images[index].ravel())[0, 1] > 0.9


def test_same_seed_same_bytes_and_progress(demo, tmp_path):
    calls = []

    def progress(items, label):
        calls.append(label)
        return items

    again = write_demo_dataset(tmp_path / "again", seed=0, size=SIZE, progress=progress)
    assert calls == ["demo data"]
    assert again.read_bytes() == demo.read_bytes()
    for row in _rows(demo):
        for column in ("image", "audio"):
            assert (again.parent / row[column]).read_bytes() == (demo.parent / row[column]).read_bytes()


def test_different_seeds_differ(demo, tmp_path):
    other = write_demo_dataset(tmp_path / "other", seed=1, size=SIZE)
    assert _rows(other) != _rows(demo)
    singer = SINGERS[0]
    a = sing_digit(singer, 3, clip_rng(0, 7))
    assert np.array_equal(a, sing_digit(singer, 3, clip_rng(0, 7)))
    assert not np.allclose(a, sing_digit(singer, 3, clip_rng(1, 7)))


def test_size_is_checked_and_subsets_are_balanced():
    labels = load_digit_set().labels
    with pytest.raises(BadInput, match="1797"):
        write_demo_dataset(Path("unused"), size=len(labels) + 1)
    with pytest.raises(BadInput):
        write_demo_dataset(Path("unused"), size=0)
    subset = balanced_subset(labels, 25, seed=3)
    counts = np.bincount(labels[subset], minlength=10)
    assert len(set(subset.tolist())) == 25 and counts.min() == 2 and counts.max() == 3
    assert np.array_equal(balanced_subset(labels, len(labels), 0), np.arange(len(labels)))


def test_every_singer_sings_every_digit():
    labels = load_digit_set().labels
    singers = assign_singers(labels, seed=0)
    pairs = np.zeros((10, len(SINGERS)), dtype=int)
    np.add.at(pairs, (labels, singers), 1)
    assert pairs.min() >= 20
    assert pairs.max() - pairs.min() <= 3
    assert not np.array_equal(singers, assign_singers(labels, seed=1))
    assert singer_by_name("soprano_sofia").base_hz > singer_by_name("bass_boris").base_hz
    with pytest.raises(KeyError, match="bass_boris"):
        singer_by_name("nobody")


# ---- the audio carries both the digit and the voice ----------------------------------------

def _pitch_track(y: np.ndarray, n: int = 512, hop: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and voicing per frame by window-corrected autocorrelation."""
    frames = y[np.arange(0, len(y) - n, hop)[:, None] + np.arange(n)]
    window = np.hanning(n)
    x = (frames - frames.mean(1, keepdims=True)) * window
    r = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n)) ** 2)[:, :n]
    rw = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * n)) ** 2)[:n]
    r = r / rw * rw[0]
    lo, hi = SAMPLE_RATE // 900, SAMPLE_RATE // 65
    seg = r[:, lo:hi] / np.maximum(r[:, :1], 1e-12)
    best = seg.max(1)
    peaks = np.zeros(seg.shape, dtype=bool)
    peaks[:, 1:-1] = (seg[:, 1:-1] >= seg[:, :-2]) & (seg[:, 1:-1] >= seg[:, 2:])
    lag = np.argmax(peaks & (seg >= 0.9 * best[:, None]), axis=1)
    rows = np.arange(len(lag))
    left, mid, right = seg[rows, np.maximum(lag - 1, 0)], seg[rows, lag], seg[rows, np.minimum(lag + 1, hi - lo - 1)]
    curve = left - 2 * mid + right
    shift = np.clip(0.5 * (left - right) / np.where(curve == 0, 1, curve), -0.5, 0.5)
    voiced = (best > 0.5) & (r[:, 0] > 0.02 * r[:, 0].max())
    return SAMPLE_RATE / (lo + lag + shift), voiced


def _sung_notes(y: np.ndarray) -> np.ndarray:
    """Median pitch (semitones re 1 Hz) of the middle half of each third of the voiced span."""
    f0, voiced = _pitch_track(y)
    span = np.arange(np.flatnonzero(voiced)[0], np.flatnonzero(voiced)[-1] + 1)
    notes = []
    for part in np.array_split(span, 3):
        middle = part[len(part) // 4: len(part) - len(part) // 4]
        notes.append(np.median(12 * np.log2(f0[middle[voiced[middle]]])))
    return np.asarray(notes)


def _mean_log_spectrum(y: np.ndarray, n: int = 512, bands: int = 32) -> np.ndarray:
    frames = y[np.arange(0, len(y) - n, 256)[:, None] + np.arange(n)] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames)) ** 2
    power = power[power.sum(1) > 0.05 * power.sum(1).max()]
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    edges = np.geomspace(60, SAMPLE_RATE / 2, bands + 1)
    banded = np.stack([power[:, (freqs >= a) & (freqs < b)].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1)
    return np.log(banded + 1e-10).mean(0)


@pytest.fixture(scope="module")
def sung():
    """Two clips of every singer singing every digit, with their features."""
    records = []
    for s, singer in enumerate(SINGERS):
        for digit in range(10):
            for take in range(2):
                y = sing_digit(singer, digit, np.random.default_rng([11, s, digit, take]))
                notes = _sung_notes(y)
                records.append((s, digit, notes, np.append(_mean_log_spectrum(y), np.median(notes) / 12)))
    singer_ids, digits, notes, features = map(np.asarray, zip(*records))
    return singer_ids, digits, notes, features


def test_digit_melody_is_recognisable_in_every_voice(sung):
    singer_ids, digits, notes, _ = sung
    heard = np.diff(notes, axis=1)                                  # the two sung intervals
    templates = np.asarray([np.diff(p.notes) for p in DIGIT_PHRASES], dtype=float)
    guess = np.argmin(((heard[:, None, :] - templates[None]) ** 2).sum(-1), axis=1)
    assert (guess == digits).mean() >= 0.9                          # chance: 0.1
    for s in range(len(SINGERS)):
        assert (guess[singer_ids == s] == digits[singer_ids == s]).mean() >= 0.75, SINGERS[s].name


def test_register_follows_the_singer(sung):
    singer_ids, digits, notes, _ = sung
    zero = digits == 0                                               # "zero" is sung on the tonic
    for s, singer in enumerate(SINGERS):
        heard = np.median(notes[zero & (singer_ids == s)])
        assert abs(heard - 12 * np.log2(singer.base_hz)) < 1.0, singer.name


def test_voice_is_recognisable_on_unseen_digits(sung):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    singer_ids, digits, _, features = sung
    train, test = digits < 7, digits >= 7
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features[train], singer_ids[train])
    assert (model.predict(features[test]) == singer_ids[test]).mean() >= 0.75   # chance: 1/8
