"""Drive the lesson 05 and 07 explorers from Python: set a control, read ``result``."""

import pytest
import torch

pytest.importorskip("ipywidgets")

from tfmcourse.positional import sinusoidal_positional_encoding
from tfmcourse.widgets import AttentionExplorer, PositionalEncodingExplorer

PNG = b"\x89PNG"


def test_positional_explorer_follows_its_controls():
    ex = PositionalEncodingExplorer(max_len=40, d_model=16, position=5)
    pe = sinusoidal_positional_encoding(40, 16)
    r = ex.result
    assert r["position"] == 5 and r["dims"] == (0, 16)
    assert torch.allclose(r["vector"], pe[5])
    assert r["similarity"].shape == (40,) and r["similarity"][5].item() == pytest.approx(1.0)
    assert r["nearest"] in (4, 6)  # neighbours are the most similar with all columns
    assert bytes(ex.image.value).startswith(PNG) and "position 5" in ex.summary.value
    before = bytes(ex.image.value)

    ex.position.value = 20
    assert ex.result["position"] == 20 and torch.allclose(ex.result["vector"], pe[20])
    assert bytes(ex.image.value) != before and "position 20" in ex.summary.value

    ex.dims.value = (12, 15)  # only slow columns: many positions look alike
    r = ex.result
    assert r["dims"] == (12, 16) and torch.allclose(r["vector"], pe[20, 12:16])
    fast = PositionalEncodingExplorer(max_len=40, d_model=16, position=20)
    fast.dims.value = (0, 1)
    # a single fast pair repeats every 2π positions; slow columns change smoothly
    assert (r["similarity"] > 0.9).sum() > (fast.result["similarity"] > 0.999).sum()


def test_positional_explorer_empty_range_still_shows_a_pair():
    ex = PositionalEncodingExplorer(max_len=10, d_model=8)
    ex.dims.value = (4, 4)
    assert ex.result["dims"] == (4, 6) and ex.result["vector"].shape == (2,)
    assert ex.dims.value == (4, 5)  # the slider itself shows the pair it uses
    ex.dims.value = (0, 0)
    assert ex.dims.value == (0, 1) and ex.result["dims"] == (0, 2)


def test_positional_explorer_slider_reads_inclusive_columns():
    ex = PositionalEncodingExplorer(max_len=10, d_model=32)
    assert (ex.dims.min, ex.dims.max) == (0, 31) and ex.dims.value == (0, 31)
    assert ex.result["dims"] == (0, 32)
    ex.dims.value = (3, 6)  # a cos column and a sin column: widened to whole pairs
    assert ex.dims.value == (2, 7) and ex.result["dims"] == (2, 8) and ex.result["vector"].shape == (6,)


def test_positional_explorer_column_ticks_are_whole_numbers():
    ex = PositionalEncodingExplorer(max_len=10, d_model=8)
    ex.dims.value = (2, 3)  # two bars: without an integer locator the ticks would be 2.0, 2.2, …
    ticks = ex._last_column_ticks
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_positional_explorer_rejects_odd_d_model():
    with pytest.raises(ValueError, match="even"):
        PositionalEncodingExplorer(max_len=10, d_model=7)


def _weights():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 3, 4, 5, generator=g)
    w[1, 2, 3] = torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0])
    return w / w.sum(-1, keepdim=True)


def test_attention_explorer_follows_its_controls():
    w = _weights()
    ex = AttentionExplorer(w, ["a", "b", "c", "d"], ["<s>", "x", "y", "z", "</s>"])
    assert ex.result["layer"] == 0 and ex.result["head"] == 0 and ex.result["query"] == 0
    assert torch.equal(ex.result["row"], w[0, 0, 0])
    before = bytes(ex.image.value)
    assert bytes(before).startswith(PNG)
    ex.layer.value, ex.head.value, ex.query.value = 1, 2, 3
    r = ex.result
    assert torch.equal(r["matrix"], w[1, 2]) and r["top_key"] == 2 and r["top_label"] == "y"
    assert r["top_weight"] == pytest.approx(1.0)
    assert "(y)" in ex.summary.value and bytes(ex.image.value) != before
    ex.head.value = -1
    assert ex.result["head"] is None and torch.allclose(ex.result["matrix"], w[1].mean(0))
    assert [o[0] for o in ex.query.options] == ["0: a", "1: b", "2: c", "3: d"]


def test_attention_explorer_accepts_one_layer_and_rejects_bad_input():
    ex = AttentionExplorer(_weights()[0], list("abcd"), list("vwxyz"))
    assert len(ex.layer.options) == 1
    with pytest.raises(ValueError, match="labels"):
        AttentionExplorer(_weights(), list("abc"))
    with pytest.raises(ValueError, match=r"\(L, H, T, S\)"):
        AttentionExplorer(torch.rand(4, 5), list("abcd"))
