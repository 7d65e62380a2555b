"""Drive the lesson 03 norm explorer from Python: set a control, read what it computed."""

import pytest

pytest.importorskip("ipywidgets")

from tfmcourse.widgets import NormComparisonExplorer


def test_initial_result_and_layer_norm_is_always_unaffected():
    ex = NormComparisonExplorer(batch_size=4, seq_len=12, pad_fraction=0.5)
    r = ex.result
    assert (r["batch_size"], r["seq_len"], r["real_length"], r["pad_positions"]) == (4, 12, 6, 24)
    assert r["ln_other_samples"] == 0.0 and r["ln_pad_error"] == 0.0
    assert r["bn_other_samples"] > 0.05 and r["bn_pad_error"] > 0.05
    assert ex.image.value[:4] == b"\x89PNG"


def test_no_padding_means_no_pad_error():
    ex = NormComparisonExplorer()
    ex.pad_fraction.value = 0.0
    assert ex.result["pad_positions"] == 0
    assert ex.result["bn_pad_error"] < 1e-6


def test_more_padding_leaks_more_into_batch_norm():
    ex = NormComparisonExplorer(batch_size=8, seq_len=20)
    errors = []
    for p in (0.1, 0.4, 0.8):
        ex.pad_fraction.value = p
        assert ex.result["pad_fraction"] == p
        errors.append(ex.result["bn_pad_error"])
        assert ex.result["ln_pad_error"] == 0.0
    assert errors[0] < errors[1] < errors[2]


def test_larger_batch_dilutes_other_samples_effect_but_never_removes_it():
    ex = NormComparisonExplorer(seq_len=4, pad_fraction=0.0)
    ex.batch_size.value = 2
    small = ex.result["bn_other_samples"]
    ex.batch_size.value = 64
    large = ex.result["bn_other_samples"]
    assert small > large > 0.0
    assert ex.result["ln_other_samples"] == 0.0


def test_changing_length_redraws():
    ex = NormComparisonExplorer(seq_len=12)
    png = ex.image.value
    ex.seq_len.value = 30
    assert ex.result["seq_len"] == 30
    assert ex.image.value != png
    assert "T = <b>30</b>" in ex.summary.value
