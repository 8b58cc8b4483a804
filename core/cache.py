"""The on-disk data cache: preprocessed tensors in compact dtypes, memory-mapped.

A manifest's rows are decoded once into ``<manifest folder>/.polyvae-cache/<entry>/``: one
``.npy`` file per modality over all manifest rows (missing or bad cells are zeros), the kept
rows, the presence masks and a ``meta.json`` with what was learnt on the way (fitted states,
bad rows, notes). Training, ``evaluate`` and ``encode`` then read batches straight from the
memory-mapped files, so a dataset larger than memory streams from disk.

An entry is found by the identity of what it was decoded from (the modality cells of the
manifest, each referenced file's size, mtime, ctime and inode, each modality's class,
version and options, polyvae's version) and by the modalities' fitted states; see
:func:`source_key`. It is built in a hidden temporary folder and renamed into place with
its ``meta.json`` written last, so a killed decode never leaves an entry that looks valid.

Where: ``POLYVAE_DATA_CACHE`` names the cache folder (``off`` turns the cache off); by
default it is ``.polyvae-cache`` beside the manifest, or the user cache folder
(``~/.cache/polyvae/data``) when the manifest's folder is read-only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__

FORMAT = 1
META = "meta.json"
FOLDER = ".polyvae-cache"
#: entries kept per cache folder; the least recently used beyond it are removed
KEEP_ENTRIES = 8
_TMP_PREFIX = ".partial-"


# ---- compact dtypes -------------------------------------------------------------------------
@dataclass(frozen=True)
class Codec:
    """How one modality's tensors are stored: ``storage`` numpy dtype, decoded to ``dtype``
    (torch name) by :meth:`decode`; ``scale`` divides (uint8 images in [0, 1] are ``k / 255``).
    ``lossy``: float16 a modality declared close enough (``Modality.cache_dtype``)."""

    storage: str
    dtype: str
    scale: float = 1.0
    lossy: bool = False

    def encode(self, x: torch.Tensor) -> np.ndarray:
        if self.scale != 1.0:
            x = (x.float() * self.scale).round()
        if x.dtype == torch.bfloat16:
            x = x.float()
        with np.errstate(invalid="ignore", over="ignore"):
            return x.numpy().astype(self.storage)

    def decode(self, stored: torch.Tensor) -> torch.Tensor:
        out = stored.to(getattr(torch, self.dtype))
        return out / self.scale if self.scale != 1.0 else out

    def exact(self, x: torch.Tensor) -> bool:
        """True when ``x`` round-trips bit for bit (a lossy float16: when it stays finite)."""
        if self.lossy:
            return bool(torch.isfinite(x.half()).all())
        return torch.equal(self.decode(torch.from_numpy(self.encode(x))), x)

    def to_json(self) -> dict[str, Any]:
        return {"storage": self.storage, "dtype": self.dtype, "scale": self.scale, "lossy": self.lossy}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Codec":
        return cls(raw["storage"], raw["dtype"], float(raw.get("scale", 1.0)), bool(raw.get("lossy")))


_INTS = ("uint8", "int8", "int16", "int32", "int64")
_FLOAT_STORAGE = {"float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "float32"}


def candidates(dtype: torch.dtype, declared: str | None = None) -> list[Codec]:
    """Codecs to try for tensors of ``dtype``, smallest first; the last one always fits."""
    name = str(dtype).removeprefix("torch.")
    if dtype == torch.bool:
        return [Codec("bool", name)]
    if not dtype.is_floating_point:
        size = torch.empty((), dtype=dtype).element_size()
        return [Codec(s, name) for s in _INTS if np.dtype(s).itemsize <= size]
    out = [Codec("uint8", name, 255.0), Codec("float16", name)]
    if declared == "float16":
        out.append(Codec("float16", name, lossy=True))
    return out + [Codec(_FLOAT_STORAGE.get(name, "float64"), name)]


def choose_codec(x: torch.Tensor, declared: str | None = None) -> Codec:
    """The smallest codec of :func:`candidates` that holds ``x`` exactly (or as declared)."""
    options = candidates(x.dtype, declared)
    return next((c for c in options[:-1] if c.exact(x)), options[-1])


def widen(current: Codec, chunk: Codec, declared: str | None = None) -> Codec:
    """A codec that holds what ``current`` and ``chunk`` each hold."""
    if current == chunk:
        return current
    dtype = getattr(torch, current.dtype)
    if not dtype.is_floating_point:
        return Codec(str(np.promote_types(current.storage, chunk.storage)), current.dtype)
    options = candidates(dtype, declared)
    later = max(options.index(current), options.index(chunk))
    # values k/255 are not all float16-exact: past uint8, a float column goes to float16
    # only where the modality declared that close enough
    if options[later].storage == "float16" and not options[later].lossy and current.scale != chunk.scale:
        later += 1
    return options[later]


# ---- memory-mapped columns ------------------------------------------------------------------
class CachedColumn:
    """One modality's rows, decoded from the compact store on every read: ``column[idx]``
    (an int, a slice, a list, a long or bool tensor) is a tensor like the in-memory one."""

    def __init__(self, store: np.ndarray | torch.Tensor, index: np.ndarray, codec: Codec):
        self.store, self.index, self.codec = store, np.asarray(index, dtype=np.int64), codec

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.store.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.codec.dtype)

    @property
    def device(self) -> torch.device:
        return self.store.device if isinstance(self.store, torch.Tensor) else torch.device("cpu")

    def __len__(self) -> int:
        return len(self.index)

    def _positions(self, key: Any) -> np.ndarray | int:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.dim() == 0
                                                  and not key.is_floating_point() and key.dtype != torch.bool):
            k = int(key)
            if not -len(self.index) <= k < len(self.index):
                raise IndexError(f"row {k} of {len(self.index)}")
            return k % len(self.index)
        if isinstance(key, slice):
            return np.arange(len(self.index))[key]
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        key = np.asarray(key)
        if key.dtype == bool:
            return np.flatnonzero(key)
        return key.astype(np.int64)

    def __getitem__(self, key: Any) -> torch.Tensor:
        positions = self._positions(key)
        if isinstance(positions, int):
            return self[np.array([positions])][0]
        rows = self.index[positions]
        if isinstance(self.store, torch.Tensor):
            return self.codec.decode(self.store[torch.from_numpy(rows).to(self.store.device)])
        return self.codec.decode(torch.from_numpy(np.ascontiguousarray(self.store[rows])))

    def take(self, positions: Any) -> "CachedColumn":
        """The rows at ``positions``, still on disk (nothing is read)."""
        return CachedColumn(self.store, self.index[self._positions(positions)], self.codec)

    def materialize(self) -> torch.Tensor:
        return self[slice(None)]

    # anything else a tensor does, on the whole column read into memory
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("store", "index", "codec"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def real(v: Any) -> Any:
            if isinstance(v, CachedColumn):
                return v.materialize()
            if isinstance(v, (list, tuple)):
                return type(v)(real(x) for x in v)
            return v
        return func(*real(args), **{k: real(v) for k, v in (kwargs or {}).items()})

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.materialize().numpy()
        return array if dtype is None else array.astype(dtype)

    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The whole column as an in-memory tensor (what ``tensor.to`` would give)."""
        return self.materialize().to(device, *args, **kwargs)

    def float(self) -> torch.Tensor:
        return self.materialize().float()

    def on(self, device: torch.device) -> "CachedColumn":
        """The compact rows copied to ``device`` (a GPU), decoded there per batch."""
        if torch.device(device).type == "cpu":
            return self
        rows = torch.from_numpy(np.ascontiguousarray(self.store[self.index]))
        return CachedColumn(rows.to(device), np.arange(len(self.index)), self.codec)


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


def file_identity(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return ["missing"]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def source_key(manifest, modalities: dict[str, Any]) -> str:
    """Digest of everything the decoded data depends on, but the fitted states."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "polyvae": __version__, "rows": len(manifest),
                         "modalities": [[name, type(mod).__module__, type(mod).__qualname__,
                                         str(getattr(mod, "version", "")), mod.options]
                                        for name, mod in modalities.items()]},
                        sort_keys=True, default=str).encode())
    for name, mod in modalities.items():
        for cell in manifest.column(name):
            h.update(b"\x00" + cell.encode("utf-8", "surrogatepass"))
            if mod.cell_is_path and cell.strip():
                h.update(json.dumps(file_identity(manifest.base_dir / cell.strip())).encode())
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
    staged = entry.path / f".{META}.{os.getpid()}"
    staged.write_text(json.dumps(meta, sort_keys=True, default=str), encoding="utf-8")
    os.replace(staged, entry.path / META)


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
