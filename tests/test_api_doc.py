"""docs/api.md is a notebook walk-through: its code runs here exactly as written, in order,
in an empty folder, and what it shows a user is checked (PIL images, polyvae.Audio, str,
many rows in one call, features, evaluation figures, paths, voices, the report, errors)."""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.slow
def test_api_walkthrough_runs_as_written(tmp_path):
    from PIL import Image

    import polyvae

    blocks = code_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 10
    namespace: dict = {}
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(printed):
            for k, block in enumerate(blocks):
                exec(compile(block, f"docs/api.md, code block {k + 1}", "exec"), namespace)
    finally:
        os.chdir(cwd)
    ns = namespace
    # training wrote the run directory the CLI writes
    run_dir = tmp_path / "runs" / "digits"
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "singers.json", "plots/losses.png"):
        assert (run_dir / name).exists(), name
    assert isinstance(ns["run"], polyvae.Run)
    assert "\nundertrained: the validation loss was still falling" in printed.getvalue()   # 3 epochs: said so
    # generation: PIL images, Audio, str; n samples per row; many rows in one call
    assert len(ns["sevens"]) == 4 and all(isinstance(i, Image.Image) for i in ns["sevens"])
    sung = ns["sung"]
    assert isinstance(sung, polyvae.Audio) and sung.samples.dtype == np.float32 and sung.sample_rate == 16000
    texts = ns["out"]["text"]
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert len(ns["prior"]["image"]) == 3
    assert [p.name for p in ns["written"].files] == ["audio_0.wav"] and (tmp_path / "generated" / "audio_0.wav").exists()
    # features and figures
    assert ns["z"].shape == (200, 32) and ns["z_words"].shape == (3, 32)
    report = ns["report"]
    assert report["rows"] == 20 and 0.0 <= report["coherence"]["1"]["text->image"] <= 1.0
    assert "log_likelihood" in report and "audio_playback" in report
    # paths, voices, the page, the error
    assert len(ns["images"].values) == 6 and ns["images"].alphas[0] == 0.0 and ns["images"].alphas[-1] == 1.0
    assert len(ns["voices"].values) == 5 and all(isinstance(v, polyvae.Audio) for v in ns["voices"].values)
    assert ns["match"].nearest in ns["run"].singers
    assert isinstance(ns["moved"], polyvae.Audio) and ns["moved"].toward == ns["run"].singers[-1]
    assert Path(tmp_path / ns["page"]).is_file()
    assert "no/such/file.png, column 'image': image file not found" in printed.getvalue()
