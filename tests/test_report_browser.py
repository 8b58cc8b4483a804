"""The report opened offline in headless Chromium (Debian's ``chromium``, driven by Playwright):
no console errors, no network request, every image decoded, every audio clip with a duration,
the step slider switching image and audio, hover on the latent scatter; a screenshot is saved
for CI (``$ARTIFACT_DIR/report.png``, default ``tests/artifacts/report.png``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from clihelp import polyvae
from test_report import build_audio_run

CHROMIUM = os.environ.get("POLYVAE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("ARTIFACT_DIR") or Path(__file__).parent / "artifacts")

MEDIA_READY = """() => Array.from(document.images).every(i => i.complete)
  && Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)"""
MEDIA_STATE = """() => ({
  images: Array.from(document.images).map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight})),
  audio: Array.from(document.querySelectorAll('audio')).map(a => ({
    label: a.getAttribute('aria-label'), duration: a.duration, error: a.error && a.error.code}))})"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' installs playwright")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"headless Chromium not found at {CHROMIUM}: `make install` installs Debian's chromium "
                    f"(or set POLYVAE_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_report_works_offline_in_chromium(tmp_path, browser):
    run = build_audio_run(tmp_path)
    r = polyvae("report", run)
    assert r.code == 0, r.err
    report = Path(r.out.strip())

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems, requests = [], []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on("request", lambda req: requests.append(req.url))
    page.goto(report.resolve().as_uri())
    page.wait_for_function(MEDIA_READY, timeout=20_000)

    state = page.evaluate(MEDIA_STATE)
    assert len(state["images"]) > 20 and len(state["audio"]) > 20
    assert [i for i in state["images"] if i["w"] <= 0 or i["h"] <= 0] == []
    assert [a for a in state["audio"] if a["error"] or not a["duration"] > 0] == []
    # generated clips are as long as the model decodes them, at most the run's clip length
    assert all(0 < a["duration"] < 0.26 for a in state["audio"] if "from" in (a["label"] or ""))

    # the slider of the voice folder (5 steps) switches the shown spectrogram, the audio and the label
    box = page.locator(".interp", has_text="bass_boris")
    stage_image, stage_audio = box.locator(".stage-spec"), box.locator(".stage-audio")
    before = stage_image.get_attribute("src"), stage_audio.get_attribute("src")
    box.locator(".step-slider").focus()
    page.keyboard.press("End")
    assert box.locator(".step-label").inner_text() == "5 / 5 (\u03b1 = 1.00)"
    last = box.locator(".step").nth(4)
    after = stage_image.get_attribute("src"), stage_audio.get_attribute("src")
    assert after != before
    assert after == (last.locator(".step-spec").get_attribute("src"), last.locator(".step-audio").get_attribute("src"))
    assert "current" in (last.get_attribute("class") or "")
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0.29", arg=stage_audio.element_handle())
    # the image path's slider, moved one step with the arrow key
    digits = page.locator(".interp", has_text="digits")
    digits.locator(".step-slider").focus()
    page.keyboard.press("ArrowRight")
    assert digits.locator(".stage-image").get_attribute("src") == \
        digits.locator(".step").nth(1).locator(".step-image").get_attribute("src")

    # hovering a point of the latent scatter shows that example's image and label
    tip = page.locator(".scatter-wrap .tip")
    assert tip.is_hidden()
    page.locator("circle.pt").last.hover()          # drawn last: no other point covers it
    assert tip.is_visible()
    assert tip.locator(".tip-label").inner_text().startswith("label ")
    assert page.evaluate("document.querySelector('.tip-img').naturalWidth") > 0
    # colouring by singer instead of label recolours the points and rewrites the legend
    fills = lambda: set(page.eval_on_selector_all("circle.pt", "ps => ps.map(p => p.getAttribute('fill'))"))
    assert len(fills()) == 10
    page.select_option("select.colour-by", "speaker")
    assert len(fills()) == 2
    assert page.locator(".legend li").all_inner_texts() == ["alto_ann", "bass_bob"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()

    assert problems == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
