"""The on-disk data cache: preprocessed tensors in compact dtypes (:mod:`.columns`), memory-mapped.

A manifest's rows are decoded once into ``<manifest folder>/.polyvae-cache/<entry>/``: one
``.npy`` file per modality over all manifest rows (missing or bad cells are zeros), the kept
rows, the presence masks and a ``meta.json`` with what was learnt on the way (fitted states,
bad rows, notes). Training, ``evaluate`` and ``encode`` then read batches straight from the
memory-mapped files, so a dataset larger than memory streams from disk.

An entry is found by the identity of what it was decoded from (the modality cells of the
manifest, each referenced file's size, mtime, ctime and inode, each modality's class,
version and options, the files of its plugin's folder, polyvae's version) and by the
modalities' fitted states; see
:func:`source_key`. It is built in a hidden temporary folder and renamed into place with
its ``meta.json`` written last, so a killed decode never leaves an entry that looks valid.

Where: ``POLYVAE_DATA_CACHE`` names the cache folder (``off`` turns the cache off); by
default it is ``.polyvae-cache`` beside the manifest, or the user cache folder
(``~/.cache/polyvae/data``) when the manifest's folder is read-only.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .atomic import write_text_atomic
from .columns import CachedColumn, Codec, candidates, choose_codec, widen  # noqa: F401 (re-exported)

FORMAT = 1
META = "meta.json"
FOLDER = ".polyvae-cache"
#: entries kept per cache folder; the least recently used beyond it are removed
KEEP_ENTRIES = 8
_TMP_PREFIX = ".partial-"


# ---- where entries live, and what they are keyed by ----------------------------------------
def cache_root(manifest_path: Path) -> Path | None:
    """The cache folder for a manifest, or None when the cache is off."""
    setting = os.environ.get("POLYVAE_DATA_CACHE", "").strip()
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    if setting:
        return Path(setting).expanduser() / _manifest_tag(manifest_path)
    beside = manifest_path.resolve().parent / FOLDER
    if _writable(beside):
        return beside
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polyvae" / "data"
    return user / _manifest_tag(manifest_path)


def _manifest_tag(manifest_path: Path) -> str:
    resolved = str(manifest_path.resolve())
    return f"{manifest_path.stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"


def _writable(folder: Path) -> bool:
    if folder.exists():
        return os.access(folder, os.W_OK | os.X_OK)
    return os.access(folder.parent, os.W_OK | os.X_OK)


def file_identity(path: str | Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def code_identity(mod: Any) -> list[str]:
    """The Python files of a modality's plugin folder, by size and modification time: an
    edited or upgraded plugin may preprocess differently even where its ``version`` stays."""
    try:
        folder = Path(inspect.getfile(type(mod))).parent
        return [f"{p.name}:{file_identity(p)}" for p in sorted(folder.glob("*.py"))]
    except (TypeError, OSError):
        return []


def source_key(manifest, modalities: dict[str, Any]) -> str:
    """Digest of everything the decoded data depends on, but the fitted states."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "polyvae": __version__, "rows": len(manifest),
                         "modalities": [[name, type(mod).__module__, type(mod).__qualname__,
                                         str(getattr(mod, "version", "")), mod.options, code_identity(mod)]
                                        for name, mod in modalities.items()]},
                        sort_keys=True, default=str).encode())
    base = str(manifest.base_dir)
    for name, mod in modalities.items():
        for cell in manifest.column(name):
            h.update(b"\x00" + cell.encode("utf-8", "surrogatepass"))
            if mod.cell_is_path and cell.strip():
                h.update(file_identity(os.path.join(base, cell.strip())).encode())
    return h.hexdigest()


def states_key(states: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(states, sort_keys=True, default=str).encode()).hexdigest()


# ---- entries --------------------------------------------------------------------------------
@dataclass
class Entry:
    """A complete cache entry: its folder, ``meta.json`` and memory-mapped arrays."""

    path: Path
    meta: dict[str, Any]

    def array(self, name: str) -> np.ndarray:
        return np.load(self.path / f"{name}.npy", mmap_mode="r")


