"""Decoding a manifest into the on-disk cache (:mod:`.cache`), in parallel worker processes.

The same contract as :func:`.dataset.read_cells` then :func:`.dataset.build_tensors` (read
every cell, fit, preprocess; a bad cell named by file and row, ``on_bad_input`` fail or
skip), with three differences: modalities whose cells need no fitting are read and
preprocessed chunk by chunk in worker processes, each chunk's tensors go straight to
memory-mapped files in a compact dtype, and the result is reused by later loads.

``preprocess`` must treat rows independently (a row's tensor must not depend on the
other rows of its chunk): chunks here are not the ones of the in-memory path.
"""
from __future__ import annotations

import concurrent.futures
import errno
import importlib
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .cache import Entry, EntryWriter, cache_root, find_entry, plain, read_entry, source_key
from .columns import CachedColumn, Codec, choose_codec, widen
from .errors import BadInput, BadManifest, UsageError
from .manifest import Manifest
from .modality import Modality

#: rows a task decodes at once (also the preprocessing chunk)
CHUNK = 256
#: fewer rows than this are decoded in this process (starting workers costs more)
PARALLEL_MIN_ROWS = 2000

_WORKER_MODALITIES: dict[str, Modality] = {}


@dataclass
class CacheInfo:
    """Where a load's tensors live, and whether they were decoded now or reused."""

    path: str
    reused: bool
    #: how long the first decode took; how long this load took (the decode, or the lookup)
    decode_seconds: float
    load_seconds: float = 0.0
    workers: int = 0

    def describe(self) -> str:
        if self.reused:
            return (f"data: reused the decoded cache {self.path} ({self.load_seconds:.1f} s; "
                    f"decoding took {self.decode_seconds:.1f} s)")
        how = f" by {self.workers} worker processes" if self.workers > 1 else ""
        return f"data: decoded{how} in {self.decode_seconds:.1f} s, cached at {self.path}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "reused": self.reused, "decode_seconds": round(self.decode_seconds, 3),
                "load_seconds": round(self.load_seconds, 3), "workers": self.workers}


def _needs_fit(mod: Modality) -> bool:
    return type(mod).fit is not Modality.fit


def _parallel_ok(mod: Modality) -> bool:
    """Whether ``read`` may run in another process: the modality says so (``parallel_read``),
    or it keeps no notes (what ``read`` notes in a worker would be lost)."""
    declared = getattr(mod, "parallel_read", None)
    return bool(declared) if declared is not None else type(mod).notes is Modality.notes


def default_workers() -> int:
    setting = os.environ.get("POLYVAE_DECODE_WORKERS", "").strip()
    if setting.isdigit():
        return int(setting)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return min(cores, 8)


# ---- one chunk of rows ----------------------------------------------------------------------
def decode_chunk(modalities: dict[str, Modality], base_dir: Path, manifest_path: Path,
                 cells: list[tuple[int, dict[str, str]]], preprocess: set[str]) -> dict[str, Any]:
    """Read the ``cells`` (row index, modality -> non-empty cell) of a chunk; preprocess and
    encode the modalities in ``preprocess``, return the raw values of the others."""
    from .dataset import _non_finite, _read

    bad: list[tuple] = []
    raws: dict[str, dict[int, Any]] = {m: {} for m in modalities}
    encoded: dict[str, tuple] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, row in cells:
            for name, mod in modalities.items():
                cell = row.get(name)
                if cell is None:
                    continue
                try:
                    raw = _read(mod, name, cell, base_dir)
                    if _non_finite(raw):
                        raise BadInput("non-finite values (NaN or inf) in the data")
                    raws[name][i] = raw
                except BadInput as err:
                    file = base_dir / cell if mod.cell_is_path else manifest_path
                    e = err.located(file=file, row=i + 1, modality=name)
                    bad.append((e.reason, e.file, e.row, e.modality))
        for name in preprocess:
            if raws.get(name):
                rows = list(raws[name])
                x = modalities[name].preprocess([raws[name][i] for i in rows])
                encoded[name] = encode(x, rows, getattr(modalities[name], "cache_dtype", None))
                raws[name] = dict.fromkeys(rows)          # which rows were read, without values
    seen = [(w.category.__module__, w.category.__qualname__, str(w.message)) for w in caught]
    return {"bad": bad, "raws": raws, "encoded": encoded, "warnings": seen, "size": len(cells)}


def encode(x: torch.Tensor, rows: list[int], declared: str | None) -> tuple:
    """(rows, codec, compact array, rows whose values are not finite (stored as zeros))."""
    x = x.detach().cpu()
    finite = torch.isfinite(x.flatten(1).float()).all(1) if x.dim() > 1 else torch.isfinite(x.float())
    bad = [rows[j] for j in (~finite).nonzero().flatten().tolist()]
    if bad:
        x = x.clone()
        x[~finite] = 0
    codec = choose_codec(x, declared)
    return rows, codec, codec.encode(x), bad


