"""Singer embeddings: the voice latent aggregated over each singer's clips, and singers.json.

The voice latent of a clip is the mean of the audio encoder's private posterior q(w | x).
A singer's embedding is the average of those means over the singer's training clips (the
manifest's ``speaker`` column). Distances between voices are measured in units of the
typical spread of one singer's clips: every latent dimension is divided by its pooled
within-singer standard deviation, and the distance is the root mean square of the scaled
difference (about 1 for a clip and its own singer's embedding). Similarity is
``exp(-distance**2 / 2)``, 1 for the same voice.

``singers.json`` in the run directory holds the embeddings, the scale, clip counts and
each singer's measured :class:`~.features.VoiceFeatures`; it is written at the end of
training, or computed from the training manifest on first use and cached. Where the model
keeps frame codes (the speech model), each singer's frames go beside it in
``singers.frames.safetensors`` (:class:`~polyvae.core.sound.FrameBank`, float16).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from polyvae.core.atomic import atomic_path, write_text_atomic
from polyvae.core.dataset import TensorData
from polyvae.core.errors import UsageError
from polyvae.core.manifest import SPEAKER_COLUMN
from polyvae.core.run import LoadedRun
from polyvae.core.sound import FrameBank, SoundModality

from .calibration import Calibration, calibrate
from .features import VoiceFeatures
from .frames import bank_of

SINGERS_FILE = "singers.json"
#: each singer's frame bank (keys ``<k>.keys`` and ``<k>.frames``, k the singer's place in the table)
FRAMES_FILE = "singers.frames.safetensors"
#: 2: with the calibration of distances (percentiles, same-voice threshold); 3: with each
#: singer's spectral profile; 4: the profile with each bin's spread beside its mean; 5: with
#: the singers' frame banks (older tables are rebuilt on first use)
FORMAT = 5
#: clips per singer whose audio is measured for the singer's voice features
FEATURE_CLIPS = 8
#: clips per singer (evenly spread) whose frames make the singer's spectral profile
PROFILE_CLIPS = 256


@dataclass
class SingerEntry:
    """One singer: the embedding, how many clips made it, and measured features."""

    embedding: torch.Tensor                   # (P,)
    clips: int
    features: VoiceFeatures | None = None
    #: long-term average spectrum of the singer's clips and its spread (SoundModality.spectral_profile), or None
    profile: torch.Tensor | None = None
    #: the singer's frames keyed by what is said in them (None: the model keeps no frame codes)
    frames: FrameBank | None = None


@dataclass
class SingerTable:
    """Every training singer of a run, and the metric their voices are compared in."""

    modality: str
    scale: torch.Tensor                       # (P,) pooled within-singer std per dimension
    singers: dict[str, SingerEntry] = field(default_factory=dict)
    weights: str = ""                         # fingerprint of the weights the table was made with
    calibration: Calibration | None = None

    @property
    def names(self) -> list[str]:
        return list(self.singers)

    def embedding(self, name: str) -> torch.Tensor:
        """The embedding of ``name``; a usage error lists the known singers."""
        if name not in self.singers:
            raise UsageError(f"no singer '{name}' in this run; singers: {', '.join(self.names)}")
        return self.singers[name].embedding

    def warnings(self, min_clips: int = 10) -> list[str]:
        """Singers with too few training clips for their voice to be learnt and matched reliably."""
        few = [(n, e.clips) for n, e in self.singers.items() if e.clips < min_clips]
        return [f"speaker '{n}' has only {k} training clip(s): a voice needs about {min_clips} to be "
                f"learnt and matched reliably (voice-match and voice-morph will be unsure of it)"
                for n, k in few]

    def profile(self, name: str) -> torch.Tensor | None:
        """The spectral profile of ``name`` (None when the modality has none)."""
        self.embedding(name)
        return self.singers[name].profile

    def frames(self, name: str) -> FrameBank | None:
        """The frame bank of ``name`` (None when the model keeps no frame codes)."""
        self.embedding(name)
        return self.singers[name].frames

    def matrix(self) -> torch.Tensor:
        return torch.stack([e.embedding for e in self.singers.values()])

    def distance(self, w: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Scaled RMS distance between voice latents ``(..., P)`` (broadcast)."""
        scale = self.scale.to(w.device, w.dtype)
        return (((w - other.to(w.device, w.dtype)) / scale) ** 2).mean(-1).sqrt()

    def rank(self, w: torch.Tensor) -> list[dict[str, float | str | bool | None]]:
        """Singers by closeness to one voice latent ``(P,)``: ``{singer, distance, similarity,
        percentile, same_voice}`` (the last two from the calibration, None without one)."""
        d = self.distance(w.view(1, -1), self.matrix().to(w.device))
        order = torch.argsort(d).tolist()
        names = self.names
        cal = self.calibration
        return [{"singer": names[i], "distance": float(d[i]), "similarity": float(torch.exp(-0.5 * d[i] ** 2)),
                 "percentile": cal.percentile(names[i], float(d[i])) if cal else None,
                 "same_voice": cal.same_voice(float(d[i])) if cal else None}
                for i in order]

    # ---- JSON -------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The table without its frame banks (which :func:`write_table` writes beside it)."""
        return json.dumps({
            "format": FORMAT, "modality": self.modality, "weights": self.weights,
            "frames_file": FRAMES_FILE if any(e.frames is not None for e in self.singers.values()) else None,
            "metric": "rms of (w - embedding) / scale; similarity = exp(-distance^2 / 2)",
            "scale": [float(v) for v in self.scale],
            "calibration": self.calibration.to_json() if self.calibration else None,
            "singers": {name: {"clips": e.clips, "embedding": [float(v) for v in e.embedding],
                               "features": e.features.to_json() if e.features else None,
                               "profile": None if e.profile is None else [round(float(v), 5) for v in e.profile],
                               "frames": None if e.frames is None else len(e.frames)}
                        for name, e in self.singers.items()},
        }, indent=2)

    def banks(self) -> dict[str, torch.Tensor]:
        """The frame banks as safetensors entries (float16)."""
        out = {}
        for k, entry in enumerate(self.singers.values()):
            if entry.frames is not None:
                bank = entry.frames.compact()
                out[f"{k}.keys"], out[f"{k}.frames"] = bank.keys.contiguous(), bank.frames.contiguous()
        return out

    def attach_banks(self, tensors: dict[str, torch.Tensor]) -> None:
        """Give each singer the bank stored for it (see :meth:`banks`)."""
        for k, entry in enumerate(self.singers.values()):
            if f"{k}.keys" in tensors:
                entry.frames = FrameBank(tensors[f"{k}.keys"], tensors[f"{k}.frames"])

    @classmethod
    def from_json(cls, text: str) -> "SingerTable":
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise ValueError(f"singers.json format {raw.get('format')!r}, expected {FORMAT}")
        singers = {name: SingerEntry(torch.tensor(s["embedding"], dtype=torch.float32), int(s["clips"]),
                                     VoiceFeatures.from_json(s["features"]) if s.get("features") else None,
                                     torch.tensor(s["profile"], dtype=torch.float32) if s.get("profile") else None)
                   for name, s in raw["singers"].items()}
        calibration = Calibration.from_json(raw["calibration"]) if raw.get("calibration") else None
        return cls(raw["modality"], torch.tensor(raw["scale"], dtype=torch.float32), singers,
                   raw.get("weights", ""), calibration)


