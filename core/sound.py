"""Sound as a value and as a modality contract.

:class:`Audio` is what the public API hands back for generated or converted sound: the
samples and their rate, playable in a notebook, writable to a file.

:class:`SoundModality` is what the voice commands (match, morph, voice interpolation) need
of a modality beyond :class:`~polyvae.core.modality.Modality`: its sample rate, whole
recordings read at that rate, and decoded examples turned back into waveforms. A plugin
whose modality is sound subclasses it; the pipelines ask ``isinstance(mod, SoundModality)``
and never look inside the plugin.

:class:`FrameBank` is one voice's frames, each keyed by a code of what is said in it: the
matching set of kNN-VC (Baas et al. 2023). Conversion moves every frame of a source toward
the average of the target's frames that say the same thing (nearest in code).
"""
from __future__ import annotations

import abc
import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .modality import Modality


@dataclass
class Audio:
    """Mono sound: ``samples`` float32 ``(T,)`` in [-1, 1] at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self):
        self.samples = np.asarray(self.samples, dtype=np.float32).reshape(-1)
        self.sample_rate = int(self.sample_rate)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / float(self.sample_rate)

    def save(self, path: str | Path) -> Path:
        """Write a 16-bit WAV (or any format soundfile knows by the file's extension)."""
        import soundfile as sf

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.clip(self.samples, -1.0, 1.0), self.sample_rate,
                 subtype="PCM_16" if path.suffix.lower() in (".wav", "") else None)
        return path

    def wav_bytes(self) -> bytes:
        """The sound as the bytes of a 16-bit WAV file."""
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, np.clip(self.samples, -1.0, 1.0), self.sample_rate, subtype="PCM_16", format="WAV")
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        """An audio player when shown in a notebook."""
        data = base64.b64encode(self.wav_bytes()).decode("ascii")
        return (f'<audio controls src="data:audio/wav;base64,{data}"></audio>'
                f"<small> {self.duration:.2f} s at {self.sample_rate} Hz</small>")

    def __repr__(self) -> str:
        return f"Audio({self.duration:.2f} s at {self.sample_rate} Hz)"


#: query frames searched at once (their distances to every bank frame are held together)
QUERY_CHUNK = 2048


@dataclass
class FrameBank:
    """One voice's frames: ``frames`` ``(M, F)`` in the modality's spectral units, each with
    ``keys`` ``(M, K)``, what the model reads as said in that frame (a code with the speaker
    normalised away, :meth:`~polyvae.core.models.AutoencoderModel.frame_codes`)."""

    keys: torch.Tensor
    frames: torch.Tensor

    def __post_init__(self):
        if self.keys.ndim != 2 or self.frames.ndim != 2 or self.keys.shape[0] != self.frames.shape[0]:
            raise ValueError(f"a frame bank needs keys (M, K) and frames (M, F), got {tuple(self.keys.shape)} "
                             f"and {tuple(self.frames.shape)}")

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @classmethod
    def of(cls, codes: torch.Tensor, frames: torch.Tensor, inside: torch.Tensor, limit: int = 0) -> "FrameBank":
        """The bank of clips: ``codes`` ``(N, T, K)``, ``frames`` ``(N, T, F)``, only where
        ``inside`` ``(N, T)``; at most ``limit`` frames (evenly spread; 0: all)."""
        keep = inside > 0.5
        keys, values = codes[keep].float(), frames[keep].float()
        if limit and keys.shape[0] > limit:
            pick = torch.linspace(0, keys.shape[0] - 1, limit, device=keys.device).round().long()
            keys, values = keys[pick], values[pick]
        return cls(keys.cpu(), values.cpu())

    def compact(self) -> "FrameBank":
        """The same bank in float16 (half the size on disk)."""
        return FrameBank(self.keys.half(), self.frames.half())

    def nearest(self, codes: torch.Tensor, k: int = 4) -> torch.Tensor:
        """For every query code ``(..., K)``, the mean of the ``k`` bank frames whose keys are
        nearest (Euclidean) -> ``(..., F)``, on the device of ``codes``."""
        if codes.shape[-1] != self.keys.shape[1]:
            raise ValueError(f"frame codes of width {codes.shape[-1]} against a bank keyed by {self.keys.shape[1]}")
        shape = codes.shape[:-1]
        queries = codes.reshape(-1, codes.shape[-1]).float()
        keys = self.keys.to(queries.device, torch.float32)
        frames = self.frames.to(queries.device, torch.float32)
        k = max(1, min(k, len(self)))
        out = [frames[torch.cdist(part, keys).topk(k, largest=False).indices].mean(1)
               for part in queries.split(QUERY_CHUNK)]
        flat = torch.cat(out) if out else queries.new_zeros(0, frames.shape[1])
        return flat.view(*shape, frames.shape[1])


