"""The Python API: what ``import polyvae`` offers a notebook, and what the CLI is built on.

::

    import polyvae
    manifest = polyvae.demo_data("data", size=300)               # or your own manifest.csv
    run = polyvae.train("runs/digits", data=manifest, epochs=10)
    out = run.generate(given={"text": "seven"}, to=["image", "audio"], n=4)
    out["image"][0]                                               # a PIL image
    z = run.encode(manifest)                                      # (rows, latent_dim) array
    run.evaluate(manifest)["coherence"]

Every command of the ``polyvae`` CLI calls the functions and :class:`Run` methods here, so a
notebook can do everything the command line does. Errors are the typed exceptions of
:mod:`polyvae.core.errors` (``BadInput`` names the file and row); the CLI turns them into
one-line messages.
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from polyvae.core.config import RunConfig
from polyvae.core.errors import UsageError

if TYPE_CHECKING:        # torch and the engine are imported on first use: `polyvae --help` stays quick
    import numpy as np
    import torch

    from polyvae.core.run import LoadedRun
    from polyvae.core.sound import Audio

    from .morphed import Morphed


def __getattr__(name: str):
    if name == "Morphed":           # an Audio subclass, so defined where torch may be imported
        from .morphed import Morphed
        return Morphed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _quiet(items: Iterable, _label: str) -> Iterable:
    return items


def _progress(on: bool):
    if not on:
        return _quiet
    from .ui import progress
    return progress


# ---- training ------------------------------------------------------------------------------
def train(run_dir: str | Path, data: str | Path | None = None, *, config: str | Path | dict | RunConfig | None = None,
          modalities: Sequence[str] | None = None, model: str | None = None, fusion: str | None = None,
          epochs: int | None = None, latent_dim: int | None = None, batch_size: int | None = None,
          learning_rate: float | None = None, beta: float | None = None, seed: int | None = None,
          device: str | None = None, resume: bool = False, shared_decoder: bool | None = None,
          on_bad_input: str | None = None, autocast: str | None = None, compile: bool | None = None,
          reconstruct: str | None = None, modality_options: dict[str, dict[str, Any]] | None = None,
          log: str | Sequence[str] | None = None, progress: bool = True, plots: bool = True) -> "Run | None":
    """Train a model on the manifest ``data`` into ``run_dir``; returns the trained :class:`Run`.

    Writes the same run directory as ``polyvae train``: ``config.json``, ``model.safetensors``,
    ``metrics.jsonl``, ``checkpoint/``, ``plots/`` and (with a voice latent and a ``speaker``
    column) ``singers.json``. Settings left as None take their defaults, or the values of
    ``config`` (a JSON/TOML file, or a dict with sections ``model``, ``train``,
    ``modality_options``). ``resume=True`` continues ``run_dir`` after its last complete epoch,
    on its own manifest unless ``data`` is given. ``progress`` shows bars and a line per
    epoch on stderr. ``log="tensorboard"`` also writes TensorBoard event files to
    ``run_dir/tensorboard/`` (losses, samples, the latent projector). Under ``torchrun`` only
    rank 0 returns the run (others return None).

    Data read other than as written, and the verdict on the finished run (undertrained,
    collapsed, ...), come as :class:`polyvae.PolyvaeWarning` warnings; the verdict is also in
    ``run.verdict``.

    Example::

        run = polyvae.train("runs/mine", data="my/manifest.csv", modalities=["image", "text"],
                            epochs=30, fusion="poe")
    """
    from .training_run import build_config, run_training

    run_dir = Path(run_dir)
    saved = None
    if resume and (run_dir / "config.json").exists():
        from polyvae.core.run import read_config
        saved = read_config(run_dir)
        if epochs is None:
            epochs = saved.train.epochs                # continue to the run's own end
    if data is None:
        if saved is None or not saved.data.manifest:
            raise UsageError("no data: pass the training manifest (--data MANIFEST)"
                             + ("" if resume else ", or resume a run that has one (--resume)"))
        data = saved.data.manifest
    overrides = {
        "model": {"model": model, "modalities": list(modalities) if modalities else None, "fusion": fusion,
                  "latent_dim": latent_dim, "beta": beta, "shared_decoder": shared_decoder,
                  "reconstruct": reconstruct},
        "train": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                  "seed": seed, "device": device, "on_bad_input": on_bad_input, "autocast": autocast,
                  "compile": compile, "log": [log] if isinstance(log, str) else (list(log) if log else None)},
        "modality_options": dict(modality_options or {}),
    }
    run_config = config if isinstance(config, RunConfig) else build_config(config, overrides)
    run_training(run_dir, Path(data), run_config, resume=resume, quiet=not progress, plots=plots)
    if os.environ.get("RANK", "0") != "0":
        return None
    return load(run_dir, device=run_config.train.device)


def load(run_dir: str | Path, device: str = "auto") -> "Run":
    """A trained run, ready to generate, encode and evaluate (nothing is unpickled).

    Example::

        run = polyvae.load("runs/mine")
        run.generate(given={"text": "seven"}, to=["image"])["image"][0].save("seven.png")
    """
    from polyvae.core.device import resolve_device
    from polyvae.core.run import load_run

    dev = resolve_device(device)
    return Run(load_run(run_dir, device=dev), dev)


# ---- what generate returns -----------------------------------------------------------------
class Generated(Mapping):
    """Modality -> list of generated values (PIL images, :class:`polyvae.Audio`, ``str``):
    the given rows in order, each row's ``n`` samples together. Values are made on first
    access; ``tensors`` holds the decoded tensors and ``files`` the paths written (with ``out=``)."""

    def __init__(self, run: LoadedRun, tensors: dict[str, torch.Tensor], files: list[Path]):
        self._run = run
        self.tensors = tensors
        self.files = files
        self._values: dict[str, list] = {}

    def __getitem__(self, modality: str) -> list:
        if modality not in self.tensors:
            raise KeyError(f"'{modality}' was not generated (generated: {', '.join(self.tensors)})")
        if modality not in self._values:
            self._values[modality] = self._run.modalities[modality].to_values(self.tensors[modality].cpu())
        return self._values[modality]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return "Generated(" + ", ".join(f"{m}: {t.shape[0]}" for m, t in self.tensors.items()) + ")"


@dataclass
class Interpolation:
    """A path between two images or voices: alpha and the decoded value at every step, and
    the files written (with ``out=``; ``record`` is what ``path.json`` holds)."""

    alphas: list[float]
    values: list[Any]
    files: list[Path] = field(default_factory=list)
    record: dict = field(default_factory=dict)


# ---- a trained run -------------------------------------------------------------------------
class Run:
    """A trained run directory, loaded: generate, encode, evaluate, interpolate, voices, report.

    ``data`` arguments take a manifest path or rows as dicts (modality -> value, other keys
    are metadata such as ``label``). Values are what the modality takes: a file path or a
    string, a PIL image, a :class:`polyvae.Audio` or a numpy array.
    """

    def __init__(self, loaded: LoadedRun, device: torch.device):
        self._run = loaded
        self.device = device

    # -- what it is --
    @property
    def path(self) -> Path:
        return self._run.path

    @property
    def config(self) -> RunConfig:
        """The run's ``config.json`` as typed settings (``config.model``, ``config.train``, ``config.data``)."""
        return self._run.config

    @property
    def model(self) -> torch.nn.Module:
        """The trained :class:`~polyvae.core.models.AutoencoderModel`."""
        return self._run.model

    @property
    def modalities(self) -> list[str]:
        return list(self._run.modalities)

    @property
    def latent_dim(self) -> int:
        return self._run.model.latent_dim

    @property
    def singers(self) -> list[str]:
        """The training singers (the manifest's ``speaker`` column) when the run has a voice latent."""
        from .voice.singers import load_table, voice_modality
        try:
            voice_modality(self._run.model)
        except UsageError:
            return []
        return load_table(self._run, self.device).names

    @property
    def verdict(self) -> list[str]:
        """What training concluded about the run (``RUN/verdict.json``): one line per problem
        (undertrained, collapsed generations, a looping text decoder, ...) with what to change,
        and notes such as linear-ae's distance from PCA. Empty: nothing to report."""
        from polyvae.core.verdict import read_verdict
        return [f.message for f in read_verdict(self.path)]

    def __repr__(self) -> str:
        m = self.config.model
        return f"Run({str(self.path)!r}: {m.model} on {', '.join(m.modalities)}, latent {m.latent_dim})"

    # -- generation --
    def generate(self, given: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                 to: str | Sequence[str] | None = None, n: int = 1, *, seed: int = 0, sample: bool = True,
                 voice: str | None = None, out: str | Path | None = None) -> Generated:
        """Generate ``to`` (default: every modality not given) from ``given``.

        ``given`` is one row (``{"text": "seven"}``), a list of rows (each may give different
        modalities), or None for prior samples. Each row gets ``n`` samples (``sample=False``:
        the posterior mean). ``voice`` sings generated audio in a training singer's voice.
        With ``out`` the outputs are also written as ``out/<modality>_<k>.<ext>``.

        Example::

            out = run.generate(given=[{"text": "seven"}, {"image": "a.png"}], to=["text"])
            out["text"]          # ['seven', ...]: one per given row
        """
        from .generation import generate_tensors, write_outputs

        rows = [] if given is None else ([dict(given)] if isinstance(given, Mapping) else [dict(r) for r in given])
        targets = [to] if isinstance(to, str) else list(to or [])
        private = None
        if voice is not None:
            from .voice.singers import load_table
            table = load_table(self._run, self.device)
            private = {table.modality: table.embedding(voice)}
        _, tensors = generate_tensors(self._run, rows, targets, n, seed=seed, sample=sample, device=self.device,
                                      private=private)
        files = write_outputs(self._run, tensors, Path(out)) if out is not None else []
        return Generated(self._run, tensors, files)

    # -- features --
    def encode(self, data, *, out: str | Path | None = None, plot: bool = False, progress: bool = False
               ) -> np.ndarray:
        """Latent means ``(rows, latent_dim)`` of every row (features, dimensionality reduction).

        With ``out`` (``.npy``, or ``.csv`` with the manifest row numbers) the array is written
        there, and with ``plot`` a 2-D projection beside it (``.png``).
        """
        from .encoding import encode_rows, plot_features, write_features

        rows = self._rows(data, progress)
        features = encode_rows(self._run, rows, device=self.device)
        if out is not None:
            write_features(Path(out), features, rows.rows)
            if plot:
                plot_features(Path(out).with_suffix(".png"), features, rows)
        return features

    def evaluate(self, data, *, seed: int = 0, progress: bool = False) -> dict:
        """The figures of ``polyvae evaluate --json``: ELBO terms, reconstruction per modality,
        cross-modal coherence (with a ``label`` column), log-likelihood, model-specific figures.
        On the training manifest they are taken on the rows the run held out."""
        from .evaluation.evaluate import evaluate_run
        data = data if not isinstance(data, (str, Path)) else Path(data)
        return evaluate_run(self._run, data, self.device, seed=seed, progress=_progress(progress))

    def anomalies(self, data, *, anomalous_label: str | None = None, out: str | Path | None = None,
                  progress: bool = False):
        """Reconstruction-error anomaly score per row (higher: more unusual), with ROC AUC when
        the data marks anomalies (an ``anomaly`` column, or rows whose ``label`` is
        ``anomalous_label``); with ``out`` also a CSV of the scores."""
        from .anomalies import anomaly_scores, write_scores
        result = anomaly_scores(self._run, self._rows(data, progress), anomalous_label, self.device)
        if out is not None:
            write_scores(Path(out), result)
        return result

    # -- paths --
    def interpolate(self, a, b, steps: int = 8, *, path: str = "linear", content: str | None = None,
                    spacing: str = "even", out: str | Path | None = None) -> Interpolation:
        """Walk the latent space from ``a`` to ``b`` and decode every step.

        Two images (paths or PIL images) interpolate images; singer names or audio files
        interpolate the voice while the content stays (``content="text=seven"``, as the CLI's
        ``--content``); their steps are spaced evenly in how far the voice has moved, as the run
        hears it (``spacing="even"``), or evenly in alpha (``"alpha"``). With ``out`` the steps, a
        strip and ``path.json`` are written there.
        """
        from .interpolation import interpolate_images

        if self._is_image(a) and self._is_image(b):
            result = interpolate_images(self._run, a, b, steps, Path(out) if out else None, path, self.device)
            values = self._run.modalities["image"].to_values(result.images)
            files = [*result.files, result.strip, result.manifest] if out else []
            return Interpolation(result.alphas, values, files, _read_json(result.manifest))
        from .voice.interpolate import interpolate_voices

        with tempfile.TemporaryDirectory(prefix="polyvae-interpolation-") as tmp:
            folder = Path(out) if out is not None else Path(tmp)
            files = interpolate_voices(self._run, str(a), str(b), steps, folder, kind=path, content=content,
                                       device=self.device, spacing=spacing)
            record = _read_json(files[-1])
            values = [_read_audio(f) for f in files if f.suffix == ".wav"]
        from .voice import warn_all
        warn_all(record.get("warnings", []))
        return Interpolation(record.get("alpha", []), values, files if out is not None else [], record)

    def _is_image(self, value) -> bool:
        from PIL import Image
        from .interpolation import IMAGE_SUFFIXES
        if isinstance(value, Image.Image):
            return True
        return isinstance(value, (str, Path)) and Path(value).suffix.lower() in IMAGE_SUFFIXES

    # -- voices --
    def voice_match(self, recording: str | Path, *, progress: bool = False):
        """Rank the training singers by how close the recording's voice is, and say how it
        differs (pitch, range, brightness, breathiness, vibrato). ``.ranking``, ``.nearest``,
        ``.differences``, ``.to_json()``."""
        from .voice import warn_all
        from .voice.match import match_voice
        result = match_voice(self._run, recording, device=self.device, progress=_progress(progress))
        warn_all(result.warnings)
        return result

    def morph(self, recording: str | Path, toward: str, amount: float = 0.5, *,
              out: str | Path | None = None, frames: float | None = None, progress: bool = False) -> Morphed:
        """The recording with its voice moved ``amount`` (0..1) of the way toward singer
        ``toward``, what is sung kept: a :class:`polyvae.Audio` (written to ``out`` if given).
        Up to 2 goes past the singer (the difference from the recording's voice exaggerated),
        which an ear hears as the singer more often than 1. ``frames`` (0..1; None:
        ``polyvae.pipelines.voice.FRAME_SHARE``, 0.75) is the share of each converted frame taken
        from the singer's own frames that say the same thing; 0 is the decoder alone."""
        from .morphed import Morphed
        from .voice import warn_all
        from .voice.morph import morph_voice
        result = Morphed(morph_voice(self._run, recording, toward, amount, Path(out) if out else None,
                                     device=self.device, progress=_progress(progress), frame_share=frames))
        warn_all(result.warnings)
        return result

    # -- the page --
    def report(self, out: str | Path | None = None, *, data: str | Path | None = None,
               interpolations: Sequence[str | Path] = (), seed: int = 0, progress: bool = False) -> Path:
        """Write the self-contained HTML page of the run (default ``RUN/report.html``); returns its path."""
        from .report import build_report
        say = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda _msg: None)
        return build_report(self._run, out, data, [Path(p) for p in interpolations], device=self.device,
                            seed=seed, progress=_progress(progress), say=say)

    # -- helpers --
    def _rows(self, data, progress: bool):
        from .run_data import read_rows, rows_from_values
        if isinstance(data, (str, Path)):
            return read_rows(self._run, Path(data), progress=_progress(progress))
        return rows_from_values(self._run, list(data))


