"""Voice end to end on a tiny demo run: singers.json at training end, interpolate between
singers (exact endpoints, both paths), voice-match, voice-morph, generate --voice, errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from clihelp import polyvae
from polyvae.core.run import load_run
from polyvae.pipelines.demo_data.singing import SINGERS
from polyvae.pipelines.run_data import held_out, read_rows
from polyvae.pipelines.voice.singers import SINGERS_FILE, read_table

#: small audio networks and clips so that a run trains in seconds
AUDIO_CONFIG = """
[modality_options.audio]
n_mels = 32
width = 16
hidden = 32
private_dim = 4
"""


@pytest.fixture(scope="module")
def voice_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("voice")
    assert polyvae("data", "demo", root / "data", "--size", "24", "--seed", "3").code == 0
    config = root / "audio.toml"
    config.write_text(AUDIO_CONFIG)
    result = polyvae("train", root / "run", "--data", root / "data" / "manifest.csv", "--modalities", "text,audio",
                     "--epochs", "3", "--latent-dim", "4", "--batch-size", "8", "--config", config)
    assert result.code == 0, result.err
    assert "singers:" in result.err
    return root


def _clip_of(root, singer: str):
    import csv
    rows = list(csv.DictReader(open(root / "data" / "manifest.csv")))
    return root / "data" / next(r["audio"] for r in rows if r["speaker"] == singer)


def test_training_writes_singer_embeddings_as_means_of_the_voice_latent(voice_run):
    table = read_table(voice_run / "run")
    assert table is not None and sorted(table.names) == sorted(s.name for s in SINGERS)
    run = load_run(voice_run / "run")
    train_rows, _ = held_out(run, read_rows(run, voice_run / "data" / "manifest.csv", progress=lambda x, _l: x))
    assert sum(e.clips for e in table.singers.values()) == len(train_rows)
    with torch.no_grad():
        w = run.model.encode(train_rows.batch(slice(0, len(train_rows)))).private_mean("audio")
    speakers = np.array(train_rows.metadata["speaker"])
    for name, entry in table.singers.items():
        expected = w[torch.as_tensor(speakers == name)].mean(0)
        torch.testing.assert_close(entry.embedding, expected, rtol=1e-5, atol=1e-6)
        assert entry.features is not None and entry.features.median_pitch_hz > 60
        # the speech model's spectral profile: the mean and spread of the log-mel of the singer's clips
        clips = train_rows.data["audio"][torch.as_tensor(speakers == name)]
        torch.testing.assert_close(entry.profile, run.modalities["audio"].spectral_profile(clips))
        # and its frames, each keyed by its content code: every frame inside the singer's clips
        frames, inside = run.modalities["audio"].spectral_frames(clips)
        assert len(entry.frames) == int((inside > 0.5).sum())
        assert entry.frames.keys.shape[1] == 3 * run.modalities["audio"].opts.content_dim    # with context
        torch.testing.assert_close(entry.frames.frames.float(), frames[inside > 0.5], atol=1e-2, rtol=1e-3)


def test_interpolate_between_two_singers(voice_run):
    out = voice_run / "path"
    r = polyvae("interpolate", voice_run / "run", "--from", "bass_boris", "--to", "soprano_sofia", "--steps", "5",
                "--content", "text=seven", "--spacing", "alpha", "--out", out)
    assert r.code == 0, r.err
    record = json.loads((out / "path.json").read_text())
    singers = json.loads((voice_run / "run" / SINGERS_FILE).read_text())["singers"]
    assert record["alpha"] == [0.0, 0.25, 0.5, 0.75, 1.0] and record["spacing"] == "alpha"
    assert record["voice_latents"][0] == singers["bass_boris"]["embedding"]          # exactly A
    assert record["voice_latents"][-1] == singers["soprano_sofia"]["embedding"]      # exactly B
    assert record["latent_distance_to_from"][0] == 0.0 and record["latent_distance_to_to"][-1] == 0.0
    assert len(record["voice_distance_to_from"]) == len(record["voice_distance_to_to"]) == 5
    assert -1.0 <= record["spearman_alpha_distance_to_from"] <= 1.0
    assert record["content"] == "text=seven"
    for k in range(5):
        info = sf.info(out / f"step_{k:02d}.wav")             # as long as the clip the model decodes
        assert info.samplerate == 16000 and 8000 <= info.frames <= 16000
    assert (out / "strip.png").stat().st_size > 1000


def test_spherical_path_and_an_audio_file_as_one_end(voice_run):
    clip = _clip_of(voice_run, "alto_alma")
    out = voice_run / "arc"
    r = polyvae("interpolate", voice_run / "run", "--from", clip, "--to", "child_kai", "--steps", "3",
                "--path", "spherical", "--out", out)
    assert r.code == 0, r.err
    record = json.loads((out / "path.json").read_text())
    singers = json.loads((voice_run / "run" / SINGERS_FILE).read_text())["singers"]
    assert record["voice_latents"][-1] == singers["child_kai"]["embedding"]
    assert record["content"] == f"audio={clip}"                   # content from the given clip
    assert record["path"] == "spherical" and len(record["files"]) == 3
    # the default spacing: three of the fine grid's candidates (0, 1/6, ..., 1), the ends kept,
    # the middle one where the run's own encoder hears the voice between the ends' (this 3-epoch
    # run's decoder is too smooth for its voice to reach B's: its spread is restored only up to
    # SPREAD_RATIO, so the last step's progress is about 0.43, 0.64 with the old bound of 2)
    assert record["spacing"] == "even"
    alpha, progress = record["alpha"], record["voice_progress"]
    assert alpha[0] == 0.0 and alpha[-1] == 1.0 and 0.0 < alpha[1] < 1.0
    assert round(alpha[1] * 6, 4) == round(alpha[1] * 6)
    assert len(progress) == 3 and progress[0] < progress[1] < progress[-1]
    assert progress[-1] - progress[0] > 0.15                        # the voice moves toward B


def test_voice_match_ranks_every_singer(voice_run):
    clip = _clip_of(voice_run, "mezzo_mira")
    r = polyvae("voice-match", voice_run / "run", clip, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    ranking = result["ranking"]
    assert sorted(x["singer"] for x in ranking) == sorted(s.name for s in SINGERS)
    distances = [x["distance"] for x in ranking]
    assert distances == sorted(distances)
    for x in ranking:
        assert x["similarity"] == pytest.approx(math.exp(-0.5 * x["distance"] ** 2), rel=1e-6)
    assert result["nearest"] == ranking[0]["singer"]
    assert len(result["differences"]) == 5 and ranking[0]["singer"] in result["differences"][0]
    assert result["features"]["median_pitch_hz"] > 150            # mezzo_mira sings from 247 Hz

    # calibrated on the training clips: a percentile per singer, a threshold, and a verdict
    assert all(x["percentile"] is None or 0.0 <= x["percentile"] <= 100.0 for x in ranking)
    assert result["calibration"]["threshold"] > 0 and 0.0 <= result["calibration"]["eer"] <= 0.5
    assert ranking[0]["same_voice"] == (ranking[0]["distance"] < result["calibration"]["threshold"])
    assert set(result["evidence"]) == {"enough", "confidence", "voiced_seconds", "reason"}
    assert result["summary"].startswith(("Closest: ", "Not enough evidence"))

    table = polyvae("voice-match", voice_run / "run", clip)
    assert table.code == 0 and "similarity" in table.out and "percentile" in table.out and "Pitch:" in table.out


def test_voice_morph_keeps_the_length_and_moves_toward_the_singer(voice_run, tmp_path):
    # a 2.5 s recording: the morph works window by window and keeps the length
    parts = [sf.read(_clip_of(voice_run, s), dtype="float32")[0] for s in ("rough_rex", "tenor_tariq")]
    recording = np.concatenate([parts[0], parts[1], parts[0][:8000]])
    sf.write(tmp_path / "me.wav", recording, 16000)
    r = polyvae("voice-morph", voice_run / "run", tmp_path / "me.wav", "--toward", "soprano_sofia",
                "--amount", "1", "--out", tmp_path / "out.wav", "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["windows"] == 3
    audio, rate = sf.read(tmp_path / "out.wav")
    assert rate == 16000 and len(audio) == len(recording) and np.abs(audio).max() > 0.1
    assert math.isfinite(result["voice_distance_after"]) and result["voice_distance_before"] > 0
    # amount 0 keeps the voice: a different output, so the voice latent really is what moved
    r = polyvae("voice-morph", voice_run / "run", tmp_path / "me.wav", "--toward", "soprano_sofia",
                "--amount", "0", "--out", tmp_path / "kept.wav")
    assert r.code == 0, r.err
    kept = sf.read(tmp_path / "kept.wav")[0]
    assert len(kept) == len(recording) and np.abs(kept - audio).mean() > 1e-3
    # past the target (up to 2): another output again; beyond 2 is refused in one line
    r = polyvae("voice-morph", voice_run / "run", tmp_path / "me.wav", "--toward", "soprano_sofia",
                "--amount", "1.5", "--out", tmp_path / "past.wav")
    assert r.code == 0, r.err
    past = sf.read(tmp_path / "past.wav")[0]
    assert len(past) == len(recording) and np.abs(past - audio).mean() > 1e-3
    r = polyvae("voice-morph", voice_run / "run", tmp_path / "me.wav", "--toward", "soprano_sofia",
                "--amount", "2.5", "--out", tmp_path / "no.wav")
    assert r.code == 2 and "0.0<=x<=2.0" in r.err and not (tmp_path / "no.wav").exists()


def _tilt(paths) -> np.ndarray:
    """Long-term average log-mel spectrum of sound files, its mean over bins removed (the shape
    of the timbre, whatever the level), measured independently of polyvae with librosa."""
    import librosa
    frames = []
    for path in paths:
        wave, rate = sf.read(path, dtype="float32")
        mel = librosa.feature.melspectrogram(y=wave, sr=rate, n_fft=1024, hop_length=256, n_mels=32)
        loud = mel.sum(0) > 1e-3 * mel.sum(0).max()
        frames.append(np.log(mel[:, loud] + 1e-6))
    ltas = np.concatenate(frames, axis=1).mean(1)
    return ltas - ltas.mean()


def test_voice_morph_moves_the_spectral_profile_with_the_amount(voice_run, tmp_path):
    """The output's long-term spectrum goes from the recording's own toward the singer's."""
    import csv

    import polyvae as api
    run = api.load(voice_run / "run")
    source = _clip_of(voice_run, "bass_boris")
    rows = list(csv.DictReader(open(voice_run / "data" / "manifest.csv")))
    target = _tilt([voice_run / "data" / r["audio"] for r in rows if r["speaker"] == "soprano_sofia"])
    gaps = []
    for amount in (0.0, 1.0):
        out = tmp_path / f"{amount}.wav"
        run.morph(source, toward="soprano_sofia", amount=amount, out=out)
        gaps.append(float(np.abs(_tilt([out]) - target).mean()))
    assert gaps[1] < 0.7 * gaps[0], gaps


