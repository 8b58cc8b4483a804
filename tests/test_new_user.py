"""A new user's first session, replayed: 40 captioned RGB pictures, default settings.

Each step once passed in silence (issue 15); each must now say what is wrong and what to
change: a ``Text`` header, five epochs, an evaluation on the 4 held-out rows, a character the
vocabulary never saw, a Windows CSV, backslash paths and several bad rows at once.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clihelp import polyvae

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220)}
SHAPES = ("triangle", "circle", "square")


def write_pictures(folder: Path, n: int = 40, header: str = "text", seed: int = 0) -> Path:
    """``n`` 64x64 RGB JPEGs of a coloured shape, captioned "The <colour> <shape>"."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour, shape = list(COLOURS)[rng.integers(3)], SHAPES[rng.integers(3)]
        img = Image.new("RGB", (64, 64), (235, 235, 225))
        draw = ImageDraw.Draw(img)
        x, y, r = (int(v) for v in (rng.integers(16, 48), rng.integers(16, 48), rng.integers(8, 15)))
        if shape == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=COLOURS[colour])
        elif shape == "square":
            draw.rectangle([x - r, y - r, x + r, y + r], fill=COLOURS[colour])
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=COLOURS[colour])
        name = f"images/IMG_{1000 + i}.jpg"
        img.save(folder / name)
        rows.append({"image": name, header: f"The {colour} {shape}", "label": shape})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", header, "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def warnings_in(err: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in err.splitlines() if line.startswith("Warning: ")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``polyvae train RUN --data manifest.csv --epochs 5``, nothing else set."""
    root = tmp_path_factory.mktemp("newuser")
    manifest = write_pictures(root / "pictures")
    r = polyvae("train", root / "run", "--data", manifest, "--epochs", 5, "--device", "cpu")
    assert r.code == 0, r.err
    return root, manifest, r


def test_a_capitalised_header_is_named_not_dropped(tmp_path):
    manifest = write_pictures(tmp_path / "pictures", header="Text")
    r = polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", 1, "--device", "cpu", "--quiet")
    assert r.code == 0, r.err
    (said,) = [w for w in warnings_in(r.err) if "'Text'" in w]
    assert "is not used" in said and "rename it 'text'" in said
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["modalities"] == ["image"]
    r = polyvae("train", tmp_path / "run2", "--data", manifest, "--modalities", "image,text", "--device", "cpu")
    assert r.code == 2 and "no column 'text'" in r.err and "rename 'Text' to 'text'" in r.err


def test_five_epochs_on_forty_rows_end_with_a_verdict(trained):
    root, _, r = trained
    assert "held out 4 of 40 rows for validation" in r.err
    (verdict,) = [w for w in warnings_in(r.err) if w.startswith("undertrained")]
    assert "validation loss was still falling" in verdict
    assert "image generated from text vary" in verdict and "collapsed towards the mean" in verdict
    # the decoder never repeats itself (no_repeat_ngram), so an undertrained one says one text for all
    assert "text reconstructions are nearly all alike" in verdict
    assert f"polyvae train {root / 'run'} --resume --epochs" in verdict and "more rows" in verdict
    saved = json.loads((root / "run" / "verdict.json").read_text())
    assert [f["check"] for f in saved] == ["undertrained"] and saved[0]["message"] == verdict


def test_an_evaluation_on_four_rows_says_its_figures_are_unreliable(trained):
    root, manifest, _ = trained
    r = polyvae("evaluate", root / "run", "--data", manifest, "--json", "--device", "cpu")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["rows"] == 4
    (unreliable,) = [v for v in result["verdict"] if v.startswith("unreliable figures")]
    assert "evaluated on 4 rows" in unreliable and "at least 30 rows" in unreliable
    assert unreliable in warnings_in(r.err)


def test_characters_the_vocabulary_never_saw_are_named(trained):
    root, _, _ = trained
    r = polyvae("generate", root / "run", "--given", "text=The carré ✓", "--to", "image", "--out", root / "gen",
                "--device", "cpu")
    assert r.code == 0, r.err
    (said,) = [w for w in warnings_in(r.err) if "<unk>" in w]
    assert "'é'" in said and "'✓'" in said and "'T'" not in said


def test_a_windows_csv_with_semicolons_is_read_and_its_encoding_named(trained, tmp_path):
    root, manifest, _ = trained
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    rows[0]["text"] = "The red carré"
    windows = manifest.parent / "excel.csv"
    with open(windows, "w", newline="", encoding="cp1252") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    r = polyvae("encode", root / "run", "--data", windows, "--out", tmp_path / "z.npy", "--no-plot", "--device", "cpu")
    assert r.code == 0, r.err
    assert np.load(tmp_path / "z.npy").shape[0] == 40
    assert any("read it as Windows-1252 (cp1252)" in w for w in warnings_in(r.err)), r.err


def test_fail_mode_lists_every_bad_row_and_hints_at_backslashes(tmp_path):
    manifest = write_pictures(tmp_path / "pictures", n=12)
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    rows[2]["image"] = "images\\IMG_1002.jpg"
    rows[5]["image"] = "images/nowhere.jpg"
    rows[7]["text"] = "   "
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    r = polyvae("train", tmp_path / "run", "--data", manifest, "--epochs", 1, "--device", "cpu")
    assert r.code == 2
    lines = r.err.splitlines()
    assert lines[0] == "Error: 3 bad rows:"
    assert "row 3, column 'image': image file not found" in lines[1]
    assert "write it 'images/IMG_1002.jpg' (that file exists)" in lines[1]
    assert "row 6, column 'image'" in lines[2] and "row 8, column 'text': empty text" in lines[3]
    assert not (tmp_path / "run").exists()


def test_a_clip_longer_than_the_run_models_is_said_when_a_command_reads_it(tmp_path):
    """Reading new data with a trained run's modalities (generate, encode, evaluate): what a
    modality notes about it (here the audio plugin: a 1 s clip where 0.25 s is modelled) is a
    DataWarning, as training already showed it."""
    import soundfile as sf

    from polyvae.core.errors import DataWarning
    from polyvae.pipelines.run_data import notes_as_warnings
    from polyvae.plugins.audio.modality import AudioModality

    t = np.arange(16000) / 16000
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    audio = AudioModality(model="clip", duration=0.25)
    with pytest.warns(DataWarning, match=r"audio: 1 of 1 clips are longer than the 0.25 s used"):
        with notes_as_warnings([audio]):
            audio.from_value(str(tmp_path / "long.wav"))
