"""The contract a modality plugin fulfils.

A modality turns manifest cells into tensors, owns an encoder that maps a batch to a
Gaussian expert and a decoder that maps latents back to the parameters of a likelihood,
and renders a decoded example to a file. It is stateful only through what it fits on the
training data (a vocabulary, normalisation statistics), which round-trips through JSON
(``state()``/``load_state()``) and so travels in ``config.json``.

Data flows one way::

    cell --read()--> raw --fit()/preprocess()--> tensor x
    x --encoder--> (mu, logvar)              [shared latent D + private latent P]
    z --decoder(z, x?)--> params --log_likelihood(params, x)--> (B,)
    params --generate()--> x_hat --render()--> file
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from .verdict import Symptom


def with_private(h: torch.Tensor, private: torch.Tensor | None, private_dim: int) -> torch.Tensor:
    """A decoder's input: ``h`` ``(N, D)`` with the private latent ``(N, private_dim)`` appended
    (zeros, its prior mean, when None); ``h`` itself for a modality without one."""
    if not private_dim:
        return h
    if private is None:
        private = torch.zeros(h.shape[0], private_dim, device=h.device, dtype=h.dtype)
    return torch.cat([h, private.to(h.dtype)], dim=-1)


def with_defaults(modality: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``options``; an unknown key is a usage error listing the known ones."""
    unknown = set(options) - set(defaults)
    if unknown:
        from .errors import UsageError
        raise UsageError(f"unknown {modality} option(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(defaults))}")
    return {**defaults, **options}


