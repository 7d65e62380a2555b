"""The shared plots: what a learner sees on every heatmap and curve."""

import matplotlib.pyplot as plt
import pytest
import torch

from tfmcourse import viz


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_heatmap_draws_a_colour_bar_by_default():
    ax = viz.heatmap(torch.rand(3, 4))
    assert len(ax.figure.axes) == 2, "the matrix and its colour bar"


def test_heatmap_colour_bar_label_and_opt_out():
    ax = viz.heatmap(torch.rand(3, 4), colorbar_label="attention weight")
    assert ax.figure.axes[1].get_ylabel() == "attention weight"
    ax = viz.heatmap(torch.rand(3, 4), colorbar=False)
    assert len(ax.figure.axes) == 1


def test_heatmap_labels_axes_and_tokens():
    ax = viz.heatmap(
        torch.rand(2, 3), x_labels=["a", "b", "c"], y_labels=["x", "y"], xlabel="key", ylabel="query"
    )
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_heatmap_rejects_a_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        viz.heatmap(torch.rand(2, 3, 4))


def test_curves_label_their_axes():
    ax = viz.curves([1, 2, 3], {"a": [1, 2, 3], "b": [3, 2, 1]}, xlabel="depth", ylabel="norm")
    assert ax.get_xlabel() == "depth" and ax.get_ylabel() == "norm"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
