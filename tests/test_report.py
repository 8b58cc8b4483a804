"""``polyvae report``: one self-contained HTML page (everything embedded as data: URIs), with the
sections a run's modalities call for, interpolation folders picked up, and the demo step."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from clihelp import polyvae
from conftest import write_digits

TINY_CONFIG = """\
[modality_options.image]
size = 16
[modality_options.audio]
sample_rate = 8000
duration = 0.25
n_fft = 256
hop_length = 64
n_mels = 16
depth = 2
width = 8
hidden = 64
griffin_lim_iters = 8
inverse_mel_iters = 10
"""


def tone(frequency: float, seconds: float = 0.25, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t) * np.hanning(t.size)).astype(np.float32)


def write_digits_with_audio(folder: Path, n: int = 40) -> Path:
    """Digits (image, word) plus a short tone per row whose pitch depends on the digit, and a singer."""
    manifest = write_digits(folder, n=n, size=16)
    rows = list(csv.DictReader(manifest.open()))
    (folder / "audio").mkdir(exist_ok=True)
    for i, row in enumerate(rows):
        sf.write(folder / "audio" / f"{i:04d}.wav", tone(220 * 2 ** (int(row["label"]) / 12)), 8000)
        row["audio"] = f"audio/{i:04d}.wav"
        row["speaker"] = ("alto_ann", "bass_bob")[i % 2]
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "text", "audio", "speaker", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def train_tiny(run_dir: Path, manifest: Path, *extra: str, epochs: int = 1) -> Path:
    config = run_dir.parent / "tiny.toml"
    config.write_text(TINY_CONFIG)
    r = polyvae("train", run_dir, "--data", manifest, "--epochs", str(epochs), "--latent-dim", "4",
                "--config", config, "--quiet", *extra)
    assert r.code == 0, r.err
    return run_dir


def write_voice_folder(folder: Path, steps: int = 5) -> Path:
    """What voice interpolation writes: step_00.wav.., path.json and a strip PNG."""
    folder.mkdir(parents=True)
    for k in range(steps):
        sf.write(folder / f"step_{k:02d}.wav", tone(200 + 100 * k, 0.3), 8000)
    (folder / "path.json").write_text(json.dumps(
        {"from": "bass_boris", "to": "soprano_sofia", "path": "linear", "content": "text=seven",
         "alpha": [k / (steps - 1) for k in range(steps)]}))
    Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (16, 1))).save(folder / "strip.png")
    return folder


def build_audio_run(base: Path) -> Path:
    """A trained image+text+audio run with an image interpolation and a voice folder under it."""
    manifest = write_digits_with_audio(base / "data")
    run = train_tiny(base / "run", manifest)
    images = manifest.parent / "images"
    r = polyvae("interpolate", run, "--from", images / "0000.png", "--to", images / "0001.png",
                "--steps", "4", "--out", run / "interpolation" / "digits")
    assert r.code == 0, r.err
    write_voice_folder(run / "interpolation" / "voices")
    return run


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory) -> Path:
    return build_audio_run(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def audio_report(audio_run) -> str:
    """``polyvae report RUN`` once; the page's HTML."""
    r = polyvae("report", audio_run)
    assert r.code == 0, r.err
    assert Path(r.out.strip()) == audio_run / "report.html"
    return (audio_run / "report.html").read_text()


DATA_URI = re.compile(r'data:([\w/+.-]+);base64,([A-Za-z0-9+/=]+)')


def embedded(html: str) -> list[tuple[str, bytes]]:
    return [(mime, base64.b64decode(payload)) for mime, payload in DATA_URI.findall(html)]


def test_report_is_one_self_contained_page(audio_run, audio_report):
    html = audio_report
    # nothing points outside the file: every src/href is a data: URI or an anchor
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:", "#")), attr
    assert "http://" not in html and "https://" not in html
    assert "Content-Security-Policy" in html and 'class="warn"' not in html
    for key in ("overview", "metrics", "plots", "latent", "generation", "interpolation", "config"):
        assert f'<section id="{key}">' in html
    # every training plot is embedded byte for byte
    plots = sorted((audio_run / "plots").glob("*.png"))
    assert {p.name for p in plots} >= {"losses.png", "latent.png", "cross_text_to_image.png",
                                       "generated_audio.png", "interpolation.png"}
    for p in plots:
        assert base64.b64encode(p.read_bytes()).decode() in html, p.name
    # metrics table: one row per epoch with the loss terms
    metrics = [json.loads(line) for line in (audio_run / "metrics.jsonl").read_text().splitlines()]
    assert "<th>train/nll/audio</th>" in html and "<th>train/kl</th>" in html
    assert html.count("<tr><td>") >= len(metrics)


