"""Domain errors raised by the engine and plugins.

Only the CLI turns these into one-line messages and exit codes; the engine never
prints or exits.
"""
from __future__ import annotations

from pathlib import Path


class PolyvaeError(Exception):
    """Base class for every error a user can cause and fix."""


class BadInput(PolyvaeError):
    """A manifest cell that cannot be used: names the file (if any), the row and why.

    ``row`` is the 1-based data row of the manifest (the header is row 0), so it matches
    what a person sees when they open the CSV in a spreadsheet, minus the header line.
    """

    def __init__(self, reason: str, file: str | Path | None = None, row: int | None = None,
                 modality: str | None = None):
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.row = row
        self.modality = modality
        super().__init__(self.message())

    def located(self, *, file: str | Path | None = None, row: int | None = None,
                modality: str | None = None) -> "BadInput":
        """A copy with the location filled in where it was unknown."""
        return BadInput(self.reason, file=self.file if self.file is not None else file,
                        row=self.row if self.row is not None else row,
                        modality=self.modality or modality)

    def message(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.modality:
            where.append(f"column '{self.modality}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class BadRows(BadInput):
    """Several bad cells, listed (up to ``polyvae.core.dataset.MAX_LISTED``); located like the first of them,
    so whoever catches :class:`BadInput` still learns its file and row."""

    def __init__(self, errors: list[BadInput], total: int):
        self.errors = errors
        self.total = total
        first = errors[0]
        super().__init__(first.reason, first.file, first.row, first.modality)

    def message(self) -> str:
        if len(getattr(self, "errors", ())) <= 1:
            return super().message()
        more = self.total - len(self.errors)
        lines = [f"{self.total} bad rows:"]
        lines += [f"  {e.message()}" for e in self.errors]
        if more:
            lines.append(f"  ... and {more} more")
        return "\n".join(lines)


class BadManifest(PolyvaeError):
    """The manifest as a whole is unusable (missing, no usable rows, no known column)."""


class UnknownModality(PolyvaeError):
    """A modality name that no installed plugin provides."""


class UnknownFusion(PolyvaeError):
    """A fusion name that no installed plugin provides."""


class UnknownModel(PolyvaeError):
    """A model name (``--model``) that no installed plugin provides."""


class DuplicatePlugin(PolyvaeError):
    """Two plugins registered the same name for the same kind."""


class IncompatibleRun(PolyvaeError):
    """A run directory that cannot be loaded here: missing plugin, wrong version, bad file."""


class TrainingDiverged(PolyvaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class UsageError(PolyvaeError):
    """Arguments that do not fit together (e.g. --given with an unknown modality)."""


class PolyvaeWarning(UserWarning):
    """Something a user should know that is not an error: data read other than as written,
    or a run or a figure not to be trusted as it is. Raised with :func:`warnings.warn`, so
    the Python API shows (and lets a caller filter or catch) them like any warning, and the
    CLI prints each as one ``Warning: ...`` line on stderr."""


class DataWarning(PolyvaeWarning):
    """Input read, but not all of it as written: a column ignored, characters unknown to the
    vocabulary, a file cut to what a command processes."""


class VerdictWarning(PolyvaeWarning):
    """A trained run or an evaluation that should not be trusted as it is (undertrained,
    collapsed generations, a looping text decoder, too few rows), with what to change."""
