"""Interpolation paths for the report: folders written by ``polyvae interpolate`` (voices or
images: ``step_00.wav``/``step_00.png``..., ``path.json``, strip PNGs) and fresh latent paths.

Each becomes an :class:`InterpolationView`: per step an image (the step's PNG, or the
spectrogram of its audio), an audio clip and a text, whichever exist.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .samples import Rendered

STEP_FILE = re.compile(r"^step_(\d+)\.([A-Za-z0-9]+)$")
INTERPOLATION = "interpolation"


@dataclass
class Step:
    alpha: float | None
    items: dict[str, Rendered] = field(default_factory=dict)      # kind -> rendered


@dataclass
class InterpolationView:
    title: str
    steps: list[Step]
    strips: list[tuple[str, bytes]] = field(default_factory=list)   # (file name, PNG bytes)
    note: str = ""

    def kinds(self) -> list[str]:
        return [k for k in ("image", "audio", "text") if any(k in s.items for s in self.steps)]


def find_folders(run_dir: Path, extra: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """``extra`` folders, ``RUN/interpolation`` itself and every ``RUN/interpolation/*/`` holding steps."""
    candidates = [Path(p) for p in extra]
    root = Path(run_dir) / INTERPOLATION
    if root.is_dir():
        candidates.append(root)
        candidates += sorted(p for p in root.iterdir() if p.is_dir())
    seen, out = set(), []
    for folder in candidates:
        key = folder.resolve()
        if key not in seen and folder.is_dir() and any(STEP_FILE.match(p.name) for p in folder.iterdir()):
            seen.add(key)
            out.append(folder)
    return out


def read_folder(folder: Path) -> InterpolationView:
    """The steps of an interpolation folder, in order, with alphas from ``path.json`` when present."""
    record = {}
    path_json = folder / "path.json"
    if path_json.exists():
        try:
            record = json.loads(path_json.read_text())
        except json.JSONDecodeError:
            record = {}
    by_index: dict[int, dict[str, Rendered]] = {}
    for file in sorted(folder.iterdir()):
        match = STEP_FILE.match(file.name)
        if match and file.is_file():
            item = Rendered(match.group(2), file.read_bytes())
            if item.kind in ("image", "audio", "text"):
                by_index.setdefault(int(match.group(1)), {}).setdefault(item.kind, item)
    alphas = record.get("alpha") or record.get("alphas") or []
    steps = []
    for k, index in enumerate(sorted(by_index)):
        alpha = alphas[k] if k < len(alphas) and isinstance(alphas[k], (int, float)) else None
        steps.append(Step(alpha, by_index[index]))
    strips = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.png")) if not STEP_FILE.match(p.name)]
    ends = [str(record[k]) for k in ("from", "to") if record.get(k)]
    title = folder.name + (f": {Path(ends[0]).name} \u2192 {Path(ends[1]).name}" if len(ends) == 2 else "")
    note = f"{record['path']} path" if isinstance(record.get("path"), str) else ""
    content = record.get("content")
    if content:
        note += (", " if note else "") + f"content held fixed: {content}"
    return InterpolationView(title, steps, strips, note)


def from_steps(title: str, alphas: list[float], steps: list[dict[str, Rendered]], note: str = "") -> InterpolationView:
    """A view of a freshly decoded path (``steps[k]``: modality -> rendered)."""
    view_steps = []
    for alpha, decoded in zip(alphas, steps):
        items: dict[str, Rendered] = {}
        for item in decoded.values():
            items.setdefault(item.kind, item)
        view_steps.append(Step(alpha, items))
    return InterpolationView(title, view_steps, [], note)