def test_embedded_images_and_audio_decode(audio_run, audio_report):
    html = audio_report
    media = embedded(html)
    images = [data for mime, data in media if mime.startswith("image/")]
    clips = [data for mime, data in media if mime.startswith("audio/")]
    assert len(images) > 20 and len(clips) > 20
    for data in images:
        with Image.open(io.BytesIO(data)) as img:
            assert img.width > 0 and img.height > 0
    for data in clips:
        wave, rate = sf.read(io.BytesIO(data))
        assert rate > 0 and len(wave) > 0 and np.isfinite(wave).all()
    # the voice folder's steps and strip, and the image interpolation's PNG steps, are all in
    voices = audio_run / "interpolation" / "voices"
    for file in sorted(voices.glob("step_*.wav")) + [voices / "strip.png"]:
        assert file.read_bytes() in [data for _, data in media], file.name
    for file in sorted((audio_run / "interpolation" / "digits").glob("step_*.png")):
        assert file.read_bytes() in images, file.name
    assert "voices: bass_boris \u2192 soprano_sofia" in html
    assert "content held fixed: text=seven" in html
    # sliders: the fresh latent path (8 steps), the image folder (4) and the voices (5)
    assert sorted(int(m) for m in re.findall(r'class="step-slider" min="0" max="(\d+)"', html)) == [3, 4, 7]
    # latent scatter: a circle and a thumbnail per row, coloured by label or by singer
    payload = json.loads(re.search(r'class="scatter-data">(.*?)</script>', html).group(1))
    assert html.count('class="pt"') == len(payload["rows"]) == 40
    assert all(t.startswith("data:image/png;base64,") for t in payload["thumbs"])
    assert set(payload["columns"]["label"]) == {str(d) for d in range(10)}
    assert [v for v, _ in payload["colourings"]["speaker"]["legend"]] == ["alto_ann", "bass_bob"]
    assert '<select class="colour-by"><option value="label">label</option><option value="speaker">' in html


def test_report_handles_a_subset_of_modalities(tmp_path, audio_run):
    """Another manifest with only text: examples come from it, sections adapt, nothing breaks."""
    only_text = tmp_path / "words.csv"
    only_text.write_text("text,label\n" + "".join(f"{w},{d}\n" for d, w in enumerate(
        ["zero", "one", "two", "three", "four", "five"])))
    out = tmp_path / "words.html"
    r = polyvae("report", audio_run, "--data", only_text, "--out", out)
    assert r.code == 0, r.err
    html = out.read_text()
    assert 'class="warn"' not in html
    assert "<h3>text \u2192 image, audio</h3>" in html and "given image" not in html
    assert "6 rows of" in html


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """A single-modality run (images, with a label column)."""
    base = tmp_path_factory.mktemp("images")
    return train_tiny(base / "run", write_digits(base / "data", n=30, size=16, columns=("image", "label")))


def test_single_modality_run_shows_reconstructions(image_run):
    r = polyvae("report", image_run)
    assert r.code == 0, r.err
    html = (image_run / "report.html").read_text()
    assert "<h3>image \u2192 image (reconstruction)</h3>" in html and 'class="warn"' not in html
    assert '<section id="latent">' in html and "<audio" not in html


def test_run_whose_manifest_moved_shows_prior_samples(tmp_path, image_run):
    moved = tmp_path / "run"
    shutil.copytree(image_run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["manifest"] = str(tmp_path / "gone" / "manifest.csv")
    (moved / "config.json").write_text(json.dumps(config))
    r = polyvae("report", moved, "--out", tmp_path / "page.html")
    assert r.code == 0, r.err
    html = (tmp_path / "page.html").read_text()
    assert 'class="warn"' not in html
    assert "Prior samples" in html and "gone/manifest.csv not found" in html
    assert '<section id="latent">' not in html
    assert html.count('class="thumb"') == 8


def test_demo_step_writes_the_report_and_finds_interpolations(tmp_path, image_run):
    import polyvae
    from polyvae.pipelines.demo import DemoResult, _write_report

    out_dir = tmp_path / "demo"
    write_voice_folder(out_dir / "voices")
    result = DemoResult(out_dir, Path("unused.csv"), image_run)
    _write_report(result, polyvae.load(image_run, device="cpu"))
    assert result.report == out_dir / "report.html"
    html = result.report.read_text()
    assert html.count('class="interp"') == 2            # the fresh latent path + the demo's voices
    assert "voices: bass_boris \u2192 soprano_sofia" in html


def test_report_names_the_run_and_explains_each_evaluation_figure(tmp_path, image_run):
    from polyvae.pipelines.report.tables import METRIC_NOTES

    manifest = json.loads((image_run / "config.json").read_text())["data"]["manifest"]
    r = polyvae("evaluate", image_run, "--data", manifest, "--json")
    assert r.code == 0, r.err
    figures = json.loads(r.out)
    (image_run / "evaluation.json").write_text(r.out)
    try:
        r = polyvae("report", image_run, "--out", tmp_path / "page.html")
        assert r.code == 0, r.err
    finally:
        (image_run / "evaluation.json").unlink()
    html = (tmp_path / "page.html").read_text()
    assert f"<title>polyvae run: {image_run.name}</title>" in html
    for key in figures:
        assert key in METRIC_NOTES, f"no explanation for '{key}'"
        assert html_escape(METRIC_NOTES[key]) in html, key


def html_escape(text: str) -> str:
    import html as html_module
    return html_module.escape(text, quote=True)


def test_report_usage_errors(tmp_path):
    r = polyvae("report", "--help")
    assert r.code == 0 and "polyvae report runs/mvae" in r.out
    (tmp_path / "empty").mkdir()
    r = polyvae("report", tmp_path / "empty")
    assert r.code == 2 and "not a polyvae run" in r.err and "Traceback" not in r.err
