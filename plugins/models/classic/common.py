"""What every classic single-modality autoencoder shares.

The data a classic model sees is the modality's preprocessed float tensor ``x`` of shape
``(B, *shape)``; dense models flatten it to ``(B, D)``. The reconstruction loss is the squared
error averaged over the elements of a row (the same number :meth:`Modality.distance`
reports), then averaged over the rows that have the modality; rows marked missing in
``batch.present`` contribute nothing.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, ClassVar

import torch
from torch import nn

from polyvae.core.batch import Batch
from polyvae.core.config import ModelConfig
from polyvae.core.errors import UsageError
from polyvae.core.modality import Modality
from polyvae.core.models import DECODE, AutoencoderModel, Encoding, PointPosterior

ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh,
               "sigmoid": nn.Sigmoid}


# ---- options ----------------------------------------------------------------------------
def parse_options(cls: type, extra: dict[str, Any], model: str):
    """``config.extra`` as the typed options dataclass ``cls`` of ``--model model``.

    Unknown keys and values of the wrong type are :class:`UsageError` naming the model, so a
    misspelt option never passes silently.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(extra) - set(fields))
    if unknown:
        raise UsageError(f"--model {model}: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(fields)) or 'none'}")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(v, hints[k], model, k) for k, v in extra.items()}
    return cls(**values)


def _alternatives(hint: Any) -> tuple:
    """The members of ``X | Y`` (or ``Optional[X]``); ``(hint,)`` for anything else."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _coerce(value: Any, hint: Any, model: str, key: str) -> Any:
    allowed = _alternatives(hint)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is str and isinstance(value, str):
            return value
        if origin is list and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(kind) or (Any,)
            return [_coerce(v, item, model, key) for v in value] if item is not Any else list(value)
        if kind is Any:
            return value
    raise UsageError(f"--model {model}: option {key} must be {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    return " or ".join("null" if t is type(None) else
                       (f"a list of {_type_name(typing.get_args(t)[0])}" if typing.get_origin(t) is list
                        else getattr(t, "__name__", str(t)))
                       for t in _alternatives(hint))


def check_choice(model: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"--model {model}: option {key} must be one of {', '.join(choices)}, got {value!r}")


def check_range(model: str, key: str, value: float, low: float, high: float,
                low_open: bool = False, high_open: bool = False) -> None:
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise UsageError(f"--model {model}: option {key} must be in {lo}{low}, {high}{hi}, got {value}")


# ---- shapes -----------------------------------------------------------------------------
def data_shape(modality: Modality, model: str) -> tuple[int, ...]:
    """Shape of one preprocessed example of ``modality`` (without the batch axis).

    Refuses modalities of integer ids (text): squared error on ids means nothing.
    """
    if modality.discrete:
        raise UsageError(f"--model {model} needs continuous data; the '{modality.name}' modality "
                         f"holds integer ids (use --model mvae for it)")
    try:
        return tuple(int(s) for s in modality.data_shape())
    except NotImplementedError:
        raise UsageError(f"--model {model} cannot size its layers for the '{modality.name}' "
                         f"modality: the plugin does not declare data_shape()") from None


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def mlp(sizes: list[int], hidden_activation: str, last_activation: str = "linear") -> nn.Sequential:
    """Linear layers through ``sizes`` with ``hidden_activation`` between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        last = i == len(sizes) - 2
        layers.append(activation(last_activation if last else hidden_activation))
    return nn.Sequential(*layers)


# ---- losses over present rows -----------------------------------------------------------
def row_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over each row's elements, ``(B,)``."""
    return (x_hat - x).flatten(1).pow(2).mean(1)


def masked_mean(per_row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_row`` over rows where ``mask`` is True (0, still differentiable, if none)."""
    weights = mask.to(per_row.dtype)
    return (per_row * weights).sum() / weights.sum().clamp(min=1.0)


def psnr(estimate: torch.Tensor, clean: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each row, ``(B,)``: ``10 log10(peak^2 / MSE)``."""
    mse = row_mse(estimate.float(), clean.float()).clamp(min=1e-12)
    return 10.0 * torch.log10(torch.tensor(peak, dtype=mse.dtype) ** 2 / mse)


# ---- the base class ---------------------------------------------------------------------
class ClassicAutoencoder(AutoencoderModel):
    """A ``--model`` that autoencodes exactly one continuous modality.

    Subclasses set ``options_class`` and implement :meth:`encode_x`, :meth:`decode_z` and
    :meth:`forward`; encode/reconstruct/generate over a :class:`Batch` come from here.
    """

    single_modality = True
    capabilities = frozenset({DECODE})
    options_class: ClassVar[type]

    def __init__(self, modalities: dict[str, Modality], config: ModelConfig, **context):
        super().__init__(modalities, config, **context)
        (self.modality_name,) = modalities
        self.shape = data_shape(modalities[self.modality_name], self.name)
        self.n_features = math.prod(self.shape)
        self.options = parse_options(self.options_class, config.extra, self.name)

    # ---- tensors ------------------------------------------------------------------------
    def inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """This model's modality as float ``(B, *shape)`` and its presence mask ``(B,)``."""
        x = batch.data[self.modality_name]
        if not (x.is_floating_point() or x.is_complex()):
            raise UsageError(f"--model {self.name} needs continuous data; the "
                             f"'{self.modality_name}' modality holds integer ids")
        return x.float(), batch.present[self.modality_name]

    def encode_x(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, latent)`` of data ``(B, *shape)``."""
        raise NotImplementedError

    def decode_z(self, z: torch.Tensor) -> torch.Tensor:
        """Data-space estimate ``(B, *shape)`` of codes ``(B, latent)``."""
        raise NotImplementedError

    def reconstruct_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_z(self.encode_x(x))

    # ---- the AutoencoderModel contract --------------------------------------------------
    def encode(self, batch: Batch) -> Encoding:
        x, _ = self.inputs(batch)
        return Encoding(PointPosterior(self.encode_x(x)))

    def reconstruct(self, batch: Batch, private: dict[str, torch.Tensor] | None = None
                    ) -> dict[str, torch.Tensor]:
        x, _ = self.inputs(batch)
        return {self.modality_name: self.reconstruct_x(x)}

    def generate(self, given: Batch, targets: list[str], generator: torch.Generator | None = None,
                 sample: bool = True, private: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
        """The reconstruction of the given rows (a denoising model returns them cleaned)."""
        self.check_targets(targets)
        if not bool(given.present[self.modality_name].all()):
            raise UsageError(f"--model {self.name} only reconstructs what it is given: pass "
                             f"--given {self.modality_name}=... (--model vae also samples from its prior)")
        return self.reconstruct(given)

    def decode(self, z: torch.Tensor, targets: list[str],
               private: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Codes ``(N, latent)`` decoded to data space, keyed like the multimodal model's ``decode``."""
        self.check_targets(targets)
        return {self.modality_name: self.decode_z(z)}

    def check_targets(self, targets: list[str]) -> None:
        other = [t for t in targets if t != self.modality_name]
        if other:
            raise UsageError(f"--model {self.name} was trained on '{self.modality_name}' only; "
                             f"it cannot generate {', '.join(other)}")

    def unflatten(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(flat.shape[0], *self.shape)
