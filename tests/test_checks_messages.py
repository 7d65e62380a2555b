"""What a failing check says: the value that really fails, the row around it, the input case."""

from __future__ import annotations

import re

import pytest
import torch

from tests.mutants import load_all
from tfmcourse.checks import EXERCISES, CheckFailed
from tfmcourse.checks._core import assert_close, item_locator, mismatch_report

WRONG = [m for m in load_all() if not m.correct]


def test_worst_value_is_the_one_outside_the_tolerance_not_the_largest_difference():
    expected = torch.tensor([1000.0, 0.0, 3.0])
    got = torch.tensor([1000.05, 2e-4, 3.0])  # 0.05 is inside 1e-5 + 1e-4·1000; 2e-4 is not
    lines = mismatch_report(got, expected)
    assert "1 of 3 values" in lines[0]
    assert "index (1,)" in lines[0] and "expected 0, got 0.0002" in lines[0]


def test_report_names_the_input_case_of_the_worst_value():
    expected = torch.zeros(3, 4)
    got = expected.clone()
    got[2, 1] = 5.0
    with pytest.raises(CheckFailed, match=r"batch item 2, the all-pad sequence"):
        assert_close("x", got, expected, locate=item_locator({2: "the all-pad sequence"}))


def test_nan_where_a_number_is_expected_is_the_worst_value():
    expected = torch.ones(2, 3)
    got = expected.clone()
    got[1, 2] = float("nan")
    got[0, 0] = 1.5
    assert "index (1, 2)" in mismatch_report(got, expected)[0]


def _shown_rows(message: str):
    return re.findall(r"expected (\[.*\])\n\s+got\s+(\[.*\])", message)


@pytest.mark.parametrize("mutant", WRONG, ids=lambda m: f"{m.exercise}-{m.label}")
def test_failure_never_shows_a_row_identical_in_both(mutant):
    with pytest.raises(CheckFailed) as info:
        EXERCISES[mutant.exercise].check(mutant.impl)
    for want, got in _shown_rows(str(info.value)):
        assert want != got, f"the message shows the same values twice:\n{info.value}"