def _read_json(path: Path | None) -> dict:
    import json
    if path is None or not Path(path).exists():
        return {}
    return json.loads(Path(path).read_text())


def _read_audio(path: Path) -> "Audio":
    import soundfile as sf

    from polyvae.core.sound import Audio
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return Audio(samples.mean(axis=1), rate)


# ---- data and the demo -----------------------------------------------------------------------
def demo_data(out_dir: str | Path, *, size: int | None = None, seed: int = 0, progress: bool = False) -> Path:
    """Write the embedded demo dataset (handwritten digits, their words, sung digits by 8
    synthetic singers) to ``out_dir``; returns the manifest's path. No download."""
    from .demo_data import write_demo_dataset
    return write_demo_dataset(Path(out_dir), seed=seed, size=size, progress=_progress(progress))


def voice_data(folder: str | Path, out_dir: str | Path, *, min_seconds: float = 0.6, max_seconds: float = 10.0,
               sample_rate: int | None = None, loudness: float = -23.0, vad_aggressiveness: int = 2,
               progress: bool = False):
    """Turn a folder of recordings, one sub-folder per speaker, into utterances and a manifest.

    Long recordings are cut where the voice-activity detector hears speech (utterances of
    ``min_seconds`` to ``max_seconds``), each brought to ``loudness`` dBFS, written under
    ``out_dir/clips/<speaker>/``; ``out_dir/manifest.csv`` has the ``audio`` and ``speaker``
    columns training uses. Returns a report (``.manifest``, ``.per_speaker()``, ``.warnings()``).

    Example::

        report = polyvae.voice_data("recordings/", "voices/")
        run = polyvae.train("runs/voices", data=report.manifest, modalities=["audio"])
    """
    from .voice.slicing import SlicingConfig, slice_voices
    config = SlicingConfig(min_seconds=min_seconds, max_seconds=max_seconds, sample_rate=sample_rate,
                           target_dbfs=loudness, aggressiveness=vad_aggressiveness)
    return slice_voices(Path(folder), Path(out_dir), config, progress=_progress(progress))


def demo(out_dir: str | Path = "demo-out", *, size: int | None = None, epochs: int | None = None,
         device: str = "auto", seed: int = 0):
    """The main job end to end on the demo data (what ``polyvae demo`` runs): data, training,
    generation, evaluation, voice interpolation and the report, under ``out_dir``."""
    from .demo import run_demo
    return run_demo(Path(out_dir), size=size, epochs=epochs, device=device, seed=seed)


def plugins() -> list:
    """Installed plugins: name, kind (modality, fusion, model), version, package, description.

    Listed from a cache keyed by what is installed (:mod:`polyvae.core.plugin_index`), so
    this takes milliseconds unless a plugin was installed or changed since the last call."""
    from polyvae.core.plugin_index import plugin_index
    return plugin_index().plugins


def plugin_errors() -> list[str]:
    """One message per installed plugin that could not be loaded (the others still work)."""
    from polyvae.core.plugin_index import plugin_index
    return plugin_index().errors