def _init_worker(modalities: dict[str, Modality]) -> None:
    torch.set_num_threads(1)
    _WORKER_MODALITIES.clear()
    _WORKER_MODALITIES.update(modalities)


def _worker_chunk(base_dir: Path, manifest_path: Path, cells, preprocess: set[str]) -> dict[str, Any]:
    return decode_chunk(_WORKER_MODALITIES, base_dir, manifest_path, cells, preprocess)


# ---- columns being written ------------------------------------------------------------------
class ColumnWriter:
    """One modality's rows written into the entry, widening its codec when a chunk needs it."""

    def __init__(self, writer: EntryWriter, name: str, rows: int, declared: str | None):
        self.writer, self.name, self.rows, self.declared = writer, name, rows, declared
        self.codec: Codec | None = None
        self.shape: tuple[int, ...] | None = None

    def write(self, rows: list[int], codec: Codec, values: np.ndarray) -> None:
        shape = tuple(values.shape[1:])
        if self.codec is None:
            self.codec, self.shape = codec, shape
            self.writer.create(self.name, codec.storage, (self.rows, *shape))
        elif shape != self.shape:
            raise BadManifest(f"the {self.name} plugin made examples of shape {list(shape)} and of "
                              f"{list(self.shape)}; every example must have one shape")
        wider = widen(self.codec, codec, self.declared)
        if wider != self.codec:
            self._recast(wider)
        if codec != self.codec:
            values = self.codec.encode(codec.decode(torch.from_numpy(values)))
        self.writer.arrays[self.name][np.asarray(rows)] = values

    def _recast(self, wider: Codec) -> None:
        old = self.writer.arrays.pop(self.name)
        staged = self.writer.create(self.name + ".wide", wider.storage, old.shape)
        for start in range(0, len(old), 4096):
            staged[start:start + 4096] = wider.encode(self.codec.decode(torch.from_numpy(np.array(old[start:start + 4096]))))
        staged.flush()
        del old
        self.writer.arrays.pop(self.name + ".wide")
        os.replace(self.writer.tmp / f"{self.name}.wide.npy", self.writer.tmp / f"{self.name}.npy")
        self.writer.arrays[self.name] = np.load(self.writer.tmp / f"{self.name}.npy", mmap_mode="r+")
        self.codec = wider


# ---- the chunks, here or in workers ---------------------------------------------------------
def _chunks(manifest: Manifest, modalities: dict[str, Modality]) -> Iterator[list[tuple[int, dict[str, str]]]]:
    for start in range(0, len(manifest), CHUNK):
        out = []
        for i in range(start, min(start + CHUNK, len(manifest))):
            row = manifest.rows[i]
            cells = {}
            for name, mod in modalities.items():
                cell = row.get(name, "") or ""
                cell = cell.strip() if mod.cell_is_path else cell
                if cell != "":
                    cells[name] = cell
            out.append((i, cells))
        yield out


