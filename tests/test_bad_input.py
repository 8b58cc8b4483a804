"""Every kind of bad input gets one clear line naming the file and row, exit code 2, before
the first epoch; ``--on-bad-input skip`` skips and counts the bad rows instead.

``python tests/test_bad_input.py`` prints the table of docs/reliability.md from these cases.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from clihelp import polyvae
from conftest import write_digits

from polyvae.core.dataset import load_tensors
from polyvae.core.errors import BadInput, BadManifest
from polyvae.core.manifest import read_manifest
from polyvae.core.modality import Modality

SMALL = ('[train]\nnum_threads = 1\n[model]\nhidden_dim = 16\n'
         '[modality_options.image]\nsize = 8\nwidth = 4\nhidden = 16\n'
         '[modality_options.text]\nembed = 8\nhidden = 16\n')


def _rows(manifest: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def _rewrite(manifest: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _set_cell(manifest: Path, row: int, column: str, value: str) -> None:
    columns, rows = _rows(manifest)
    rows[row - 1][column] = value
    _rewrite(manifest, columns, rows)


def _image(manifest: Path, row: int) -> Path:
    return manifest.parent / _rows(manifest)[1][row - 1]["image"]


def _wav_manifest(folder: Path, bad: Callable[[Path], None] | None) -> Path:
    """Three short clips with words; clip 2 is replaced by ``bad``."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 8000.0
    for i in range(3):
        sf.write(folder / f"clip{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t)).astype(np.float32), 8000)
    if bad is not None:
        bad(folder / "clip1.wav")
    manifest = folder / "manifest.csv"
    _rewrite(manifest, ["audio", "text"], [{"audio": f"clip{i}.wav", "text": w}
                                           for i, w in enumerate(["one", "two", "three"])])
    return manifest


# ---- the cases ----------------------------------------------------------------------------
def missing_file(d: Path):
    m = write_digits(d, n=10, size=8)
    _set_cell(m, 3, "image", "images/nowhere.png")
    return m, []


def not_an_image(d: Path):
    m = write_digits(d, n=10, size=8)
    _image(m, 4).write_text("hello, I am a text file with a .png name\n")
    return m, []


def empty_file(d: Path):
    m = write_digits(d, n=10, size=8)
    _image(m, 2).write_bytes(b"")
    return m, []


def truncated_png(d: Path):
    m = write_digits(d, n=10, size=8)
    path = _image(m, 5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return m, []


def nan_tiff(d: Path):
    m = write_digits(d, n=10, size=8)
    pixels = np.ones((8, 8), np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(d / "images" / "nan.tiff")
    _set_cell(m, 6, "image", "images/nan.tiff")
    return m, []


def image_is_folder(d: Path):
    m = write_digits(d, n=10, size=8)
    (d / "images" / "album.png").mkdir()
    _set_cell(m, 7, "image", "images/album.png")
    return m, []


def blank_text(d: Path):
    m = write_digits(d, n=10, size=8)
    _set_cell(m, 8, "text", "   \t ")
    return m, []


def unknown_modality(d: Path):
    return write_digits(d, n=10, size=8), ["--modalities", "image,video"]


def absent_column(d: Path):
    return write_digits(d, n=10, size=8), ["--modalities", "image,audio"]


def no_usable_rows(d: Path):
    m = write_digits(d, n=10, size=8)
    columns, rows = _rows(m)
    _rewrite(m, columns, [{**r, "image": ""} for r in rows])
    return m, ["--modalities", "image"]


def every_row_bad(d: Path):
    m = write_digits(d, n=4, size=8)
    for i in range(1, 5):
        _image(m, i).write_bytes(b"")
    return m, ["--modalities", "image", "--on-bad-input", "skip"]


def not_utf8(d: Path):
    write_digits(d, n=4, size=8)
    return d / "images" / "0001.png", []


def not_csv(d: Path):
    d.mkdir(parents=True)
    (d / "data.yaml").write_text("image: a.png\ntext: one\n")
    return d / "data.yaml", []


def extra_cells(d: Path):
    m = write_digits(d, n=10, size=8)
    lines = m.read_text().splitlines()
    lines[4] = lines[4] + ",surplus"                  # data row 4
    m.write_text("\n".join(lines) + "\n")
    return m, []


def unclosed_quote(d: Path):
    m = write_digits(d, n=10, size=8)
    lines = m.read_text().splitlines()
    lines[9] = lines[9].replace(",", ',"', 1)       # data row 9 opens a quote it never closes
    m.write_text("\n".join(lines) + "\n")
    return m, []


def duplicate_columns(d: Path):
    d.mkdir(parents=True)
    (d / "manifest.csv").write_text("image,text,image\na.png,one,b.png\n")
    return d / "manifest.csv", []


def header_only(d: Path):
    d.mkdir(parents=True)
    (d / "manifest.csv").write_text("image,text\n")
    return d / "manifest.csv", []


def missing_manifest(d: Path):
    d.mkdir(parents=True)
    return d / "manifest.csv", []


def folder_as_manifest(d: Path):
    write_digits(d, n=4, size=8)
    return d, []


def corrupt_audio(d: Path):
    return _wav_manifest(d, lambda p: p.write_bytes(bytes(range(256)) * 8)), []


def wrong_sample_rate(d: Path):
    import soundfile as sf
    return _wav_manifest(d, lambda p: sf.write(p, np.full(400, 0.2, np.float32), 200)), []


def truncated_audio(d: Path):
    def cut(p: Path) -> None:
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    return _wav_manifest(d, cut), []


def nan_audio(d: Path):
    import soundfile as sf
    clip = np.full(800, 0.2, np.float32)
    clip[100] = np.nan
    return _wav_manifest(d, lambda p: sf.write(p, clip, 8000, subtype="FLOAT")), []


def silent_audio(d: Path):
    import soundfile as sf
    return _wav_manifest(d, lambda p: sf.write(p, np.zeros(800, np.float32), 8000)), []


@dataclass
class Case:
    kind: str
    make: Callable[[Path], tuple[Path, list[str]]]
    expect: str                 # part of the reason every user sees
    names: str | None           # the file the message must name
    row: int | None             # the manifest row it must name
    skippable: bool = False     # a bad row that --on-bad-input skip drops


CASES = [
    Case("missing path", missing_file, "image file not found", "nowhere.png", 3, True),
    Case("non-image with a .png name", not_an_image, "not an image PIL can read", "0003.png", 4, True),
    Case("empty (0-byte) image", empty_file, "empty file (0 bytes)", "0001.png", 2, True),
    Case("truncated PNG", truncated_png, "cannot decode image (image file is truncated)", "0004.png", 5, True),
    Case("float TIFF with NaN", nan_tiff, "non-finite pixel values (NaN or inf)", "nan.tiff", 6, True),
    Case("folder where an image should be", image_is_folder, "is a folder, not an image file", "album.png", 7, True),
    Case("empty text (whitespace only)", blank_text, "empty text (only whitespace)", "manifest.csv", 8, True),
    Case("unknown modality requested (--modalities video)", unknown_modality, "unknown modality 'video'", None, None),
    Case("modality with no column (--modalities audio)", absent_column, "no column 'audio'", "manifest.csv", None),
    Case("manifest with no usable rows", no_usable_rows, "no usable rows", "manifest.csv", None),
    Case("every row bad, with --on-bad-input skip", every_row_bad, "no usable rows", "manifest.csv", None),
    Case("manifest that is not text (a PNG)", not_utf8, "not a text file (a NUL byte", "0001.png", None),
    Case("manifest that is not CSV (YAML)", not_csv, "no column is an installed modality", "data.yaml", None),
    Case("row with more cells than the header", extra_cells, "4 cells but the header has 3 columns", "manifest.csv", 4),
    Case("unclosed quote", unclosed_quote, "malformed CSV", "manifest.csv", 9),
    Case("duplicate columns", duplicate_columns, "duplicate column(s) 'image'", "manifest.csv", None),
    Case("header but no rows", header_only, "no data rows", "manifest.csv", None),
    Case("missing manifest", missing_manifest, "manifest not found", "manifest.csv", None),
    Case("folder given as manifest", folder_as_manifest, "is a folder; pass the manifest CSV inside it", "d", None),
    Case("corrupt audio (random bytes)", corrupt_audio, "not a readable audio file", "clip1.wav", 2, True),
    Case("absurd sample rate (200 Hz)", wrong_sample_rate, "absurd sample rate 200 Hz", "clip1.wav", 2, True),
    Case("truncated WAV", truncated_audio, "truncated audio file", "clip1.wav", 2, True),
    Case("NaN samples in a float WAV", nan_audio, "audio contains NaN or infinite samples", "clip1.wav", 2, True),
    Case("silent audio", silent_audio, "silent audio", "clip1.wav", 2, True),
]


def run_case(case: Case, root: Path, *extra: str):
    manifest, args = case.make(root / "d")
    config = root / "small.toml"
    config.write_text(SMALL)
    return polyvae("train", root / "run", "--data", manifest, "--epochs", "1", "--latent-dim", "4",
                   "--batch-size", "8", "--seed", "0", "--device", "cpu", "--quiet", "--config", config,
                   *args, *extra)


@pytest.mark.parametrize("case", CASES, ids=[c.make.__name__ for c in CASES])
def test_bad_input_is_one_line_naming_file_and_row(case, tmp_path):
    if _is_audio(case) and "audio" not in _installed_modalities():
        pytest.skip("audio plugin not installed")
    r = run_case(case, tmp_path)
    assert r.code == 2, (r.code, r.err)
    assert r.err.startswith("Error: ") and r.err.count("\n") == 1, r.err
    assert "Traceback" not in r.err
    assert case.expect in r.err, r.err
    if case.names:
        assert case.names in r.err, r.err
    if case.row is not None:
        assert f"row {case.row}" in r.err, r.err
    assert not (tmp_path / "run" / "model.safetensors").exists()     # stopped before the first epoch


@pytest.mark.parametrize("case", [c for c in CASES if c.skippable],
                         ids=[c.make.__name__ for c in CASES if c.skippable])
def test_skip_drops_and_counts_bad_rows(case, tmp_path, monkeypatch):
    if _is_audio(case) and "audio" not in _installed_modalities():
        pytest.skip("audio plugin not installed")
    import polyvae.pipelines.plots as plots
    monkeypatch.setattr(plots, "write_epoch_plots", lambda report: [])   # not what is tested here
    r = run_case(case, tmp_path, "--on-bad-input", "skip")
    assert r.code == 0, r.err
    assert "skipped 1 bad row(s)" in r.err and f"row {case.row}" in r.err, r.err
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert data["skipped_rows"] == 1
    assert data["train_rows"] + data["validation_rows"] == (2 if _is_audio(case) else 9)
    assert case.expect in data["skipped"][0] and f"row {case.row}" in data["skipped"][0]


def _is_audio(case: Case) -> bool:
    return bool(case.names and case.names.endswith(".wav"))


def _installed_modalities() -> set[str]:
    from polyvae.core.plugins import get_registry
    return set(get_registry().modalities)


# ---- the engine's own net: non-finite values whatever the plugin ----------------------------
class LeakyVectors(Modality):
    """A careless plugin: reads numbers from the cell and never checks them."""

    name = "numbers"
    extension = "txt"
    cell_is_path = False

    def read(self, cell, base_dir):
        return np.array([float(v) for v in cell.split()], dtype=np.float32)

    def preprocess(self, raws):
        return torch.from_numpy(np.stack(raws)) * 1e30        # finite in, inf out for big values

    def build_encoder(self, latent_dim): raise NotImplementedError
    def build_decoder(self, input_dim): raise NotImplementedError
    def log_likelihood(self, params, x): raise NotImplementedError
    def generate(self, decoder, h): raise NotImplementedError
    def render(self, x, path): raise NotImplementedError


def _numbers_manifest(folder: Path, cells: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.csv"
    _rewrite(path, ["numbers"], [{"numbers": c} for c in cells])
    return path


def test_nan_from_any_plugin_is_caught_at_load(tmp_path):
    manifest = read_manifest(_numbers_manifest(tmp_path, ["1 2", "3 nan", "5 6"]))
    with pytest.raises(BadInput) as err:
        load_tensors(manifest, {"numbers": LeakyVectors()})
    assert err.value.row == 2 and "non-finite" in str(err.value) and "m.csv" in str(err.value)
    data = load_tensors(manifest, {"numbers": LeakyVectors()}, on_bad_input="skip")
    assert data.rows == [1, 3] and [e.row for e in data.skipped] == [2]


def test_values_that_overflow_in_preprocessing_are_caught(tmp_path):
    manifest = read_manifest(_numbers_manifest(tmp_path, ["1 2", "3 4", "1e10 1"]))
    with pytest.raises(BadInput) as err:
        load_tensors(manifest, {"numbers": LeakyVectors()})
    assert err.value.row == 3 and "after preprocessing" in str(err.value)
    data = load_tensors(manifest, {"numbers": LeakyVectors()}, on_bad_input="skip")
    assert data.rows == [1, 2] and torch.isfinite(data.data["numbers"]).all()
    assert [e.row for e in data.skipped] == [3]


def test_a_plugin_crash_on_a_crafted_file_is_a_located_bad_input(tmp_path):
    class Fragile(LeakyVectors):
        def read(self, cell, base_dir):
            return [][int(cell)]                                # IndexError deep in "a codec"

    manifest = read_manifest(_numbers_manifest(tmp_path, ["3"]))
    with pytest.raises(BadInput) as err:
        load_tensors(manifest, {"numbers": Fragile()})
    assert err.value.row == 1 and "IndexError" in str(err.value)


def test_only_skip_lists_are_counted_once_per_row(tmp_path):
    manifest = read_manifest(_numbers_manifest(tmp_path, ["nan", "1", "inf", "2"]))
    data = load_tensors(manifest, {"numbers": LeakyVectors()}, on_bad_input="skip")
    assert data.rows == [2, 4] and [e.row for e in data.skipped] == [1, 3]
    with pytest.raises(BadManifest, match="no usable rows"):
        load_tensors(read_manifest(_numbers_manifest(tmp_path / "b", ["nan", "inf"])),
                     {"numbers": LeakyVectors()}, on_bad_input="skip")


def markdown_table(root: Path) -> str:
    """The README table: each kind of bad input and the exact line ``polyvae train`` prints."""
    lines = ["| bad input | exit | what `polyvae train` prints (stderr) | with `--on-bad-input skip` |",
             "|---|---|---|---|"]
    for k, case in enumerate(CASES):
        r = run_case(case, root / str(k))
        message = r.err.strip().replace(str(root / str(k)) + "/", "").replace("|", "\\|")
        skip = "row skipped and counted" if case.skippable else "same error"
        lines.append(f"| {case.kind} | {r.code} | `{message}` | {skip} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        print(markdown_table(Path(tmp)))
