"""Voice: singer embeddings, voice interpolation, matching and morphing, voice features."""


from polyvae.core.errors import PolyvaeWarning


class VoiceWarning(PolyvaeWarning):
    """A voice result the user should not trust without knowing: a morph that moved away from
    its target, a path that is not monotone, a recording that was cut."""


def warn_all(messages) -> None:
    """Each message as a :class:`VoiceWarning` (what a notebook shows)."""
    import warnings
    for message in messages:
        warnings.warn(message, VoiceWarning, stacklevel=3)
