"""The on-disk data cache: written on the first load, reused after, invalidated by a changed
file or setting, equal to the in-memory tensors, never trusted half-written, and with bad
input reported as without it."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from polyvae.core import cache, decoding
from polyvae.core.dataset import load_tensors, split_indices
from polyvae.core.errors import BadInput, BadRows
from polyvae.core.manifest import read_manifest, write_manifest
from polyvae.core.modality import Modality
from polyvae.plugins.image.modality import ImageModality
from polyvae.plugins.text.modality import TextModality

WORDS = ["red", "green", "blue", "navy blue"]


def _dataset(folder: Path, rows: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    table = []
    for i in range(rows):
        Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(folder / "images" / f"{i}.png")
        table.append({"image": f"images/{i}.png", "text": WORDS[i % 4], "label": str(i % 4)})
    table[7]["text"] = ""                                  # a row without text
    write_manifest(folder / "manifest.csv", table, ["image", "text", "label"])
    return folder / "manifest.csv"


def _modalities(size: int = 8, **text) -> dict[str, Modality]:
    return {"image": ImageModality(size=size), "text": TextModality(**text)}


def _fit_load(manifest_path: Path, mods: dict[str, Modality], **kw):
    def training_rows(kept):
        return [kept[i] for i in split_indices(len(kept), 0.1, 0)[0]]
    return load_tensors(read_manifest(manifest_path), mods, fit_rows=training_rows,
                        fit_key={"seed": 0, "validation_fraction": 0.1}, **kw)


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.delenv("POLYVAE_DATA_CACHE", raising=False)
    return _dataset(tmp_path / "data")


def _everything(data) -> dict[str, torch.Tensor]:
    batch = data.batch(slice(None))
    return {**batch.data, **{f"{m}/present": p for m, p in batch.present.items()}}


def test_first_load_writes_the_cache_and_the_second_reuses_it(manifest, monkeypatch):
    first = _fit_load(manifest, _modalities())
    assert first.cache is not None and not first.cache.reused
    entry = Path(first.cache.path)
    assert entry.parent == manifest.parent / cache.FOLDER and (entry / cache.META).is_file()
    assert np.load(entry / "image.npy", mmap_mode="r").dtype == np.uint8       # compact
    assert np.load(entry / "text.npy", mmap_mode="r").dtype.itemsize <= 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")
    monkeypatch.setattr(decoding, "decode_chunk", no_decoding)
    mods = _modalities()
    again = _fit_load(manifest, mods)
    assert again.cache.reused and again.cache.path == first.cache.path
    assert mods["text"].state() == json.loads((entry / cache.META).read_text())["states"]["text"]
    for key, value in _everything(first).items():
        assert torch.equal(value, _everything(again)[key]), key
    # evaluate/encode of the trained run (fitted states given) find the rows training decoded
    fitted = load_tensors(read_manifest(manifest), mods)
    assert fitted.cache.reused and fitted.cache.path == first.cache.path


def test_cached_values_equal_the_in_memory_ones(manifest, monkeypatch):
    cached_mods = _modalities()
    cached = _fit_load(manifest, cached_mods)
    monkeypatch.setenv("POLYVAE_DATA_CACHE", "off")
    plain_mods = _modalities()
    plain = _fit_load(manifest, plain_mods)
    assert plain.cache is None and cached.rows == plain.rows and cached.metadata == plain.metadata
    assert {m: x.state() for m, x in cached_mods.items()} == {m: x.state() for m, x in plain_mods.items()}
    assert cached.specs() == plain.specs()
    mine, theirs = _everything(cached), _everything(plain)
    for key in theirs:
        assert mine[key].dtype == theirs[key].dtype and torch.equal(mine[key], theirs[key]), key
    # the column behaves as the tensor did: rows, masks, torch functions, subsets that read nothing
    column, tensor = cached.data["image"], plain.data["image"]
    assert column.shape == tensor.shape and torch.equal(column[3], tensor[3])
    assert torch.equal(column[plain.present["text"]], tensor[plain.present["text"]])
    assert torch.equal(torch.isfinite(column), torch.isfinite(tensor))
    part = cached.subset([5, 1, 2])
    assert part.rows == [cached.rows[5], cached.rows[1], cached.rows[2]]
    assert torch.equal(part.batch([0, 2]).data["image"], tensor[[5, 2]])


def test_rows_decoded_for_a_trained_run_serve_training_too(manifest):
    fitted = _modalities()
    _fit_load(manifest, fitted)
    shutil.rmtree(manifest.parent / cache.FOLDER)
    assert not load_tensors(read_manifest(manifest), fitted).cache.reused      # evaluate first
    assert not _fit_load(manifest, _modalities()).cache.reused                  # same rows: noted
    assert _fit_load(manifest, _modalities()).cache.reused
    assert len([p for p in (manifest.parent / cache.FOLDER).iterdir() if p.is_dir()]) == 1


def test_a_column_moved_to_a_device_decodes_there(manifest):
    column = _fit_load(manifest, _modalities()).data["image"].take([3, 0, 5])
    assert column.on("cpu") is column
    held = cache.CachedColumn(torch.from_numpy(np.array(column.store)), column.index, column.codec)
    assert torch.equal(held[[2, 0]], column[[2, 0]]) and held[1].dtype == torch.float32


def test_workers_decode_the_same_values(manifest, monkeypatch):
    mods = _modalities()
    mods["image"].load_state({"channels": 1})
    mods["text"] = TextModality()
    mods["text"].load_state(_modalities_fitted_text_state(manifest))
    monkeypatch.setattr(decoding, "PARALLEL_MIN_ROWS", 0)
    parallel = load_tensors(read_manifest(manifest), mods, workers=2)
    assert parallel.cache.workers == 2
    monkeypatch.setenv("POLYVAE_DATA_CACHE", "off")
    plain = load_tensors(read_manifest(manifest), mods)
    for key, value in _everything(plain).items():
        assert torch.equal(_everything(parallel)[key], value), key


def _modalities_fitted_text_state(manifest: Path) -> dict:
    text = TextModality()
    text.fit([t for t in read_manifest(manifest).column("text") if t])
    return text.state()


def test_a_changed_file_or_setting_is_decoded_again(manifest):
    first = _fit_load(manifest, _modalities())
    image = manifest.parent / "images" / "4.png"
    Image.fromarray(np.full((10, 12), 200, dtype=np.uint8)).save(image)
    os.utime(image, ns=(1_000_000_000, 1_000_000_000))   # a new mtime even on a coarse clock
    changed = _fit_load(manifest, _modalities())
    assert not changed.cache.reused and changed.cache.path != first.cache.path
    assert torch.allclose(changed.data["image"][4], torch.full((1, 8, 8), 200 / 255))
    assert _fit_load(manifest, _modalities()).cache.reused
    # another image size, another text setting: each its own entry
    bigger = _fit_load(manifest, _modalities(size=16))
    assert not bigger.cache.reused and bigger.data["image"].shape[1:] == (1, 16, 16)
    shorter = _fit_load(manifest, _modalities(max_length=2))
    assert not shorter.cache.reused
    # another fitted state (a run fitted on other rows) is not the same entry either
    mods = _modalities()
    mods["image"].load_state({"channels": 3})
    mods["text"].load_state(_modalities_fitted_text_state(manifest))
    rgb = load_tensors(read_manifest(manifest), mods)
    assert not rgb.cache.reused and rgb.data["image"].shape[1] == 3


def test_an_edited_plugin_is_decoded_again(tmp_path, monkeypatch):
    monkeypatch.delenv("POLYVAE_DATA_CACHE", raising=False)
    plugin = tmp_path / "plugin" / "edited_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text("from test_data_cache import Noise\nclass Edited(Noise):\n    pass\n")
    monkeypatch.syspath_prepend(str(plugin.parent))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from edited_plugin import Edited
    write_manifest(tmp_path / "m.csv", [{"noise": str(i)} for i in range(12)], ["noise"])
    assert not load_tensors(read_manifest(tmp_path / "m.csv"), {"noise": Edited()}).cache.reused
    assert load_tensors(read_manifest(tmp_path / "m.csv"), {"noise": Edited()}).cache.reused
    os.utime(plugin, ns=(2_000_000_000, 2_000_000_000))      # the plugin's code changed
    assert not load_tensors(read_manifest(tmp_path / "m.csv"), {"noise": Edited()}).cache.reused


def test_a_half_written_cache_is_never_used(manifest, monkeypatch):
    # a decode killed mid-way: nothing committed, its temporary folder removed or ignored
    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(decoding.ColumnWriter, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        _fit_load(manifest, _modalities())
    monkeypatch.undo()
    root = manifest.parent / cache.FOLDER
    assert not [p for p in root.iterdir() if not p.name.startswith(".")]
    good = _fit_load(manifest, _modalities())
    entry = Path(good.cache.path)
    # what kill -9 leaves: a temporary folder of a dead process (removed at the next decode)
    stale = root / ".partial-999999999-1"
    shutil.copytree(entry, stale)
    # an entry whose array is cut short, one without meta.json: ignored and decoded again
    with open(entry / "image.npy", "r+b") as fh:
        fh.truncate(200)
    again = _fit_load(manifest, _modalities())
    assert not again.cache.reused and torch.equal(again.data["image"][0], good.data["image"][0])
    assert not stale.exists()
    (entry / cache.META).unlink()
    assert not _fit_load(manifest, _modalities()).cache.reused


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_input_is_reported_with_file_and_row(manifest, monkeypatch, workers):
    monkeypatch.setattr(decoding, "PARALLEL_MIN_ROWS", 0)
    (manifest.parent / "images" / "5.png").write_bytes(b"not a png at all")
    (manifest.parent / "images" / "9.png").write_bytes(b"")
    with pytest.raises(BadRows) as err:
        _fit_load(manifest, _modalities(), workers=workers)
    assert [(Path(e.file).name, e.row, e.modality) for e in err.value.errors] == \
        [("5.png", 6, "image"), ("9.png", 10, "image")]
    assert not (manifest.parent / cache.FOLDER).exists() or \
        not [p for p in (manifest.parent / cache.FOLDER).iterdir() if not p.name.startswith(".")]
    skipped = _fit_load(manifest, _modalities(), on_bad_input="skip", workers=workers)
    assert [e.row for e in skipped.skipped] == [6, 10] and 6 not in skipped.rows
    # the cache built while skipping still fails a load that does not skip, naming the same cells
    with pytest.raises(BadRows) as again:
        _fit_load(manifest, _modalities())
    assert [(Path(e.file).name, e.row) for e in again.value.errors] == [("5.png", 6), ("9.png", 10)]
    reused = _fit_load(manifest, _modalities(), on_bad_input="skip")
    assert reused.cache.reused and [e.message() for e in reused.skipped] == [e.message() for e in skipped.skipped]


class Noise(Modality):
    """A third-party modality with float values no compact dtype holds exactly."""

    name, extension, cell_is_path = "noise", "txt", False

    def read(self, cell, base_dir):
        if cell.strip() == "bad":
            raise BadInput("not a number")
        return float(cell)

    def preprocess(self, raws):
        g = torch.Generator().manual_seed(0)
        return torch.tensor(raws, dtype=torch.float32)[:, None] + torch.rand(len(raws), 3, generator=g) / 7

    def build_encoder(self, latent_dim): raise NotImplementedError
    def build_decoder(self, input_dim): raise NotImplementedError
    def log_likelihood(self, params, x): raise NotImplementedError
    def generate(self, decoder, h): raise NotImplementedError
    def render(self, x, path): raise NotImplementedError


class HalfNoise(Noise):
    cache_dtype = "float16"


def test_a_modality_without_a_compact_dtype_keeps_its_floats(tmp_path, monkeypatch):
    monkeypatch.delenv("POLYVAE_DATA_CACHE", raising=False)
    write_manifest(tmp_path / "m.csv", [{"noise": str(i / 3)} for i in range(20)] + [{"noise": "bad"}], ["noise"])
    with pytest.raises(BadInput) as err:
        load_tensors(read_manifest(tmp_path / "m.csv"), {"noise": Noise()})
    assert err.value.row == 21 and err.value.file == str(tmp_path / "m.csv")
    data = load_tensors(read_manifest(tmp_path / "m.csv"), {"noise": Noise()}, on_bad_input="skip")
    assert np.load(Path(data.cache.path) / "noise.npy", mmap_mode="r").dtype == np.float32
    exact = Noise().preprocess([i / 3 for i in range(20)])
    assert torch.equal(data.batch(slice(None)).data["noise"], exact)
    half = load_tensors(read_manifest(tmp_path / "m.csv"), {"noise": HalfNoise()}, on_bad_input="skip")
    assert np.load(Path(half.cache.path) / "noise.npy", mmap_mode="r").dtype == np.float16
    assert torch.allclose(half.batch(slice(None)).data["noise"], exact, rtol=1e-3, atol=1e-3)


def test_codecs_hold_their_values_exactly():
    pixels = torch.randint(0, 256, (4, 1, 3, 3), generator=torch.Generator().manual_seed(1)).float() / 255.0
    assert cache.choose_codec(pixels) == cache.Codec("uint8", "float32", 255.0)
    assert cache.choose_codec(torch.tensor([[0, 300], [5, 7]])).storage == "int16"
    assert cache.choose_codec(torch.tensor([0.5, 0.25])).storage == "float16"
    # a column stored as uint8 that meets a chunk of float16 values goes to float32, not lossy float16
    assert cache.widen(cache.Codec("uint8", "float32", 255.0), cache.Codec("float16", "float32")).storage == "float32"
    assert cache.widen(cache.Codec("uint8", "int64"), cache.Codec("int8", "int64")).storage == "int16"


def test_training_says_whether_it_reused_the_cache(manifest, tmp_path):
    from polyvae.core.run import read_config
    from polyvae.core.training import train
    from polyvae.pipelines.training_run import build_config

    def config():
        return build_config(None, {"model": {"latent_dim": 4, "modalities": ["image", "text"]},
                                   "train": {"epochs": 1, "batch_size": 16, "seed": 0},
                                   "modality_options": {"image": {"size": 8, "width": 4, "hidden": 16},
                                                        "text": {"embed": 8, "hidden": 16}}})
    train(tmp_path / "a", manifest, config())
    train(tmp_path / "b", manifest, config())
    first, second = read_config(tmp_path / "a").data.cache, read_config(tmp_path / "b").data.cache
    assert first["reused"] is False and second["reused"] is True and first["path"] == second["path"]
    a = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert a[0]["train/loss"] == b[0]["train/loss"]