def test_voice_morph_moves_every_frame_toward_the_singers_own_frames(voice_run, tmp_path):
    """With the singer's frame bank (kNN-VC), the written frames lie nearer the singer's real
    frames than the decoder's alone do: measured on the WAV read back, against every frame of
    the singer's training clips."""
    import polyvae as api
    from polyvae.pipelines.voice.singers import load_table

    run = api.load(voice_run / "run")
    loaded = load_run(voice_run / "run")
    mod = loaded.modalities["audio"]
    bank = load_table(loaded).frames("soprano_sofia")
    source = _clip_of(voice_run, "bass_boris")
    gaps = {}
    for share in (0.0, 1.0):                        # the API's frames=, the CLI's --frames
        out = tmp_path / f"{share}.wav"
        run.morph(source, toward="soprano_sofia", amount=1.0, out=out, frames=share)
        written, inside = mod.spectral_frames(mod.preprocess([mod.read(out.name, out.parent)]))
        heard = written[inside > 0.5]
        gaps[share] = float(torch.cdist(heard, bank.frames.float()).min(1).values.mean())
    assert gaps[1.0] < 0.9 * gaps[0.0], gaps
    r = polyvae("voice-morph", voice_run / "run", source, "--toward", "soprano_sofia", "--amount", "1",
                "--frames", "0", "--out", tmp_path / "cli.wav")
    assert r.code == 0, r.err                      # the same conversion as frames=0 from Python
    assert np.array_equal(sf.read(tmp_path / "cli.wav")[0], sf.read(tmp_path / "0.0.wav")[0])
    r = polyvae("voice-morph", voice_run / "run", source, "--toward", "soprano_sofia", "--frames", "1.5",
                "--out", tmp_path / "no.wav")
    assert r.code == 2 and "0.0<=x<=1.0" in r.err


