"""Atomic file writes: a killed process leaves either the old file or the new one.

Every file of a run directory goes through :func:`atomic_path`: the bytes go to a hidden
temporary file in the same folder, are fsynced, and the temporary is renamed over the
target (``os.replace`` is atomic on POSIX and Windows), then the folder is fsynced so the
rename itself survives a power cut. A ``kill -9`` can only leave a stray temporary
behind, which :func:`remove_stale_temporaries` clears when the run resumes.
"""
from __future__ import annotations

import functools
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"

#: every path this process has committed through :func:`atomic_path` (the DDP test checks
#: that only rank 0 writes the run directory)
_WRITTEN: list[str] = []


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:          # not possible on every platform (Windows); the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over it.

    If the body raises, the temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())            # mkstemp makes 0600; use the usual mode
        os.replace(tmp, path)
        _fsync_folder(path.parent)
        _WRITTEN.append(str(path.resolve()))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def written_paths() -> list[str]:
    """Paths this process committed with :func:`atomic_path`, oldest first (duplicates kept)."""
    return list(_WRITTEN)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporaries a killed writer left in ``folder`` and its sub-folders; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def append_line(path: str | Path, line: str) -> None:
    """Append one line and fsync (metrics.jsonl: a torn last line is ignored on read)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())