# ---- the voice latent -----------------------------------------------------------------------
def voice_modality(model) -> str:
    """The sound modality that carries a voice latent (its private latent)."""
    with_private = [m for m in model.private_dims if isinstance(model.modalities[m], SoundModality)]
    if not with_private:
        raise UsageError("this run has no voice latent: train an mvae run with the audio modality "
                         "(its default private_dim gives the voice its own latent)")
    return "audio" if "audio" in with_private else with_private[0]


@torch.no_grad()
def voice_latents(model, data: TensorData, modality: str, device="cpu", batch_size: int = 256) -> torch.Tensor:
    """Mean of q(w | x) for every row of ``data`` ``(N, P)``, on the CPU (rows without the
    modality get a meaningless value; mask them with ``data.present``)."""
    model.to(device).eval()
    out = []
    for start in range(0, len(data), batch_size):
        batch = data.batch(slice(start, start + batch_size)).to(device)
        out.append(model.encode(batch).private_mean(modality).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.private_dims[modality])


def aggregate(latents: torch.Tensor, speakers: list[str]) -> tuple[dict[str, tuple[torch.Tensor, int]], torch.Tensor]:
    """Per-speaker mean latent and clip count, and the pooled within-speaker std ``(P,)``.

    Empty speaker names are ignored. The std is floored at 1e-3 of the overall std, so a
    dimension no singer varies in cannot blow distances up.
    """
    if len(speakers) != latents.shape[0]:
        raise ValueError(f"{latents.shape[0]} latents but {len(speakers)} speaker names")
    names = sorted({s for s in speakers if s})
    if not names:
        raise UsageError(f"no row has a '{SPEAKER_COLUMN}': singer embeddings need the manifest's "
                         f"'{SPEAKER_COLUMN}' column")
    groups: dict[str, tuple[torch.Tensor, int]] = {}
    squares = torch.zeros(latents.shape[1], dtype=torch.float64)
    for name in names:
        rows = torch.tensor([i for i, s in enumerate(speakers) if s == name])
        own = latents[rows].double()
        mean = own.mean(0)
        groups[name] = (mean.float(), len(rows))
        squares += ((own - mean) ** 2).sum(0)
    used = sum(n for _, n in groups.values())
    within = (squares / max(used - len(names), 1)).sqrt().float()
    overall = latents.double().std(0).float() if latents.shape[0] > 1 else torch.ones(latents.shape[1])
    floor = torch.clamp(overall * 1e-3, min=1e-6)
    within = torch.where(within > 0, within, overall)
    return groups, torch.maximum(within, floor)