class SoundModality(Modality):
    """A modality whose examples are sounds (the built-in ``audio``)."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """The rate every file is resampled to, in Hz."""

    @property
    @abc.abstractmethod
    def clip_samples(self) -> int:
        """Samples in one example (the clip length the networks see)."""

    @abc.abstractmethod
    def read_signal(self, path: Path, max_seconds: float) -> tuple[np.ndarray, float]:
        """A whole recording, mono float32 at :attr:`sample_rate`, at most ``max_seconds``
        long (and at least one clip, zero-padded), and the file's own duration in seconds.

        Raise :class:`~polyvae.core.errors.BadInput` with a reason for an unusable file.
        """

    def as_clip(self, piece: np.ndarray) -> np.ndarray:
        """A :attr:`clip_samples`-long piece of a recording as :meth:`read` would return
        that clip (e.g. level-normalised the same way); default: unchanged."""
        return piece

    @abc.abstractmethod
    def waveforms(self, x: torch.Tensor) -> torch.Tensor:
        """Decoded examples ``(N, *shape)`` -> waveforms ``(N, clip_samples)`` at
        :attr:`sample_rate`, each peak-normalised, on the device of ``x``."""

    def spectral_profile(self, x: torch.Tensor) -> torch.Tensor | None:
        """The long-term average spectrum of examples ``x`` ``(N, *shape)`` taken together (one
        vector, in the modality's own spectral units): the part of a voice's timbre that does
        not change with what is said. The voice commands move it along with the voice latent.
        Default: None (the modality has no such profile, and nothing is moved)."""
        return None

    def with_profile(self, x: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """Examples ``x`` ``(N, *shape)`` (taken together, as one recording) with their
        long-term average spectrum set to ``profile`` (from :meth:`spectral_profile`), what is
        said and its timing untouched. Default: ``x`` unchanged."""
        return x

    def spectral_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The spectrum of examples ``x`` ``(N, *shape)`` frame by frame, ``(N, T, F)`` in the
        modality's own spectral units, and which frames are inside the clips ``(N, T)``; what a
        :class:`FrameBank` holds and conversion moves. Default: None (no frames: nothing is
        moved frame by frame)."""
        return None

    def with_spectral_frames(self, x: torch.Tensor, frames: torch.Tensor, share: float) -> torch.Tensor:
        """Examples ``x`` ``(N, *shape)`` with the spectrum of every frame inside the clips moved
        ``share`` of the way toward ``frames`` ``(N, T, F)`` (as :meth:`spectral_frames` gives);
        pitch, voicing and timing untouched. Default: ``x`` unchanged."""
        return x

    def to_values(self, xs: torch.Tensor) -> list[Audio]:
        """Decoded examples as :class:`Audio`."""
        waves = self.waveforms(xs).clamp(-1.0, 1.0).cpu().numpy()
        return [Audio(w, self.sample_rate) for w in waves]

    def converted_values(self, xs: torch.Tensor) -> list[Audio]:
        """Conversions (a recording's content in another voice, what voice-morph writes) as
        :class:`Audio`. A modality may render them differently from other decoded examples,
        e.g. so that the source's intonation is heard exactly. Default: :meth:`to_values`."""
        return self.to_values(xs)
