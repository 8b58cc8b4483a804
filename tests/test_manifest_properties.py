"""Property tests of manifest parsing: any cell text round-trips, empty cells are missing,
and errors name the right row however the rows before it are written."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from polyvae.core.dataset import read_cells
from polyvae.core.errors import BadInput, BadManifest
from polyvae.core.manifest import read_manifest, write_manifest
from polyvae.core.modality import Modality

FAST = settings(derandomize=True, max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# any text a UTF-8 file can hold, except NUL (a manifest with NUL is refused as binary)
cell_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
tricky = st.sampled_from(["", ",", '"', '""', "\n", "\r", "\r\n", " ", "a,b", 'say "hi"', "\u2028",
                          "\x85", "\x1c", "\ufeff", "é", "日本語", "🙂", "line1\nline2", "tab\there"])
cells = st.one_of(tricky, cell_text)
# no ";": a one-column header "a;b" is read as two ";"-separated columns (test_bad_input.py)
column_name = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc"), blacklist_characters="\ufeff;"),
                      min_size=1, max_size=8).filter(lambda c: c.strip() == c)


@st.composite
def manifests(draw, min_rows: int = 1):
    columns = draw(st.lists(column_name, min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(st.fixed_dictionaries({c: cells for c in columns}), min_size=min_rows, max_size=8))
    return columns, rows


_FOLDER: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _folder(tmp_path_factory):
    _FOLDER[:] = [tmp_path_factory.mktemp("manifests")]
    yield


def _write(columns, rows) -> Path:
    """Write a manifest over the one before (hypothesis runs many examples per test)."""
    path = _FOLDER[0] / "manifest.csv"
    write_manifest(path, rows, columns)
    return path


@FAST
@given(manifests())
def test_any_cell_text_round_trips(manifest):
    columns, rows = manifest
    parsed = read_manifest(_write(columns, rows))
    assert parsed.columns == columns
    assert parsed.rows == rows


class Echo(Modality):
    """A text-like modality whose raw value is the cell itself."""

    name = "echo"
    extension = "txt"
    cell_is_path = False

    def read(self, cell, base_dir):
        if cell == "BAD":
            raise BadInput("marked bad")
        return cell

    def preprocess(self, raws): raise NotImplementedError
    def build_encoder(self, latent_dim): raise NotImplementedError
    def build_decoder(self, input_dim): raise NotImplementedError
    def log_likelihood(self, params, x): raise NotImplementedError
    def generate(self, decoder, h): raise NotImplementedError
    def render(self, x, path): raise NotImplementedError


class PathEcho(Echo):
    cell_is_path = True


@FAST
@given(st.lists(st.sampled_from(["", " ", "  \t", "x", " y ", "BAD"]), min_size=1, max_size=10))
def test_empty_cells_are_missing_and_only_empty_cells(values):
    path = _write(["echo", "label"], [{"echo": v, "label": "L"} for v in values])
    manifest = read_manifest(path)
    assert manifest.column("echo") == values
    if any(v not in ("", "BAD") for v in values):
        raws, kept, bad = read_cells(manifest, {"echo": Echo()}, on_bad_input="skip")
        # text cells: only "" is missing; whitespace reaches the plugin (which may refuse it)
        assert sorted(raws["echo"]) == [i for i, v in enumerate(values) if v not in ("", "BAD")]
        assert kept == sorted(raws["echo"])
        assert [e.row for e in bad] == [i + 1 for i, v in enumerate(values) if v == "BAD"]
    # path cells: surrounding whitespace is not part of a path, so a blank one is missing
    present = [i for i, v in enumerate(values) if v.strip() not in ("", "BAD")]
    if present:
        raws, kept, _ = read_cells(manifest, {"echo": PathEcho()}, on_bad_input="skip")
        assert sorted(raws["echo"]) == present
        assert all(raws["echo"][i] == values[i].strip() for i in present)


@FAST
@given(manifests(min_rows=1), st.data())
def test_a_bad_cell_is_reported_at_its_row(manifest, data):
    columns, rows = manifest
    assume("echo" not in columns)
    rows = [{**r, "echo": "ok"} for r in rows]
    k = data.draw(st.integers(1, len(rows)), label="bad row")
    rows[k - 1]["echo"] = "BAD"
    parsed = read_manifest(_write(columns + ["echo"], rows))
    with pytest.raises(BadInput) as err:
        read_cells(parsed, {"echo": Echo()})
    assert err.value.row == k and f", row {k}, column 'echo': marked bad" in str(err.value)


def _csv_line(values) -> str:
    return ",".join('"' + v.replace('"', '""') + '"' for v in values)


@FAST
@given(manifests(min_rows=1), st.data())
def test_extra_cells_are_reported_at_their_row(manifest, data):
    columns, rows = manifest
    k = data.draw(st.integers(1, len(rows)), label="row with an extra cell")
    lines = [_csv_line(columns)]
    for number, row in enumerate(rows, start=1):
        values = [row[c] for c in columns] + (["surplus"] if number == k else [])
        lines.append(_csv_line(values))
        if data.draw(st.booleans(), label="blank line after"):
            lines.append("")
    path = _write(["x"], [{"x": "1"}])
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    with pytest.raises(BadManifest) as err:
        read_manifest(path)
    assert f"row {k}: {len(columns) + 1} cells" in str(err.value)


@FAST
@given(manifests(min_rows=1), st.data())
def test_an_unclosed_quote_is_reported_at_the_row_it_opens(manifest, data):
    columns, rows = manifest
    k = data.draw(st.integers(1, len(rows)), label="row with an unclosed quote")
    lines = [_csv_line(columns)] + [_csv_line([r[c] for c in columns]) for r in rows[:k - 1]]
    lines.append('"never closed,' + ",".join("x" for _ in columns[1:]))
    path = _write(["x"], [{"x": "1"}])
    path.write_text("\n".join(lines) + "\nmore,text\n", encoding="utf-8")
    with pytest.raises(BadManifest) as err:
        read_manifest(path)
    assert f"row {k} (line" in str(err.value) and "malformed CSV" in str(err.value)


@FAST
@given(st.lists(column_name, min_size=1, max_size=4, unique=True), st.data())
def test_duplicate_columns_are_refused(columns, data):
    dup = data.draw(st.sampled_from(columns))
    path = _write(["x"], [{"x": "1"}])
    path.write_text(_csv_line(columns + [f" {dup} "]) + "\n" + _csv_line(["v"] * (len(columns) + 1)) + "\n",
                    encoding="utf-8")
    with pytest.raises(BadManifest, match="duplicate column"):
        read_manifest(path)


@FAST
@given(st.binary(min_size=1, max_size=64))
def test_arbitrary_bytes_are_a_manifest_or_a_bad_manifest(blob):
    path = _write(["x"], [{"x": "1"}])
    path.write_bytes(blob)
    try:
        parsed = read_manifest(path)
    except BadManifest as err:
        assert str(path) in str(err) and "\n" not in str(err)
    else:
        assert parsed.rows and all(set(r) == set(parsed.columns) for r in parsed.rows)
