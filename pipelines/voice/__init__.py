"""Voice: singer embeddings, voice interpolation, matching and morphing, voice features."""


from polyvae.core.errors import PolyvaeWarning

#: how far past the target a morph may go: ``amount`` above 1 extrapolates along the line from
#: the recording's voice through the target's (a caricature of the difference). A decoder
#: renders a voice latent less distinctly than it encodes it, so an ear hears the target more
#: often there (docs/voice.md: 0.56 at 1, 0.69 at 1.5, 0.74 at 2 on the real-voice benchmark).
MAX_AMOUNT = 2.0
#: how far each converted frame moves toward the target's own frames that say the same thing
#: (:mod:`.frames`; 0: the decoder alone). docs/voice.md, real-voice benchmark: heard as the
#: target 0.714 (none) -> 0.887 (half) -> 0.940 (three quarters), real to real 0.667 -> 0.833;
#: fewer words kept (0.4375 -> 0.3625 of 80 spoken digits) and sung melodies (``--frames 0``).
FRAME_SHARE = 0.75


class VoiceWarning(PolyvaeWarning):
    """A voice result the user should not trust without knowing: a morph that moved away from
    its target, a path that is not monotone, a recording that was cut."""


def warn_all(messages) -> None:
    """Each message as a :class:`VoiceWarning` (what a notebook shows)."""
    import warnings
    for message in messages:
        warnings.warn(message, VoiceWarning, stacklevel=3)
