"""The scale benchmark's steps (bench/scale.py): whole hours of the site, growing."""

from __future__ import annotations

from bench.scale import POINTS, YEAR_ROWS, step_hours


def test_steps_of_the_100m_run_reach_100m_rows() -> None:
    hours = step_hours(100_000_000)
    assert hours == [4, 10, 21, 41]
    assert abs(YEAR_ROWS + hours[-1] * 60 * POINTS - 100_000_000) < 60 * POINTS


def test_a_small_run_still_has_a_full_hour_to_roll_up() -> None:
    assert step_hours(1_000_000) == [1]
    assert step_hours(5_000_000) == [1, 2]
