"""Griffin-Lim rendering throughput (seconds of audio per second) against librosa's.

Command (from the repository root)::

    .venv/bin/python benchmarks/bench_griffinlim.py --threads 2

Input: ``--clips`` synthetic one-second sung notes (16 kHz: a harmonic tone with vibrato
and a few partials, different pitch per clip), turned into the audio plugin's features.
Both sides use the same settings as the plugin's defaults: n_fft 1024, hop 256, Hann
window, centred reflect-padded STFT, 32 iterations, momentum 0.99, zero initial phase.

Rows (each timed in interleaved rounds with its reference; "x ref" is the median ratio):

* ``griffin-lim``: linear magnitude -> waveform. polyvae: ``MelFeatures.griffin_lim`` on
  the whole batch at once; reference: ``librosa.griffinlim`` on the same batch (librosa
  vectorises over leading axes) and, for context, ``torchaudio.functional.griffinlim``;
* ``render``: normalised log-mel -> waveform, the path ``polyvae generate`` takes
  (``AudioModality.spectrogram_to_audio``: mel inverse by non-negative least squares,
  then Griffin-Lim); reference: what ``librosa.feature.inverse.mel_to_audio`` does
  (``mel_to_stft``: NNLS mel inverse, then ``griffinlim``), called in its two steps so the
  Griffin-Lim settings above (zero initial phase) apply, on the same mel magnitudes.

Quality is printed next to speed: spectral convergence ``||S - |STFT(y)| || / ||S||`` of
the result against the target magnitude (lower is better), so a faster path cannot hide
a worse one. Options: ``--clips``, ``--iters``, ``--rounds``, ``--seconds``, ``--device``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def sung_notes(clips: int, rate: int, samples: int, seed: int = 0) -> torch.Tensor:
    """``(clips, samples)`` harmonic notes with vibrato and a soft attack/decay."""
    gen = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    out = np.zeros((clips, samples), dtype=np.float32)
    for i in range(clips):
        f0 = 110.0 * 2 ** (gen.uniform(0, 24) / 12)
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / rate
        wave = sum(np.sin(k * phase) / k ** 1.2 for k in range(1, 9) if k * f0 < rate / 2)
        envelope = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (t[-1] - t) / 0.1 + 1e-3)
        out[i] = 0.3 * wave * envelope + 0.003 * gen.standard_normal(samples)
    return torch.from_numpy(out)


def convergence(target: torch.Tensor, wave: torch.Tensor, features) -> float:
    """Mean spectral convergence of ``|STFT(wave)|`` against ``target`` ``(N, F, T)``."""
    got = features.magnitude(torch.as_tensor(wave, dtype=torch.float32)[..., :features.config.num_samples])
    return float(((target - got).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)).mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--iters", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    threads = common.set_threads(args.threads)
    device = torch.device(args.device)

    import librosa
    import torchaudio.functional as AF

    from polyvae.plugins.audio.modality import AudioModality

    audio = AudioModality()
    features = audio.features
    c = features.config
    waves = sung_notes(args.clips, c.sample_rate, c.num_samples)
    audio.fit([w.numpy() for w in waves])
    linear = features.magnitude(waves)                                     # (N, F, T)
    mel = features.mel_magnitude(waves)                                    # (N, n_mels, T)
    normalised = audio.normalizer.apply(features.log_mel(waves)).float()    # what a decoder outputs
    clip_seconds = args.clips * c.num_samples / c.sample_rate
    linear_dev, norm_dev = linear.to(device), normalised.to(device)
    window = torch.hann_window(c.n_fft, device=device)
    lin_np, mel_np = linear.numpy(), mel.numpy()
    common_kw = dict(n_iter=args.iters, hop_length=c.hop_length, n_fft=c.n_fft, center=True,
                     pad_mode="reflect", momentum=c.griffin_lim_momentum, init=None)

    outputs = {}

    def keep(name, fn):
        def run():
            outputs[name] = fn()
        return run

    cands = {
        "polyvae griffin-lim": keep("polyvae griffin-lim", lambda: features.griffin_lim(linear_dev, args.iters)),
        "librosa griffin-lim": keep("librosa griffin-lim", lambda: librosa.griffinlim(
            lin_np, length=c.padded_samples, **common_kw)),
        "torchaudio griffin-lim": keep("torchaudio griffin-lim", lambda: AF.griffinlim(
            linear_dev, window, c.n_fft, c.hop_length, c.n_fft, 1.0, args.iters, c.griffin_lim_momentum,
            c.padded_samples, False)),
        "polyvae render": keep("polyvae render", lambda: audio.spectrogram_to_audio(norm_dev, n_iter=args.iters)),
        "librosa render": keep("librosa render", lambda: librosa.griffinlim(
            librosa.feature.inverse.mel_to_stft(mel_np, sr=c.sample_rate, n_fft=c.n_fft, power=1.0),
            length=c.padded_samples, **common_kw)),
    }
    print("machine:", common.machine_line(threads))
    print(f"{args.clips} clips x {c.num_samples / c.sample_rate:g} s at {c.sample_rate} Hz, n_fft {c.n_fft}, "
          f"hop {c.hop_length}, {args.iters} iterations, librosa {librosa.__version__}")
    for fn in cands.values():
        fn()
    rounds = common.interleaved({k: (lambda f=f: common.rate(f, clip_seconds, args.seconds, min_calls=1,
                                                               device=device)) for k, f in cands.items()},
                                args.rounds)
    refs = {"polyvae griffin-lim": "librosa griffin-lim", "torchaudio griffin-lim": "librosa griffin-lim",
            "polyvae render": "librosa render"}
    print(f"\n{'path':24s} {'audio s/s':>10s} {'range':>15s} {'x librosa':>10s} {'spectral conv.':>15s}  load")
    for name, r in rounds.items():
        ratio = common.ratio_of_rounds(r, rounds[refs[name]]) if name in refs else 1.0
        sc = convergence(linear, torch.as_tensor(np.asarray(outputs[name].cpu() if torch.is_tensor(outputs[name])
                                                            else outputs[name])), features)
        print(f"{name:24s} {r.median:10.1f} {r.spread():>15s} {ratio:10.2f} {sc:15.4f}  "
              f"{min(r.loads):.1f}..{max(r.loads):.1f}")
    print("load at end:", f"{common.load():.2f}")


if __name__ == "__main__":
    main()