class Modality(abc.ABC):
    """Base class of every modality plugin (``image``, ``text``, ``audio``, ...)."""

    #: column name in the manifest and key everywhere else
    name: ClassVar[str]
    #: extension of rendered files, without the dot ("png", "wav", "txt")
    extension: ClassVar[str]
    #: True when a manifest cell is a path relative to the manifest, False when it is the value
    cell_is_path: ClassVar[bool] = True
    #: bump when the preprocessing or networks change so old runs are refused, not misread
    version: ClassVar[str] = "1"
    #: short description shown by ``polyvae plugins``
    description: ClassVar[str] = ""
    #: True when preprocessed tensors hold integer ids (text) rather than continuous values
    discrete: ClassVar[bool] = False
    #: the data cache (:mod:`.cache`) stores preprocessed tensors in the smallest dtype that
    #: holds them exactly (uint8 for k/255 pixels, small ints for ids, else the tensor's own
    #: float); "float16" also allows float16 where that is close enough for this modality
    cache_dtype: ClassVar[str | None] = None
    #: whether :meth:`read` may run in decoding worker processes; None: when :meth:`notes` is
    #: not overridden (what ``read`` notes in a worker would not reach :meth:`notes`)
    parallel_read: ClassVar[bool | None] = None

    def __init__(self, **options: Any):
        """``options`` come from the run config's ``modality_options[name]``; unknown keys are errors."""
        self.options = options

    # ---- data ---------------------------------------------------------------------------
    @abc.abstractmethod
    def read(self, cell: str, base_dir: Path) -> Any:
        """Decode one manifest cell into a raw value (array, string, ...).

        Raise :class:`polyvae.core.errors.BadInput` with a reason (the caller adds the file
        and row) for anything unusable: unreadable, empty, non-finite, wrong kind of file.
        """

    def fit(self, raws: list[Any]) -> None:
        """Fit what preprocessing needs (vocabulary, statistics) on the training values.

        Called once, before training, with the raw values of the rows that have this
        modality. Default: nothing to fit.
        """

    def notes(self) -> list[str]:
        """One-line remarks on the data read so far that a user should see, though nothing is
        wrong enough to be an error (e.g. "audio: 640 of 900 clips are longer than the 1 s
        used"). Shown once after the data is loaded. Default: none."""
        return []

    @abc.abstractmethod
    def preprocess(self, raws: list[Any]) -> torch.Tensor:
        """Batch of raw values -> tensor ``(N, *shape)`` in the space the networks see.

        Each row's tensor depends on that row's raw value only (and the fitted state): the
        data cache preprocesses rows in chunks of its own choosing."""

    def state(self) -> dict[str, Any]:
        """JSON-serialisable fitted state (plus options), enough to rebuild this modality."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`fit` learnt, from :meth:`state`'s output."""

    def num_elements(self) -> int:
        """How many observations one example counts as when likelihoods are balanced
        (``reference_elements / num_elements``): its scalars, or what carries one observation
        (an image's pixels, whatever its channels; a text's mean token count)."""
        raise NotImplementedError

    def data_shape(self) -> tuple[int, ...]:
        """Shape of one preprocessed example (``preprocess`` output without the batch axis).

        Known after :meth:`fit` or :meth:`load_state`. The classic single-modality models
        (``--model ae`` etc.) size their layers from it. Default: not declared.
        """
        raise NotImplementedError

    # ---- networks -----------------------------------------------------------------------
    @property
    def private_dim(self) -> int:
        """Size of an optional modality-private latent (0: none). Audio uses it for the voice."""
        return int(self.options.get("private_dim", 0))

    @property
    def private_label_column(self) -> str | None:
        """A metadata column whose values the private latent should tell apart (audio:
        ``speaker``), used in training where the manifest has it; None: unsupervised."""
        return None

    @abc.abstractmethod
    def build_encoder(self, latent_dim: int) -> nn.Module:
        """Module mapping ``x`` ``(B, *shape)`` to ``(mu, logvar)``, each ``(B, latent_dim + private_dim)``."""

    @abc.abstractmethod
    def build_decoder(self, input_dim: int) -> nn.Module:
        """Module mapping ``(h, x)`` to likelihood parameters.

        ``h`` is ``(N, input_dim)`` (the latent, or a shared backbone's features; the private
        latent, if any, is already appended). ``x`` is the target ``(N, *shape)`` during
        training, for autoregressive decoders (teacher forcing); others ignore it.
        """

    @abc.abstractmethod
    def log_likelihood(self, params: Any, x: torch.Tensor) -> torch.Tensor:
        """log p(x | params) summed over the example's elements, shape ``(N,)``."""

    def log_likelihood_rows(self, decoder: nn.Module, h: torch.Tensor, x: torch.Tensor, rows: torch.Tensor,
                            private: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x[rows] | h, private[rows]) for every row of ``h`` ``(N, input_dim - private_dim)``:
        the decoder's latent input for N (subset, example) pairs; ``x`` ``(B, *shape)`` and
        ``private`` ``(B, private_dim)`` are per example and ``rows`` ``(N,)`` picks the example
        of each row. This is how the multimodal objective scores a modality for every sub-sampled
        subset at once.

        Default: ``log_likelihood(decoder(h + private, x[rows]), x[rows])``. A modality whose
        likelihood has a part that does not depend on ``h`` (a decoder with latents of its own,
        such as per-frame codes of speech) overrides it to compute that part once per example.
        """
        xr = x[rows]
        inputs = with_private(h, None if private is None else private[rows], self.private_dim)
        return self.log_likelihood(decoder(inputs, xr), xr)

    @abc.abstractmethod
    def generate(self, decoder: nn.Module, h: torch.Tensor) -> torch.Tensor:
        """Decode ``h`` to a point in data space ``(N, *shape)`` (mean, or greedy for text)."""

    def reconstruct(self, decoder: nn.Module, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Decode ``h`` as a reconstruction of the examples ``x`` ``(N, *shape)``. A modality
        whose decoder keeps part of its input (the timing and melody of speech, while the
        private latent in ``h`` sets the voice) uses ``x``; default: :meth:`generate`."""
        return self.generate(decoder, h)

    def frame_codes(self, decoder: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """What is said in every frame of examples ``x`` ``(N, *shape)`` as ``decoder`` reads it,
        ``(N, T, K)``: for a modality whose decoder keeps a code per frame (speech: the content
        code, with the speaker normalised away), the key a conversion matches frames by
        (:class:`~polyvae.core.sound.FrameBank`). Default: None (no frame codes)."""
        return None

    # ---- files --------------------------------------------------------------------------
    @abc.abstractmethod
    def render(self, x: torch.Tensor, path: Path) -> None:
        """Write one example ``x`` (``shape``, as from :meth:`generate`) to ``path``."""

    def render_batch(self, xs: torch.Tensor, paths: list[Path]) -> None:
        """Write every example of ``xs`` ``(N, *shape)`` to its path. Default: :meth:`render`
        one by one; a plugin whose rendering batches well (audio) overrides it."""
        for x, path in zip(xs, paths):
            self.render(x, path)

    # ---- Python values (the public API) -------------------------------------------------
    def from_value(self, value: Any) -> Any:
        """Raw value (as :meth:`read` returns) from what a user hands the Python API or the
        CLI: a file path (``str`` or ``Path``) for a modality whose cells are paths, the cell
        itself as a string otherwise, or an in-memory object the plugin knows (a PIL image,
        an :class:`~polyvae.core.sound.Audio`, a numpy array; see :meth:`from_object`).
        """
        if isinstance(value, (str, Path)):
            if self.cell_is_path:
                path = Path(value)
                return self.read(path.name, path.parent)
            return self.read(str(value), Path("."))
        return self.from_object(value)

    def from_object(self, value: Any) -> Any:
        """Raw value from an in-memory object; default: refused with a :class:`BadInput`."""
        from .errors import BadInput
        raise BadInput(f"the {self.name} modality takes a {'file path' if self.cell_is_path else 'string'}, "
                       f"not a {type(value).__name__}")

    def to_values(self, xs: torch.Tensor) -> list[Any]:
        """Decoded examples ``(N, *shape)`` as Python values, what the public API returns
        (image: PIL images, audio: :class:`~polyvae.core.sound.Audio`, text: ``str``).
        Default: one numpy array per example."""
        return [x for x in xs.detach().float().cpu().numpy()]

    # ---- evaluation ---------------------------------------------------------------------
    def evaluation_figures(self, x: torch.Tensor) -> dict[str, Any]:
        """Figures about this modality alone that ``polyvae evaluate`` adds to its report,
        measured on real preprocessed examples ``x`` ``(N, *shape)`` (audio: how faithfully
        spectrograms survive the way back to sound). Keys are top-level report keys.
        Default: none."""
        return {}

    def symptoms(self, decoded: torch.Tensor, real: torch.Tensor, what: str) -> list["Symptom"]:
        """What is visibly wrong with ``decoded`` ``(N, *shape)``, this modality as a model
        decoded it for N rows whose real examples are ``real`` (``what`` says how it was
        decoded, e.g. "reconstructions" or "generated from text"). Each
        :class:`~polyvae.core.verdict.Symptom` is one measured line of the run's verdict.
        Default (continuous data): decoded rows that vary far less than the real ones, i.e.
        everything decoded near the mean; a discrete modality overrides it (text: loops)."""
        from .verdict import collapsed_symptom
        if self.discrete:
            return []
        found = collapsed_symptom(self.name, what, decoded, real)
        return [found] if found is not None else []

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example reconstruction error between two batches, ``(N,)`` (mean squared error)."""
        return (x.float() - y.float()).flatten(1).pow(2).mean(1)
