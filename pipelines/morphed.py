"""What ``Run.morph`` returns: the morphed recording and where it went."""
from __future__ import annotations

from polyvae.core.sound import Audio


class Morphed(Audio):
    """A morphed recording (an :class:`Audio`), with where it went: the singer, the amount,
    the voice distance to the singer before and after, and the file when written."""

    def __init__(self, result):
        super().__init__(result.audio.samples, result.audio.sample_rate)
        self.toward = result.singer
        self.amount = result.amount
        self.distance_before = result.distance_before
        self.distance_after = result.distance_after
        self.path = result.path
        self.windows = result.windows
        self.warnings = list(result.warnings)
        self.summary = result.to_json()
