"""Voice interpolation: hold what is sung, move the voice latent from singer A to singer B.

A and B are singer names of the run (their embeddings) or audio files (the mean voice
latent of the recording). The content — the shared latent z — comes from ``--content
MOD=VALUE`` (``text=seven``, ``audio=clip.wav``, ``image=digit.png``), else from A's (or
B's) recording when one is a file, else the prior mean. Paths are linear or spherical
(:func:`voice_path`); where the model keeps frame codes and the content is a recording, each
step's frames move part of the way toward ``(1 - alpha) A's + alpha B's`` nearest frames
(:mod:`.frames`), and where the modality has spectral profiles, each step's is set to
``(1 - alpha) A's + alpha B's``. Every step decodes z with the
voice latent at that point of the path and is written as ``step_KK.wav``; each written
file is then read back and re-encoded, and its voice distance to A and to B goes into
``path.json`` with the Spearman rank correlation of those distances with alpha (a smooth,
monotone path has about +1 to A and -1 to B).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from polyvae.core.atomic import write_text_atomic
from polyvae.core.errors import UsageError
from polyvae.core.run import LoadedRun
from polyvae.core.sound import FrameBank
from polyvae.pipelines.generation import given_batch
from polyvae.pipelines.interpolation import alphas, path_between

from .encoding import convert, decode_audio, encode_voice, read_recording, reencode_files, render
from .frames import bank_of, frame_keys, nearest_frames
from .frames import toward as toward_frames
from .singers import SingerTable, load_table, voice_modality
from .spacing import SPACINGS, even_steps, fine_grid, voice_progress


@dataclass
class VoiceEndpoint:
    """One end of a path: its voice latent, and the recording when it came from a file."""

    label: str
    w: torch.Tensor
    recording_x: torch.Tensor | None = None
    #: the voice's spectral profile (SoundModality.spectral_profile), None when there is none
    profile: torch.Tensor | None = None
    #: the voice's frames keyed by what is said in them, None when the model keeps no frame codes
    frames: FrameBank | None = None


def resolve_voice(run: LoadedRun, table: SingerTable, spec: str, device="cpu") -> VoiceEndpoint:
    """A singer name of the run, or an audio file, as a voice latent ``(P,)``."""
    if spec in table.singers:
        profile = table.profile(spec)
        return VoiceEndpoint(spec, table.embedding(spec).to(device), profile=None if profile is None else profile.to(device),
                             frames=table.frames(spec))
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"'{spec}' is neither a singer of this run nor an existing audio file; "
                         f"singers: {', '.join(table.names)}")
    rec = read_recording(run, table.modality, path)
    w = encode_voice(run, table.modality, rec.windows, device).mean(0)
    mod = run.modalities[table.modality]
    profile = mod.spectral_profile(rec.windows)
    return VoiceEndpoint(str(path), w, rec.windows[:1], None if profile is None else profile.to(device),
                         bank_of(run.model, mod, table.modality, rec.windows, device))


def content_of(run: LoadedRun, modality: str, content: str | None, ends: list[VoiceEndpoint],
               device="cpu") -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """What is said while the voice moves: a recording's first clip ``(1, *shape)`` (converted,
    so its timing is kept), or else the shared latent ``(D,)`` of another modality's value (or
    of the prior mean); and a description of where it came from."""
    model = run.model
    if content:
        if "=" not in content:
            raise UsageError(f"--content '{content}' is not of the form MOD=VALUE (e.g. text=seven)")
        mod, value = (s.strip() for s in content.split("=", 1))
        if mod == modality:                    # a clip: what it says, not its voice
            return None, read_recording(run, modality, value).windows[:1], content
        return model.features(given_batch(run, [{mod: value}], 1, device))[0], None, content
    for end in ends:
        if end.recording_x is not None:
            return None, end.recording_x, f"{modality}={end.label}"
    return torch.zeros(model.latent_dim, device=device), None, "prior mean"


def voice_path(table: SingerTable, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """Voice latents ``(len(t), P)`` from ``a`` (t=0, exactly) to ``b`` (t=1, exactly).

    Linear is the straight line. Spherical runs along the great circle in the voice space
    the distances are measured in: centred on the average singer, each dimension divided by
    the within-singer spread (around the raw origin, an arc between voices of unequal
    scale can wander away from both).
    """
    if kind == "linear":
        return path_between(a, b, t, "linear")
    centre = table.matrix().to(a.device, a.dtype).mean(0)
    scale = table.scale.to(a.device, a.dtype)
    arc = path_between((a - centre) / scale, (b - centre) / scale, t, kind) * scale + centre
    arc[t == 0] = a
    arc[t == 1] = b
    return arc


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either is constant."""
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def decoded_path(run: LoadedRun, modality: str, table: SingerTable, a: VoiceEndpoint, b: VoiceEndpoint,
                 t: torch.Tensor, kind: str, z: torch.Tensor | None, clip: torch.Tensor | None,
                 device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The voice latents ``(len(t), P)`` at alphas ``t`` and the decoded steps ``(len(t), *shape)``:
    the recording ``clip`` converted (its frames moved toward A's and B's nearest frames when the
    model keeps frame codes), or else the shared latent ``z`` decoded; the spectral profile set
    to ``(1 - alpha) A's + alpha B's`` where the modality has one."""
    steps = len(t)
    voices = voice_path(table, a.w, b.w, t.to(device), kind)                   # (K, P)
    mod = run.modalities[modality]
    if clip is not None:       # a recording: its words and timing kept, the voice moved (conversion)
        x = convert(run, modality, clip.expand(steps, *clip.shape[1:]), voices, device)
        codes = frame_keys(run.model, modality, clip, device) if a.frames is not None and b.frames is not None else None
        if codes is not None:  # each step's frames part of the way to A's and B's frames saying the same
            near_a, near_b = nearest_frames(a.frames, codes), nearest_frames(b.frames, codes)
            goals = near_a + t.to(near_a.device, near_a.dtype).view(-1, 1, 1) * (near_b - near_a)   # (K, T, F)
            x = toward_frames(mod, x, goals)
    else:
        x = decode_audio(run, modality, z.view(1, -1).expand(steps, -1), voices)
    if a.profile is not None and b.profile is not None:     # the timbre moves with alpha, step by step
        x = torch.cat([mod.with_profile(x[k:k + 1], a.profile + float(t[k]) * (b.profile - a.profile))
                       for k in range(steps)])
    return voices, x


@torch.no_grad()
def interpolate_voices(run: LoadedRun, source: str, target: str, steps: int, out_dir: Path,
                       kind: str = "linear", content: str | None = None, device="cpu",
                       spacing: str = "even") -> list[Path]:
    """Write ``step_00.wav`` .. ``step_<steps-1>.wav``, ``strip.png`` and ``path.json``; returns them.
    ``spacing`` ``"even"`` places the steps evenly in voice progress as the run hears it,
    ``"alpha"`` evenly in alpha (:mod:`.spacing`)."""
    if spacing not in SPACINGS:
        raise UsageError(f"--spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    modality = voice_modality(run.model)
    run.model.to(device).eval()
    table = load_table(run, device)
    a, b = resolve_voice(run, table, source, device), resolve_voice(run, table, target, device)
    z, clip, content_label = content_of(run, modality, content, [a, b], device)
    t = alphas(steps)                                        # (says so when steps < 2)
    if spacing == "even":                                    # candidates; `steps` of them are kept
        t = fine_grid(steps)
    voices, x = decoded_path(run, modality, table, a, b, t, kind, z, clip, device)
    progress = voice_progress(*(table.distance(encode_voice(run, modality, x, device), end.w.view(1, -1))
                                for end in (a, b)))
    if spacing == "even":
        keep = even_steps(progress.tolist(), steps)
        t, voices, x, progress = t[keep], voices[keep], x[keep], progress[keep]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"step_{k:02d}.wav" for k in range(steps)]
    render(run, modality, x, files)
    heard = reencode_files(run, modality, files, device)
    to_a = table.distance(heard, a.w.view(1, -1)).tolist()
    to_b = table.distance(heard, b.w.view(1, -1)).tolist()
    alpha = [round(float(v), 6) for v in t]
    strip = out_dir / "strip.png"
    spectrogram_strip(run.modalities[modality].to_values(x.cpu()), strip, [f"{v:.2f}" for v in alpha])
    record = {
        "from": a.label, "to": b.label, "path": kind, "spacing": spacing, "content": content_label, "alpha": alpha,
        "voice_progress": [round(float(v), 6) for v in progress],
        "voice_distance_to_from": [round(v, 6) for v in to_a],
        "voice_distance_to_to": [round(v, 6) for v in to_b],
        "spearman_alpha_distance_to_from": spearman(alpha, to_a),
        "spearman_alpha_distance_to_to": spearman(alpha, to_b),
        "latent_distance_to_from": [round(float(v), 6) for v in table.distance(voices, a.w.view(1, -1))],
        "latent_distance_to_to": [round(float(v), 6) for v in table.distance(voices, b.w.view(1, -1))],
        "voice_latents": [[float(v) for v in row] for row in voices.cpu()],
        "distance": "RMS of the voice-latent difference in units of the within-singer spread "
                    "(singers.json); voice_distance_* re-encode the written WAV files; voice_progress "
                    "(d_A / (d_A + d_B)) re-encodes the decoded spectrograms, before rendering",
        "files": [f.name for f in files],
    }
    record["warnings"] = path_warnings(record, a.label, b.label)
    manifest = out_dir / "path.json"
    write_text_atomic(manifest, json.dumps(record, indent=2))
    return [*files, strip, manifest]


#: a path whose re-encoded voice does not follow alpha this closely (Spearman) is not monotone
MONOTONE = 0.9


def path_warnings(record: dict, a: str, b: str) -> list[str]:
    """Say so when the written steps do not move steadily from A's voice to B's."""
    to_a, to_b = record["spearman_alpha_distance_to_from"], record["spearman_alpha_distance_to_to"]
    if to_a != to_a or to_b != to_b:          # NaN: a constant distance, the voice never moved
        return [f"the voice did not change along the path from {a} to {b} (the re-encoded steps are all "
                f"equally far from both)"]
    if to_a >= MONOTONE and to_b <= -MONOTONE:
        return []
    return [f"the path from {a} to {b} is not monotone: as alpha grows, the steps' voice distance to {a} "
            f"follows it with Spearman {to_a:.2f} and to {b} with {to_b:.2f} (a steady path has at least "
            f"{MONOTONE} and at most -{MONOTONE}); this run's voice latent does not separate the two voices well"]


def spectrogram_strip(clips: list, path: Path, titles: list[str]) -> None:
    """The steps' spectrograms side by side (from the written sound), alpha above each."""
    from polyvae.pipelines.report.figures import draw_spectrogram, pyplot, save_figure

    plt = pyplot()
    k = len(clips)
    fig, axes = plt.subplots(1, k, figsize=(1.4 * k + 0.4, 2.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        draw_spectrogram(ax, clips[i].samples, clips[i].sample_rate)
        ax.set_title(f"\u03b1={titles[i]}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.tight_layout()
    save_figure(fig, path)
