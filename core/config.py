"""Typed configuration of a run; ``config.json`` is :class:`RunConfig` as JSON."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError


@dataclass
class ModelConfig:
    """What the network is: model family, latent size, fusion, objective weights."""

    model: str = "mvae"
    modalities: list[str] = field(default_factory=list)
    latent_dim: int = 32
    fusion: str = "poe"
    shared_decoder: bool = False
    hidden_dim: int = 256
    #: MVAE sub-sampling: random subsets (of size 2 .. M-1) added to joint + unimodal terms
    k_subsets: int = 1
    #: what each sub-sampled subset's ELBO reconstructs: "all" observed modalities (better
    #: cross-modal coherence) or only the "subset"'s own (Wu & Goodman's MVAE; faster)
    reconstruct: str = "all"
    beta: float = 1.0
    #: epochs over which beta ramps linearly from 0 to ``beta`` (KL annealing)
    kl_warmup_epochs: int = 5
    #: "balanced" scales each modality's log-likelihood by reference_elements / its elements;
    #: "none" uses raw sums
    likelihood_weighting: str = "balanced"
    #: per-modality extra multipliers applied on top of the weighting
    likelihood_weights: dict[str, float] = field(default_factory=dict)
    #: for balanced weighting: every modality counts as this many scalars
    reference_elements: float = 256.0
    #: weight of the term asking a private latent to tell apart the values of its modality's
    #: label column (audio: ``speaker``) on the rows that have one; 0 turns it off
    private_supervision: float = 40.0
    #: in training, decode each row with the private latent of another row of the batch that
    #: has the same label (e.g. another clip of the same speaker), so the private latent must
    #: carry what the label's rows share (the voice) and not what this row alone holds (its words)
    private_from_sibling: bool = True
    #: options of the single-modality models (sparsity, noise, ...)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """How it is trained."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    on_bad_input: str = "fail"
    #: share of rows held out for evaluation (0 disables)
    validation_fraction: float = 0.1
    num_threads: int = 0
    #: "auto" uses bf16 autocast where the device computes bf16 natively (CUDA, CPUs with
    #: AVX512-BF16 or AMX: same loss curve, ~1.2-1.3x faster steps); "bf16" forces it; "off"
    autocast: str = "auto"
    compile: bool = False
    #: the ``torch.compile`` backend with ``compile``: "inductor" (generated kernels: the fast
    #: one; on CPU it needs a C++ compiler), "aot_eager" (traced forward and backward run by
    #: eager kernels: no compiler needed, a quick check that a model traces) or any other
    #: backend torch lists (``torch._dynamo.list_backends()``)
    compile_backend: str = "inductor"
    grad_clip: float = 10.0
    #: learning-rate schedule over the epochs: "constant" or "cosine" (to 0 at the last epoch)
    lr_schedule: str = "constant"
    #: split each (per-process) batch into this many micro-batches and accumulate gradients:
    #: the same update with less memory, and the same noise as that many DDP processes
    micro_batches: int = 1
    #: trackers written beside metrics.jsonl: [] or ["tensorboard"] (``--log tensorboard``)
    log: list[str] = field(default_factory=list)


@dataclass
class TensorSpec:
    """Shape (without the batch axis) and dtype of one modality's preprocessed examples."""

    shape: list[int] = field(default_factory=list)
    dtype: str = "float32"

    def zeros(self, n: int, device=None):
        """``n`` all-zero examples: what a missing modality holds in a batch."""
        import torch
        return torch.zeros((n, *self.shape), dtype=getattr(torch, self.dtype), device=device)


@dataclass
class RunData:
    """What training learnt about its data, written once the data is read."""

    #: absolute path of the training manifest
    manifest: str = ""
    train_rows: int = 0
    validation_rows: int = 0
    skipped_rows: int = 0
    #: messages of the first bad rows skipped (``--on-bad-input skip``)
    skipped: list[str] = field(default_factory=list)
    processes: int = 1
    #: every modality's tensor spec, so a batch can be built with any modality missing
    tensors: dict[str, TensorSpec] = field(default_factory=dict)
    #: manifest row numbers (1-based) held out for validation; None for runs that predate it
    held_out_rows: list[int] | None = None
    #: the decoded-data cache the run read: its folder, whether it was reused, decode seconds
    cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunData":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["tensors"] = {m: TensorSpec(list(t.get("shape", [])), str(t.get("dtype", "float32")))
                             for m, t in dict(values.get("tensors") or {}).items()}
        return cls(**values)


@dataclass
class RunConfig:
    """Everything needed to rebuild a model: model, training, modality options and fitted states."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    modality_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: fitted modality state (vocabulary, statistics), filled at training time
    modality_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: fitted label names of each private latent (modality -> sorted values, e.g. singers)
    private_labels: dict[str, list[str]] = field(default_factory=dict)
    #: name -> version of every plugin the run uses (modalities, fusion, model)
    plugins: dict[str, dict[str, str]] = field(default_factory=dict)
    polyvae_version: str = ""
    data: RunData = field(default_factory=RunData)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        data = raw.get("data") or {}
        return cls(
            model=_build(ModelConfig, raw.get("model", {}), "model"),
            train=_build(TrainConfig, raw.get("train", {}), "train"),
            data=data if isinstance(data, RunData) else RunData.from_dict(dict(data)),
            **{k: v for k, v in raw.items() if k not in ("model", "train", "data")
               and k in {f.name for f in dataclasses.fields(cls)}},
        )


def _build(cls, values: dict[str, Any], section: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown setting(s) in [{section}]: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(known))}")
    return cls(**values)


def load_config_file(path: Path) -> dict[str, Any]:
    """A user's ``--config FILE`` (JSON or TOML) as a dict with sections model/train/modality_options."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        if str(path).endswith(".toml"):
            import tomllib
            return tomllib.loads(text)
        return json.loads(text)
    except Exception as exc:
        raise UsageError(f"{path}: not valid {'TOML' if str(path).endswith('.toml') else 'JSON'}: {exc}") from None