def _results(manifest: Manifest, modalities: dict[str, Modality], preprocess: set[str],
             workers: int) -> Iterator[dict[str, Any]]:
    """Every chunk's result, those of the parallel modalities from a pool of ``workers``."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin" else "spawn"
    here = {m: mod for m, mod in modalities.items()
            if workers < 2 or not _parallel_ok(mod) or (method == "spawn" and not _picklable(mod))}
    away = {m: mod for m, mod in modalities.items() if m not in here}
    base, path = manifest.base_dir, manifest.path
    if not away:
        for cells in _chunks(manifest, modalities):
            yield decode_chunk(here, base, path, cells, preprocess)
        return
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                                initializer=_init_worker, initargs=(away,)) as pool:
        pending: set[concurrent.futures.Future] = set()
        for cells in _chunks(manifest, modalities):
            only_away = [(i, {m: c for m, c in row.items() if m in away}) for i, row in cells]
            pending.add(pool.submit(_worker_chunk, base, path, only_away, preprocess & set(away)))
            if here:       # rows are counted as the workers finish them
                yield {**decode_chunk(here, base, path, [(i, {m: c for m, c in row.items() if m in here})
                                                         for i, row in cells], preprocess), "size": 0}
            while len(pending) >= 2 * workers:
                done, pending = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
                for future in done:
                    yield future.result()
        for future in concurrent.futures.as_completed(pending):
            yield future.result()


def _picklable(mod: Modality) -> bool:
    """Whether ``mod`` can be sent to a worker process (serialised only, never read back here)."""
    from multiprocessing.reduction import ForkingPickler
    try:
        ForkingPickler.dumps(mod)
    except Exception:
        return False
    return True


class _PerRow:
    """The chunk results in lists, then a None per further row, so a progress bar counts rows
    (a result of size 0, rows another result counts, waits for the next one)."""

    def __init__(self, results: Iterator[dict[str, Any]], rows: int):
        self.results, self.rows = results, rows

    def __len__(self) -> int:
        return self.rows

    def __iter__(self):
        waiting: list[dict[str, Any]] = []
        for result in self.results:
            waiting.append(result)
            if result["size"]:
                yield waiting
                waiting = []
                yield from [None] * (result["size"] - 1)
        if waiting:
            yield waiting


# ---- a whole load -----------------------------------------------------------------------------
def load_cached(manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str,
                fit_rows: Callable[[list[int]], list[int]] | None, fit_key: Any,
                progress, workers: int | None = None):
    """:func:`.dataset.load_tensors` through the cache; None when the cache is off or cannot
    be written (the caller then decodes in memory)."""
    t0 = time.perf_counter()
    root = cache_root(manifest.path)
    if root is None:
        return None
    source = source_key(manifest, modalities)
    fitting = fit_rows is not None
    states = None if fitting else {m: mod.state() for m, mod in modalities.items()}
    entry = find_entry(root, source, states=states, fit=fit_key if fitting else None)
    if entry is not None:
        return from_entry(entry, manifest, modalities, on_bad_input, fitting, reused=True, since=t0)
    try:
        writer = EntryWriter(root)
    except OSError:
        return None
    try:
        entry = _decode(writer, manifest, modalities, on_bad_input, fit_rows, fit_key, source, progress,
                        default_workers() if workers is None else workers)
    except OSError as exc:
        writer.discard()
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        raise UsageError(f"cannot write the data cache in {root} ({exc.strerror or exc}); set "
                         f"POLYVAE_DATA_CACHE to another folder, or to off to decode in memory") from None
    except BaseException:
        writer.discard()
        raise
    return from_entry(entry, manifest, modalities, on_bad_input, fitting, reused=False, since=t0)


def _decode(writer: EntryWriter, manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str,
            fit_rows, fit_key, source: str, progress, workers: int) -> Entry:
    from .dataset import _fail, _no_usable_rows

    t0 = time.perf_counter()
    n, order = len(manifest), {m: k for k, m in enumerate(modalities)}
    notes_before = {m: set(mod.notes()) for m, mod in modalities.items()}
    fitting = fit_rows is not None
    later = {m for m, mod in modalities.items() if fitting and _needs_fit(mod)}
    columns = {m: ColumnWriter(writer, m, n, getattr(mod, "cache_dtype", None)) for m, mod in modalities.items()}
    workers = workers if n >= PARALLEL_MIN_ROWS and any(_parallel_ok(m) for m in modalities.values()) else 0
    read_bad: list[tuple] = []
    prep_bad: dict[str, set[int]] = {m: set() for m in modalities}
    have: dict[str, set[int]] = {m: set() for m in modalities}
    raws: dict[str, dict[int, Any]] = {m: {} for m in later}
    seen_warnings: list[tuple] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = _results(manifest, modalities, set(modalities) - later, workers)
        for chunk in progress(_PerRow(results, n), "decoding"):
            for result in chunk or ():
                _take(result, columns, have, raws, prep_bad, read_bad, seen_warnings)
        read_bad.sort(key=lambda e: (e[2], order[e[3]]))
        read_errors = [BadInput(*e) for e in read_bad]
        if on_bad_input != "skip":
            _fail(read_errors)
        bad_rows = {e[2] - 1 for e in read_bad}
        kept = [i for i in range(n) if i not in bad_rows and any(i in have[m] for m in modalities)]
        if not kept:
            _no_usable_rows(manifest, modalities, read_errors)
        for name in modalities:
            if not any(i in have[name] for i in kept):
                raise BadManifest(f"{manifest.path}: column '{name}' has no usable cell")
        if later:
            chosen = set(fit_rows(kept))
            for name in modalities:
                if name not in later:
                    continue
                mod = modalities[name]
                values = [raws[name][i] for i in kept if i in chosen and i in raws[name]]
                mod.fit(values or [raws[name][i] for i in kept if i in raws[name]])
                rows = [i for i in kept if i in raws[name]]
                for start in range(0, len(rows), CHUNK):
                    part = rows[start:start + CHUNK]
                    got, codec, compact, bad = encode(mod.preprocess([raws[name][i] for i in part]), part,
                                                      getattr(mod, "cache_dtype", None))
                    columns[name].write(got, codec, compact)
                    prep_bad[name].update(bad)
                del raws[name]
        seen_warnings += [(w.category.__module__, w.category.__qualname__, str(w.message)) for w in caught]
    _warn_again(seen_warnings)
    kept_set = set(kept)
    prep_errors = sorted((BadInput("non-finite values (NaN or inf) after preprocessing",
                                   file=_file(manifest, modalities[m], m, i), row=i + 1, modality=m)
                          for m, rows in prep_bad.items() for i in rows if i in kept_set),
                         key=lambda e: (e.row or 0, e.modality or ""))
    if on_bad_input != "skip":
        _fail(prep_errors)
    dropped = {e.row - 1 for e in prep_errors}
    if dropped:
        kept = [i for i in kept if i not in dropped]
        if not kept:
            _no_usable_rows(manifest, modalities, prep_errors)
    present = np.array([[i in have[m] for i in kept] for m in modalities], dtype=bool).reshape(len(modalities), -1)
    for k, name in enumerate(modalities):
        if not present[k].any():
            raise BadManifest(f"{manifest.path}: column '{name}' has no usable cell")
    writer.save("kept", np.asarray(kept, dtype=np.int64))
    writer.save("present", present)
    notes = [note for m, mod in modalities.items() for note in mod.notes() if note not in notes_before[m]]
    meta = {"source": source, "manifest": str(manifest.path.resolve()), "rows": n,
            "modalities": list(modalities), "codecs": {m: c.codec.to_json() for m, c in columns.items()},
            "states": {m: mod.state() for m, mod in modalities.items()},
            "fits": [plain(fit_key)] if fitting else [],
            "read_bad": [list(e) for e in read_bad], "prep_bad": [[e.reason, e.file, e.row, e.modality]
                                                                  for e in prep_errors],
            "notes": notes, "warnings": [list(w) for w in dict.fromkeys(seen_warnings)],
            "decode_seconds": time.perf_counter() - t0, "workers": workers}
    path = writer.commit(meta)
    entry = read_entry(path, source)
    if entry is None:
        raise OSError(f"the data cache entry {path} could not be read back")
    return entry


def _take(result: dict[str, Any], columns: dict[str, ColumnWriter], have: dict[str, set[int]],
          raws: dict[str, dict[int, Any]], prep_bad: dict[str, set[int]], read_bad: list, seen: list) -> None:
    """One chunk's result into the columns being written and the running lists."""
    read_bad += result["bad"]
    seen += result["warnings"]
    for m, values in result["raws"].items():
        have[m].update(values)
        if m in raws:
            raws[m].update(values)
    for m, (rows, codec, values, bad) in result["encoded"].items():
        columns[m].write(rows, codec, values)
        prep_bad[m].update(bad)