def weights_fingerprint(run_dir: Path) -> str:
    """A short hash of ``model.safetensors``: a table made with other weights is stale."""
    path = Path(run_dir) / "model.safetensors"
    if not path.exists():
        return ""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- building, saving, loading -----------------------------------------------------------------
def build_table(model, data: TensorData, manifest_path: Path | None = None, device="cpu",
                feature_clips: int = FEATURE_CLIPS, weights: str = "") -> SingerTable:
    """Singer embeddings from the rows of ``data`` (a run's training rows) that have audio and
    a speaker; with ``manifest_path`` (the manifest ``data`` was read from) also each singer's
    voice features, measured on up to ``feature_clips`` of their clips."""
    modality = voice_modality(model)
    speakers = data.metadata.get(SPEAKER_COLUMN)
    if speakers is None:
        raise UsageError(f"the training manifest has no '{SPEAKER_COLUMN}' column: singer embeddings "
                         f"need to know who sings each clip")
    keep = [i for i in range(len(data)) if bool(data.present[modality][i]) and speakers[i]]
    if not keep:
        raise UsageError(f"no training row has both {modality} and a '{SPEAKER_COLUMN}'")
    rows = data.subset(keep)
    latents = voice_latents(model, rows, modality, device)
    names = [speakers[i] for i in keep]
    groups, scale = aggregate(latents, names)
    table = SingerTable(modality, scale, weights=weights)
    mod = model.modalities[modality]
    x = rows.data[modality]
    for name, (mean, count) in groups.items():
        own = torch.tensor([j for j, s in enumerate(names) if s == name])
        own = own[torch.linspace(0, len(own) - 1, min(len(own), PROFILE_CLIPS)).round().long().unique()]
        profile = mod.spectral_profile(x[own]) if isinstance(mod, SoundModality) else None
        bank = bank_of(model, mod, modality, x[own], device) if isinstance(mod, SoundModality) else None
        table.singers[name] = SingerEntry(mean, count, profile=None if profile is None else profile.float().cpu(),
                                          frames=bank)
    if len(groups) >= 2:
        table.calibration = calibrate(latents, names, groups, table.distance)
    if manifest_path is not None and feature_clips > 0 and Path(manifest_path).exists():
        measure_singers(table, model.modalities[modality], manifest_path,
                        {n: [rows.rows[j] for j, s in enumerate(names) if s == n] for n in groups},
                        feature_clips)
    return table