def test_generate_in_a_singers_voice(voice_run):
    outs = {}
    for singer in ("bass_boris", "soprano_sofia"):
        r = polyvae("generate", voice_run / "run", "--given", "text=three", "--to", "audio", "--mean",
                    "--voice", singer, "--out", voice_run / singer)
        assert r.code == 0, r.err
        outs[singer] = sf.read(voice_run / singer / "audio_0.wav")[0]
    low, high = outs["bass_boris"], outs["soprano_sofia"]
    n = min(len(low), len(high))              # a voice sets its own pace: lengths may differ too
    assert not np.allclose(low[:n], high[:n])


def test_voice_errors_are_one_line(voice_run, tmp_path):
    r = polyvae("voice-morph", voice_run / "run", _clip_of(voice_run, "bass_boris"), "--toward", "nobody",
                "--out", tmp_path / "x.wav")
    assert r.code == 2 and "no singer 'nobody'" in r.err and "soprano_sofia" in r.err
    r = polyvae("voice-match", voice_run / "run", tmp_path / "missing.wav")
    assert r.code == 2 and "missing.wav" in r.err and "not found" in r.err
    r = polyvae("interpolate", voice_run / "run", "--from", "nobody", "--to", "bass_boris", "--out", tmp_path / "p")
    assert r.code == 2 and "neither a singer" in r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize("command", ["voice-match", "voice-morph"])
