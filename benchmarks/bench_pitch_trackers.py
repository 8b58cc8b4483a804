"""Pitch trackers on real speech: time per second of audio and agreement with Harvest.

    apt-get install asterisk-prompt-it-menardi-wav asterisk-prompt-fr-armelle asterisk-prompt-es-co sox
    .venv/bin/python benchmarks/bench_pitch_trackers.py [--clips 25] [--threads 1]

Harvest (WORLD, through ``pyworld``) is the speech model's default tracker and most of the data
step on speech (the whole-process benchmark's spoken digits: 110 of 166 s). This prints, for the
same real recordings (the first ``--clips`` prompts of each of Debian's three real voices, 8 kHz),
each tracker's seconds per second of audio, its speed as a ratio against Harvest measured in the
same run, the share of frames it calls voiced, its voicing agreement with Harvest, and, on
frames both call voiced, the share more than two semitones from Harvest's F0 (gross errors):

* ``harvest``: polyvae's :func:`~polyvae.plugins.audio.pitch.harvest` (one thread here);
* ``harvest-narrow``: Harvest searching only an octave and a half around the clip's 5th-95th
  percentile of Dio's F0 (fewer channels: what a range fitted per clip would buy);
* ``dio``: WORLD's Dio refined by StoneMask, the same near-silence gate as polyvae's Harvest;
* ``yin``: polyvae's batched :func:`~polyvae.plugins.audio.pitch.yin` (the ``pitch_tracker =
  "yin"`` option).

Voicing is where trackers differ most: a tracker that calls fewer frames voiced changes what
the speech model's voiced channel and its excitation see, so a faster tracker is a model
change to be measured on the voice benchmarks, not a drop-in.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from polyvae.plugins.audio.pitch import F0_CEIL, F0_FLOOR, harvest, silence_unvoiced, yin

VOICES = (("it_IT_f_Menardi", "wav"), ("fr", "gsm"), ("es", "gsm"))
SAMPLE_RATE, HOP = 8000, 160


def real_clips(per_voice: int) -> list[np.ndarray]:
    folder = tempfile.mkdtemp(prefix="pitch-")
    clips = []
    for voice, ext in VOICES:
        files = sorted(glob.glob(f"/usr/share/asterisk/sounds/{voice}/*.{ext}"))[:per_voice]
        if not files:
            sys.exit(f"no prompts of {voice}: apt-get install the asterisk-prompt packages (see the docstring)")
        for f in files:
            out = f"{folder}/{voice}_{os.path.basename(f)}.wav"
            subprocess.run(["sox", f, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", out], check=True,
                           capture_output=True)
            clips.append(sf.read(out)[0].astype(np.float64))
    return clips


def dio(wave: np.ndarray, frames: int) -> np.ndarray:
    import pyworld

    f0, t = pyworld.dio(wave, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=1000 * HOP / SAMPLE_RATE)
    f0 = pyworld.stonemask(wave, f0, t, SAMPLE_RATE)[:frames]
    return silence_unvoiced(wave, np.pad(f0, (0, frames - len(f0))), HOP)


def harvest_narrow(wave: np.ndarray, frames: int) -> np.ndarray:
    import pyworld

    rough = dio(wave, frames)
    voiced = rough[rough > 0]
    lo, hi = F0_FLOOR, F0_CEIL
    if len(voiced) >= 5:
        lo = max(F0_FLOOR, np.percentile(voiced, 5) / 1.6)
        hi = min(F0_CEIL, np.percentile(voiced, 95) * 1.6)
    f0, _ = pyworld.harvest(wave, SAMPLE_RATE, f0_floor=lo, f0_ceil=hi, frame_period=1000 * HOP / SAMPLE_RATE)
    return silence_unvoiced(wave, np.pad(f0[:frames], (0, max(0, frames - len(f0)))), HOP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=25, help="prompts per real voice")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = real_clips(args.clips)
    seconds = sum(len(c) for c in clips) / SAMPLE_RATE
    frames = [1 + len(c) // HOP for c in clips]
    trackers = {
        "harvest": lambda c, n: harvest([c], SAMPLE_RATE, HOP, n, threads=1)[0][0].numpy(),
        "harvest-narrow": harvest_narrow,
        "dio": dio,
        "yin": lambda c, n: yin(torch.from_numpy(c).float()[None], SAMPLE_RATE, HOP, frames=n)[0][0].numpy(),
    }
    tracks, took = {}, {}
    for name, track in trackers.items():
        start = time.perf_counter()
        tracks[name] = [track(c, n) for c, n in zip(clips, frames)]
        took[name] = time.perf_counter() - start
    reference = np.concatenate(tracks["harvest"])
    print(f"{len(clips)} real clips, {seconds:.0f} s of audio, {args.threads} thread(s)")
    print(f"{'tracker':16} {'s per s':>8} {'speed vs Harvest':>17} {'voiced':>7} {'voicing agrees':>15} {'gross errors':>13}")
    for name in trackers:
        f0 = np.concatenate(tracks[name])
        both = (reference > 0) & (f0 > 0)
        gross = np.mean(np.abs(np.log2(f0[both] / reference[both])) > 1 / 6) if both.any() else float("nan")
        print(f"{name:16} {took[name] / seconds:8.4f} {took['harvest'] / took[name]:16.1f}x {np.mean(f0 > 0):7.3f} "
              f"{np.mean((f0 > 0) == (reference > 0)):15.3f} {gross:13.3f}")


if __name__ == "__main__":
    main()
