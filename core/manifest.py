"""The dataset format: a CSV with one column per modality plus metadata columns."""
from __future__ import annotations

import codecs
import csv
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import BadManifest, DataWarning

#: names the voice (singer, speaker) of a row's audio clip
SPEAKER_COLUMN = "speaker"
METADATA_COLUMNS = (SPEAKER_COLUMN, "label")


@dataclass
class Manifest:
    """Rows of a manifest. ``rows[i]`` is data row ``i + 1`` (the header is row 0)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    #: how the file was read (:func:`decode_text`, :func:`sniff_delimiter`)
    encoding: str = "utf-8"
    delimiter: str = ","

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        return [r.get(name, "") or "" for r in self.rows]

    def has(self, name: str) -> bool:
        return name in self.columns


#: what a manifest that is not UTF-8 is read as, in order: Excel's "CSV" on Windows in
#: western Europe and the Americas, then ISO 8859-1 (which accepts any byte)
FALLBACK_ENCODINGS = (("cp1252", "Windows-1252 (cp1252)"), ("latin-1", "Latin-1 (ISO 8859-1)"))
#: a header line with none of these commas but one of these is split there instead
OTHER_DELIMITERS = (";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


def decode_text(raw: bytes, path: Path) -> tuple[str, str]:
    """The manifest's text and the encoding it was read with: UTF-8 (with or without a BOM),
    UTF-16 with a BOM, else Windows-1252 or Latin-1 with a :class:`DataWarning` naming the
    encoding. A file with NUL bytes (and no UTF-16 BOM) is not text."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise BadManifest(f"{path}: starts like UTF-16 but byte {exc.start} is not") from None
    if b"\x00" in raw:
        raise BadManifest(f"{path}: not a text file (a NUL byte at byte {raw.index(0)}; is it really a CSV?)")
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        bad = exc.start
    for encoding, label in FALLBACK_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        warnings.warn(DataWarning(
            f"{path} is not UTF-8 (byte {bad} is 0x{raw[bad]:02x}); read it as {label}. If accented "
            f"letters come out wrong, save it as UTF-8 (Excel: \"CSV UTF-8\")"), stacklevel=3)
        return text, encoding
    raise AssertionError("latin-1 decodes every byte")


def sniff_delimiter(text: str) -> str:
    """``,`` unless the header line has no comma and splits at ``;`` (or a tab) into two or
    more named columns (Excel writes ``;`` in locales whose decimal mark is a comma). So a
    one-column header with a ``;`` in its name reads as ``;``-separated."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    if "," in header:
        return ","
    for delimiter in OTHER_DELIMITERS:
        try:
            names = next(csv.reader([header], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        if len(names) >= 2 and all(n.strip() for n in names):
            return delimiter
    return ","


def _folded(name: str) -> str:
    return "".join(name.lower().split()).replace("_", "").replace("-", "")


def near_misses(columns: list[str], names) -> dict[str, str]:
    """Columns that would be one of ``names`` but for case, spaces, ``_`` or ``-`` (``Text``,
    ``IMAGE``, ``Speaker ``), each with the name it resembles; only where that name is not a
    column itself."""
    by_fold = {_folded(n): n for n in names}
    return {c: by_fold[_folded(c)] for c in columns
            if c not in by_fold.values() and _folded(c) in by_fold and by_fold[_folded(c)] not in columns}


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
        raw = path.read_bytes()
    except OSError as exc:
        raise BadManifest(f"{path}: cannot read ({exc.strerror})") from None
    text, encoding = decode_text(raw, path)
    delimiter = sniff_delimiter(text)
    # newline="" keeps \r, \u2028 and friends inside quoted cells; str.splitlines() would cut there
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, delimiter=delimiter)
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
                              f"{len(columns)} column{'s' if len(columns) != 1 else ''} (an unquoted "
                              f"{DELIMITER_NAMES.get(delimiter, repr(delimiter))}?)")
        cells = cells + [""] * (len(columns) - len(cells))
        rows.append({c: _cell(v) for c, v in zip(columns, cells)})
    if not rows:
        raise BadManifest(f"{path}: no data rows")
    return Manifest(path=path, columns=columns, rows=rows, encoding=encoding, delimiter=delimiter)


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
