"""Running the real ``polyvae`` entry point in-process and capturing what a user would see."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from polyvae.pipelines.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def polyvae(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())
