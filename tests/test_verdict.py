"""The verdict's checks, each on measured inputs where it must fire and where it must not."""
from __future__ import annotations

import math

import pytest
import torch

from polyvae.core.verdict import (COLLAPSED_SPREAD, Finding, collapsed_symptom, evaluation_verdict, loss_trend,
                                  read_verdict, spread_ratio, write_verdict)
from polyvae.plugins.text.modality import TextModality
from polyvae.plugins.text.repetition import loop_in


def history(losses: list[float], key: str = "validation/loss") -> list[dict]:
    return [{"epoch": i + 1, "train/loss": v, key: v} for i, v in enumerate(losses)]


def test_a_loss_still_falling_fast_is_undertrained():
    finding = loss_trend(history([2724.0, 2603.0, 2562.0, 2378.0, 2263.0]))    # the new user's 5 epochs
    assert finding is not None and finding.check == "undertrained"
    assert "last 1 of 5 epochs brought 25% of its fall" in finding.message
    assert finding.figure == pytest.approx(115 / 461, rel=1e-3)


def test_a_converged_curve_says_nothing():
    decay = [1000 * math.exp(-e / 3) + 500 for e in range(30)]                # 30 epochs, flat at the end
    assert loss_trend(history(decay)) is None
    noise = [0.0207 + 1e-7 * (-1) ** e for e in range(30)]                    # noise around a converged loss
    assert loss_trend(history(noise)) is None


def test_a_loss_back_up_from_its_best_is_overfitting():
    finding = loss_trend(history([100.0, 60.0, 50.0, 55.0, 60.0, 64.0]))
    assert finding is not None and finding.check == "overfitting"
    assert "at epoch 3 of 6" in finding.message


def test_without_validation_rows_the_training_loss_is_judged():
    rows = [{"epoch": i + 1, "train/loss": v} for i, v in enumerate([10.0, 8.0, 6.0, 4.0])]
    finding = loss_trend(rows)
    assert finding is not None and "training loss" in finding.message


def test_spread_of_decoded_rows_against_the_real_ones():
    real = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    flat = real.mean(0, keepdim=True).expand_as(real) + 0.01 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
    assert spread_ratio(real, real) == pytest.approx(1.0)
    assert spread_ratio(flat, real) < 0.01
    symptom = collapsed_symptom("image", "reconstructions", flat, real)
    assert symptom is not None and "image reconstructions vary 0% as much as the real image rows" in symptom.text
    assert collapsed_symptom("image", "reconstructions", 0.8 * real + 0.1, real) is None       # 64% of the spread
    assert collapsed_symptom("image", "reconstructions", 0.3 * real, real).figure < COLLAPSED_SPREAD


def test_loops_are_found_and_ordinary_texts_are_not():
    assert loop_in("The triangle triangle triangle triangle") is not None
    assert loop_in("re   re   re   re   ") == "re   "
    for ordinary in ("The red triangle", "banana", "seven", "The blue circle is above the green square", "hmmm"):
        assert loop_in(ordinary) is None, ordinary


def test_text_symptoms_name_the_loop_and_compare_with_the_real_texts():
    mod = TextModality(tokens="chars")        # characters: the loops below fit in the texts' length
    real_texts = [f"The {c} {s}" for c in ("red", "green", "blue") for s in ("circle", "square", "triangle")]
    mod.fit(real_texts)
    real = mod.preprocess(real_texts)
    looping = mod.preprocess(["The e e e e e e e", "re re re re re"] * 3 + real_texts[:3])   # within 18 characters
    (repeats,) = [s for s in mod.symptoms(looping, real, "generated from image") if s.check == "repeats"]
    assert "text generated from image repeat themselves: 6 of 9 loop" in repeats.text
    assert "'The e e e e e e e'" in repeats.text and "real texts: 0%" in repeats.text
    alike = [s for s in mod.symptoms(mod.preprocess(["The red circle"] * 9), real, "reconstructions")]
    assert [s.check for s in alike] == ["identical"] and "1 different among 9" in alike[0].text
    assert mod.symptoms(real, real, "reconstructions") == []


def test_an_evaluation_on_few_rows_is_called_unreliable():
    from conftest import write_digits  # noqa: F401  (keeps the helper importable here)

    class Nothing(torch.nn.Module):
        modalities: dict = {}

        def supports(self, capability):
            return False

        def reconstruct(self, batch):
            return {}

    from polyvae.core.dataset import TensorData
    rows = TensorData({"x": torch.zeros(4, 2)}, {"x": torch.ones(4, dtype=torch.bool)}, [1, 2, 3, 4])
    (finding,) = evaluation_verdict(Nothing(), rows, "cpu", on_training_manifest=True)
    assert finding.check == "few-rows"
    assert "evaluated on 4 rows" in finding.message and "+-0.49" in finding.message
    assert "validation_fraction" in finding.message
    many = TensorData({"x": torch.zeros(30, 2)}, {"x": torch.ones(30, dtype=torch.bool)}, list(range(1, 31)))
    assert evaluation_verdict(Nothing(), many, "cpu", on_training_manifest=False) == []


def test_the_verdict_round_trips_through_the_run_directory(tmp_path):
    findings = [Finding("undertrained", "undertrained: ...", 0.25), Finding("pca", "0.02 degrees", 0.02, "note")]
    write_verdict(tmp_path, findings)
    assert read_verdict(tmp_path) == findings
