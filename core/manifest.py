"""The dataset format: a CSV with one column per modality plus metadata columns."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from .errors import BadManifest

#: names the voice (singer, speaker) of a row's audio clip
SPEAKER_COLUMN = "speaker"
METADATA_COLUMNS = (SPEAKER_COLUMN, "label")


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
    """Parse ``path``; every structural problem is a :class:`BadManifest` naming the file.

    Rows are numbered as records: data row 1 is the first record after the header, however
    many physical lines a quoted cell spans. Blank lines are not records.
    """
    path = Path(path)
    if not path.exists():
        raise BadManifest(f"{path}: manifest not found")
    if path.is_dir():
        raise BadManifest(f"{path}: is a folder; pass the manifest CSV inside it")
    try:
        # decoded from bytes: read_text() would turn a quoted "\r" into "\n"
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadManifest(f"{path}: not a UTF-8 text file (byte {exc.start}; is it really a CSV?)") from None
    except OSError as exc:
        raise BadManifest(f"{path}: cannot read ({exc.strerror})") from None
    if "\x00" in text:
        raise BadManifest(f"{path}: contains NUL bytes; not a CSV text file")
    # newline="" keeps \r, \u2028 and friends inside quoted cells; str.splitlines() would cut there
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = _records(reader, path)
    try:
        header = next(records)
    except StopIteration:
        raise BadManifest(f"{path}: empty manifest (no header row)") from None
    columns = [c.strip() for c in header]
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise BadManifest(f"{path}: duplicate column(s) {', '.join(repr(c) for c in dup)}")
    rows = []
    for number, cells in enumerate(records, start=1):
        if len(cells) > len(columns):
            raise BadManifest(f"{path}: row {number}: {len(cells)} cells but the header has "
                              f"{len(columns)} column{'s' if len(columns) != 1 else ''} (an unquoted comma?)")
        cells = cells + [""] * (len(columns) - len(cells))
        rows.append({c: _cell(v) for c, v in zip(columns, cells)})
    if not rows:
        raise BadManifest(f"{path}: no data rows")
    return Manifest(path=path, columns=columns, rows=rows)


def _records(reader, path: Path):
    """Non-blank records of ``reader``; a CSV syntax error names its data row and line."""
    number, line = -1, 1                       # the header is record 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = f"row {number + 1} (line {line})" if number >= 0 else f"header (line {line})"
            raise BadManifest(f"{path}: {where}: malformed CSV ({exc}"
                              + ("; an unclosed quote?" if "end of data" in str(exc) else "") + ")") from None
        line = reader.line_num + 1
        if not cells:
            continue
        number += 1
        yield cells


def write_manifest(path: str | Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
