"""Compact dtypes for preprocessed tensors, and columns read from memory-mapped files.

A :class:`Codec` stores a modality's tensors in the smallest dtype that holds them exactly
(uint8 for pixels ``k / 255``, small ints for token ids, else the tensor's own floats, or
float16 where the modality declares that close enough). A :class:`CachedColumn` is one
modality's rows on disk, decoded back to the modality's dtype whenever rows are read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


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