def test_voice_commands_have_help_with_an_example(command):
    r = polyvae(command, "--help")
    assert r.code == 0 and "Example" in r.out and "RUN_DIR" in r.out


def test_a_run_without_a_voice_latent_says_so(voice_run, tmp_path):
    config = tmp_path / "novoice.toml"
    config.write_text(AUDIO_CONFIG.replace("private_dim = 4", "private_dim = 0"))
    r = polyvae("train", tmp_path / "run", "--data", voice_run / "data" / "manifest.csv", "--modalities", "text,audio",
                "--epochs", "1", "--latent-dim", "4", "--config", config, "--quiet")
    assert r.code == 0, r.err
    assert not (tmp_path / "run" / SINGERS_FILE).exists()
    r = polyvae("voice-match", tmp_path / "run", _clip_of(voice_run, "bass_boris"))
    assert r.code == 2 and "no voice latent" in r.err


def test_evaluate_reports_audio_playback_quality(voice_run):
    r = polyvae("evaluate", voice_run / "run", "--data", voice_run / "data" / "manifest.csv", "--json")
    assert r.code == 0, r.err
    playback = json.loads(r.out)["audio_playback"]
    assert playback["count"] >= 1
    # mel -> Griffin-Lim -> mel of real clips comes back close (measured ~0.07 on the demo clips;
    # the excitation renderer ~0.36 here, ~0.21 on real speech; silence would be 1)
    assert 0.0 < playback["spectral_convergence_mean"] < 0.3


def test_voice_results_say_when_they_fail(voice_run, tmp_path):
    """A morph that moves away from its target, a path that is not monotone, too few clips of a
    singer: each is a warning with the figure, not silence."""
    import warnings as pywarnings

    import polyvae as api
    from polyvae.pipelines.voice.interpolate import path_warnings

    record = {"spearman_alpha_distance_to_from": 0.5, "spearman_alpha_distance_to_to": -0.95}
    (line,) = path_warnings(record, "a", "b")
    assert "not monotone" in line and "Spearman 0.50" in line
    assert path_warnings({"spearman_alpha_distance_to_from": 0.95, "spearman_alpha_distance_to_to": -0.92},
                         "a", "b") == []
    run = api.load(voice_run / "run", device="cpu")
    table = read_table(voice_run / "run")
    assert all("training clip(s)" in w for w in table.warnings(min_clips=100))
    clip = _clip_of(voice_run, "bass_boris")
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        moved = run.morph(clip, toward="soprano_sofia", amount=1.0)
    said = [str(w.message) for w in caught if w.category.__name__ == "VoiceWarning"]
    if moved.distance_after >= moved.distance_before:
        assert said and "did not move the voice toward soprano_sofia" in said[0]
        r = polyvae("voice-morph", voice_run / "run", clip, "--toward", "soprano_sofia", "--amount", "1",
                    "--out", tmp_path / "m.wav")
        assert r.code == 0 and "Warning: the morph did not move the voice" in r.err
    else:
        assert said == []
