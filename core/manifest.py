"""The dataset format: a CSV with one column per modality plus metadata columns."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .errors import BadManifest

METADATA_COLUMNS = ("speaker", "label")


@dataclass
class Manifest:
    """Rows of a manifest. ``rows[i]`` is data row ``i + 1`` (the header is row 0)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        return [r.get(name, "") or "" for r in self.rows]

    def has(self, name: str) -> bool:
        return name in self.columns


def _cell(value: str | None) -> str:
    """A cell as written; only a cell with nothing at all in it means "missing".

    Whitespace is kept so that a text cell of only spaces reaches the text plugin and is
    reported as an empty text rather than silently treated as missing.
    """
    return value or ""


def read_manifest(path: str | Path) -> Manifest:
    """Parse ``path``; every structural problem is a :class:`BadManifest` naming the file."""
    path = Path(path)
    if not path.exists():
        raise BadManifest(f"{path}: manifest not found")
    if path.is_dir():
        raise BadManifest(f"{path}: is a folder; pass the manifest CSV inside it")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadManifest(f"{path}: not a UTF-8 text file (is it really a CSV?)") from None
    except OSError as exc:
        raise BadManifest(f"{path}: cannot read ({exc.strerror})") from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise BadManifest(f"{path}: empty manifest (no header row)")
    columns = [c.strip() for c in reader.fieldnames]
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise BadManifest(f"{path}: duplicate column(s) {', '.join(dup)}")
    rows = []
    try:
        for number, raw in enumerate(reader, start=1):
            if None in raw:
                raise BadManifest(f"{path}: row {number}: more cells than header columns")
            rows.append({k.strip(): _cell(v) for k, v in raw.items() if k is not None})
    except csv.Error as exc:
        raise BadManifest(f"{path}: row {reader.line_num - 1}: malformed CSV ({exc})") from None
    if not rows:
        raise BadManifest(f"{path}: no data rows")
    return Manifest(path=path, columns=columns, rows=rows)


def write_manifest(path: str | Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