def read_entry(path: Path, source: str) -> Entry | None:
    """The entry at ``path`` if it is complete and decoded from ``source``; else None."""
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("source") != source:
            return None
        entry = Entry(path, meta)
        for name, shape in meta["arrays"].items():
            if list(entry.array(name).shape) != list(shape):
                return None
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_entry(root: Path | None, source: str, states: dict[str, Any] | None = None,
               fit: Any = None) -> Entry | None:
    """A complete entry decoded from ``source``: with the fitted ``states`` given, the one of
    those states; else (the modalities still to fit) one fitted by the same ``fit`` recipe."""
    if root is None or not root.is_dir():
        return None
    if states is not None:
        names = [f"{source[:20]}-{states_key(states)[:20]}"]
    else:
        names = sorted(p.name for p in root.iterdir() if p.name.startswith(source[:20] + "-"))
    for name in names:
        entry = read_entry(root / name, source)
        if entry is None or (states is None and plain(fit) not in entry.meta.get("fits", [])):
            continue
        os.utime(entry.path / META)             # least recently used goes first
        return entry
    return None


def plain(value: Any) -> Any:
    """``value`` as it reads back from JSON."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class EntryWriter:
    """Builds an entry in a hidden temporary folder; :meth:`commit` renames it into place."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        if not (root / ".gitignore").exists():          # as .pytest_cache: never committed by mistake
            (root / ".gitignore").write_text("# written by polyvae: decoded data, safe to delete\n*\n")
        remove_stale(root)
        self.root = root
        self.tmp = root / f"{_TMP_PREFIX}{os.getpid()}-{time.time_ns()}"
        self.tmp.mkdir()
        self.arrays: dict[str, np.ndarray] = {}

    def create(self, name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        self.arrays.pop(name, None)
        self.arrays[name] = np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+",
                                                      dtype=np.dtype(dtype), shape=shape)
        return self.arrays[name]

    def save(self, name: str, values: np.ndarray) -> None:
        self.create(name, str(values.dtype), values.shape)[...] = values

    def commit(self, meta: dict[str, Any]) -> Path:
        """Flush every array, write ``meta.json`` last and rename the folder into place."""
        meta = {**meta, "format": FORMAT, "arrays": {n: list(a.shape) for n, a in self.arrays.items()}}
        for array in self.arrays.values():
            array.flush()
        for path in self.tmp.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        self.arrays.clear()
        with open(self.tmp / META, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.root / f"{meta['source'][:20]}-{states_key(meta['states'])[:20]}"
        if final.exists():        # the same rows, decoded by another process or fitted otherwise
            existing = read_entry(final, meta["source"])
            if existing is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                _add_fits(existing, meta.get("fits", []))
                return final
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(self.tmp, final)
        except OSError:                          # another process renamed its copy first
            shutil.rmtree(self.tmp, ignore_errors=True)
        _trim(self.root)
        return final

    def discard(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _add_fits(entry: Entry, fits: list[Any]) -> None:
    """Record in an entry's meta.json that fitting by ``fits`` also gives its states."""
    new = [f for f in fits if f not in entry.meta.get("fits", [])]
    if not new:
        return
    meta = {**entry.meta, "fits": entry.meta.get("fits", []) + new}
    write_text_atomic(entry.path / META, json.dumps(meta, sort_keys=True, default=str))


def remove_stale(root: Path, older_than_s: float = 6 * 3600) -> None:
    """Remove temporary folders of decodes whose process is gone (or that are old)."""
    for path in root.glob(f"{_TMP_PREFIX}*"):
        pid = path.name[len(_TMP_PREFIX):].split("-")[0]
        alive = pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid()
        try:
            old = time.time() - path.stat().st_mtime > older_than_s
        except OSError:
            continue
        if not alive or old:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _trim(root: Path) -> None:
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(_TMP_PREFIX)]
    if len(entries) <= KEEP_ENTRIES:
        return
    def used(p: Path) -> float:
        try:
            return (p / META).stat().st_mtime
        except OSError:
            return 0.0
    for old in sorted(entries, key=used)[:len(entries) - KEEP_ENTRIES]:
        shutil.rmtree(old, ignore_errors=True)