def _file(manifest: Manifest, mod: Modality, name: str, i: int) -> Path:
    from .dataset import _cell_file
    return _cell_file(manifest, mod, manifest.rows[i].get(name, "") or "")


def _warn_again(seen: list[tuple]) -> None:
    """Warnings raised while decoding (in workers, or recorded on the first decode), once each."""
    for module, qualname, message in dict.fromkeys(tuple(w) for w in seen):
        try:
            category = importlib.import_module(module)
            for part in qualname.split("."):
                category = getattr(category, part)
            if not (isinstance(category, type) and issubclass(category, Warning)):
                raise TypeError
        except (ImportError, AttributeError, TypeError):
            category = UserWarning
        try:
            warnings.warn(category(message), stacklevel=4)
        except TypeError:
            warnings.warn(message, UserWarning, stacklevel=4)


def from_entry(entry: Entry, manifest: Manifest, modalities: dict[str, Modality], on_bad_input: str,
               fitting: bool, reused: bool, since: float | None = None):
    """The entry's rows as :class:`.dataset.TensorData` (memory-mapped, decoded per read)."""
    from .dataset import TensorData, _fail

    meta = entry.meta
    if reused and fitting:
        for m, mod in modalities.items():
            mod.load_state(meta["states"][m])
    read_bad = [BadInput(*e) for e in meta["read_bad"]]
    prep_bad = [BadInput(*e) for e in meta["prep_bad"]]
    if on_bad_input != "skip":
        _fail(read_bad)
        _fail(prep_bad)
    if reused:
        _warn_again(meta.get("warnings", []))
    kept = np.array(entry.array("kept"))
    present = np.array(entry.array("present"))
    data = {m: CachedColumn(entry.array(m), kept, Codec.from_json(meta["codecs"][m])) for m in modalities}
    masks = {m: torch.from_numpy(present[k].copy()) for k, m in enumerate(modalities)}
    rows = kept.tolist()
    metadata = {c: [manifest.rows[i].get(c, "") for i in rows] for c in manifest.columns if c not in modalities}
    skipped = sorted(read_bad + prep_bad, key=lambda e: (e.row or 0, e.modality or ""))
    info = CacheInfo(str(entry.path), reused, float(meta.get("decode_seconds", 0.0)),
                     time.perf_counter() - since if since is not None else 0.0, int(meta.get("workers", 0)))
    return TensorData(data, masks, [i + 1 for i in rows], metadata, skipped=skipped,
                      notes=list(meta.get("notes", [])), cache=info)
