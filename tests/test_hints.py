"""Hints: two or three per exercise, specific to it, revealed one at a time."""

from __future__ import annotations

import pytest

from tfmcourse.checks import EXERCISES, HINTS, hints


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_registered_exercise_has_two_or_three_hints(name):
    assert name in HINTS, f"no hints for {name}"
    assert 2 <= len(HINTS[name]) <= 3
    assert all(h.strip() for h in HINTS[name])


def test_hints_are_written_for_their_exercise_not_shared():
    texts = [h for hs in HINTS.values() for h in hs]
    assert len(texts) == len(set(texts)), "a hint text is used for two exercises"
    assert not set(HINTS) - set(EXERCISES), "hints for an exercise that does not exist"


def test_each_call_reveals_the_next_hint_by_name_or_number(monkeypatch):
    monkeypatch.setattr(hints, "_shown", {})
    first = hints.next_hint("scaled_dot_product_attention")
    second = hints.next_hint(6.3)
    third = hints.next_hint("6.3")
    again = hints.next_hint(6.3)
    assert first.startswith("Hint 1/3 for scaled_dot_product_attention") and "sqrt(d)" in first
    assert second.startswith("Hint 2/3") and third.startswith("Hint 3/3") and "(the last one)" in third
    assert "that was the last one" in again
    with pytest.raises(KeyError, match="no exercise 'attention'"):
        hints.next_hint("attention")
