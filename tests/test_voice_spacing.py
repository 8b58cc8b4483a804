"""Voice path spacing: even steps in the voice progress the run hears, worked by hand."""
from __future__ import annotations

import pytest
import torch

from polyvae.pipelines.voice.spacing import GRID, even_steps, fine_grid, voice_progress


def test_fine_grid_holds_the_plain_alphas():
    grid = fine_grid(5)
    assert len(grid) == GRID * 4 + 1
    torch.testing.assert_close(grid[::GRID], torch.linspace(0, 1, 5))


def test_voice_progress_by_hand():
    to_a = torch.tensor([0.0, 1.0, 3.0, 4.0])
    to_b = torch.tensor([4.0, 3.0, 1.0, 0.0])
    torch.testing.assert_close(voice_progress(to_a, to_b), torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_even_steps_follow_the_progress_not_alpha():
    # an S-shaped path: the voice stays near A, jumps in the middle, then hardly moves
    progress = [0.0, 0.01, 0.02, 0.05, 0.3, 0.5, 0.7, 0.95, 0.97, 0.99, 1.0]
    # levels 0, 1/3, 2/3, 1 -> nearest candidates 0.3 (index 4), 0.7 (6), then the end
    assert even_steps(progress, 4) == [0, 4, 6, 10]
    # linear progress gives the evenly spaced candidates
    assert even_steps([k / 9 for k in range(10)], 4) == [0, 3, 6, 9]


def test_even_steps_hold_the_running_maximum_and_stay_increasing():
    # the voice steps back toward A after index 2: that is not progress, the maximum is held
    progress = [0.0, 0.6, 0.8, 0.1, 0.2, 0.9, 1.0]
    # levels 0, .25, .5, .75, 1 over the held curve 0, .6, .8, .8, .8, .9, 1: nearest 1, 1 -> 2, 2 -> 3
    picked = even_steps(progress, 5)
    assert picked[0] == 0 and picked[-1] == 6
    assert all(b > a for a, b in zip(picked, picked[1:]))
    assert picked == [0, 1, 2, 3, 6]


def test_even_steps_without_progress_are_even_in_alpha():
    assert even_steps([0.5] * 7, 4) == [0, 2, 4, 6]
    assert even_steps([0.9, 0.5, 0.2, 0.1], 2) == [0, 3]      # never rises above its start
    with pytest.raises(ValueError):
        even_steps([0.0, 1.0], 3)