def measure_singers(table: SingerTable, mod, manifest_path: Path, rows_of: dict[str, list[int]],
                    feature_clips: int) -> None:
    """Fill each singer's features: median over up to ``feature_clips`` evenly spread clips."""
    from polyvae.core.manifest import read_manifest

    from .features import measure

    manifest = read_manifest(manifest_path)
    rate = mod.sample_rate
    for name, rows in rows_of.items():
        chosen = [rows[int(k)] for k in np.unique(np.linspace(0, len(rows) - 1, min(feature_clips, len(rows))).round())]
        measured = []
        for row in chosen:
            cell = manifest.rows[row - 1].get(table.modality, "")
            try:
                measured.append(measure(mod.read(cell, manifest.base_dir), rate))
            except Exception:            # a clip that moved since training: measure the others
                continue
        if measured:
            table.singers[name].features = VoiceFeatures.median_of(measured)


def write_table(run_dir: Path, table: SingerTable) -> Path:
    """``singers.json`` and, when the singers have frame banks, ``singers.frames.safetensors``
    (written first, each atomically, the weights' fingerprint in its metadata)."""
    from safetensors.torch import save_file

    banks = table.banks()
    if banks:
        with atomic_path(Path(run_dir) / FRAMES_FILE) as tmp:
            save_file(banks, str(tmp), metadata={"weights": table.weights, "format": str(FORMAT)})
    path = Path(run_dir) / SINGERS_FILE
    write_text_atomic(path, table.to_json())
    return path


def read_table(run_dir: Path) -> SingerTable | None:
    """The run's ``singers.json`` with its frame banks, or None when there is none (or it, or
    the banks it names, are unreadable or from other weights)."""
    path = Path(run_dir) / SINGERS_FILE
    if not path.exists():
        return None
    try:
        raw = path.read_text(encoding="utf-8")
        table = SingerTable.from_json(raw)
        if json.loads(raw).get("frames_file"):
            table.attach_banks(read_banks(Path(run_dir) / FRAMES_FILE, table.weights))
        return table
    except (ValueError, KeyError, TypeError, OSError):
        return None


def read_banks(path: Path, weights: str) -> dict[str, torch.Tensor]:
    """The tensors of a frame-bank file; a ValueError when it is missing, unreadable or was
    made with other weights than ``weights``."""
    from safetensors import safe_open

    if not path.exists():
        raise ValueError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as fh:
            if (fh.metadata() or {}).get("weights", "") != weights:
                raise ValueError(f"{path} was made with other weights")
            return {key: fh.get_tensor(key) for key in fh.keys()}
    except ValueError:
        raise
    except Exception as exc:          # safetensors raises its own types for a malformed file
        raise ValueError(f"{path}: {exc}") from None


def load_table(run: LoadedRun, device="cpu", progress=None) -> SingerTable:
    """The run's singers: ``singers.json`` when it matches the weights, else computed from
    the training manifest's training rows and cached in the run directory."""
    fingerprint = weights_fingerprint(run.path)
    table = read_table(run.path)
    if table is not None and (not table.weights or table.weights == fingerprint):
        return table
    from polyvae.pipelines.run_data import held_out, read_rows

    manifest = run.config.data.manifest
    if not manifest or not Path(manifest).exists():
        raise UsageError(f"{run.path} has no {SINGERS_FILE} and its training manifest ({manifest or 'unknown'}) "
                         f"is gone, so the singers cannot be rebuilt")
    kwargs = {"progress": progress} if progress is not None else {}
    rows, _ = held_out(run, read_rows(run, Path(manifest), **kwargs))
    table = build_table(run.model, rows, Path(manifest), device, weights=fingerprint)
    write_table(run.path, table)
    return table


def write_after_training(run_dir: Path, model, train_rows: TensorData, manifest_path: Path,
                         device="cpu") -> Path | None:
    """The post-training step: ``singers.json`` from the training rows, when the run has a
    voice latent and the manifest a ``speaker`` column (otherwise nothing)."""
    try:
        voice_modality(model)
    except UsageError:
        return None
    if not any(train_rows.metadata.get(SPEAKER_COLUMN, [])):
        return None
    table = build_table(model, train_rows, manifest_path, device, weights=weights_fingerprint(run_dir))
    return write_table(run_dir, table)
