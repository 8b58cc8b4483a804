"""Text that repeats itself: what an undertrained autoregressive decoder produces
("The triangle triangle triangle ...", "re   re   re ...")."""
from __future__ import annotations

import re

#: a stretch of two or more characters (not only spaces) said three or more times in a row
_LOOP = re.compile(r"(\s*\S.*?)\1{2,}", re.DOTALL)
#: loops in decoded texts above this share, and clearly above the real texts' share, are a symptom
LOOPING_SHARE = 0.25


def loop_in(text: str) -> str | None:
    """The repeated unit of the first loop in ``text`` (two or more characters, three or
    more times in a row), or None."""
    for match in _LOOP.finditer(text):
        unit = match.group(1)
        if len(unit) >= 2:
            return unit
    return None


def looping_share(texts: list[str]) -> float:
    return sum(loop_in(t) is not None for t in texts) / len(texts) if texts else 0.0


def shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
