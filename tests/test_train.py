"""The shared training helpers: the loop (steps, early stopping, evaluations, its progress bar), the
one-thread context and the parameter count."""

from typing import ClassVar

import pytest
import torch
from torch import nn

import tfmcourse.train as train_module
from tfmcourse.train import History, count_parameters, one_thread, train


class RecordingBar(train_module.tqdm):
    """The loop's own progress bar class, remembering every instance it made."""

    made: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingBar.made.append(self)


@pytest.fixture
def bars(monkeypatch):
    RecordingBar.made = []
    monkeypatch.setattr(train_module, "tqdm", RecordingBar)
    return RecordingBar.made


def regression_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)

    def loss_fn(m, batch):
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    return model, [(x, y)], loss_fn


def test_train_runs_every_step_and_records_history(bars):
    model, batches, loss_fn = regression_problem()
    hist = train(model, batches, loss_fn, steps=30, lr=0.05)
    assert hist.step == list(range(1, 31))
    assert len(hist.loss) == len(hist.lr) == 30
    assert hist.loss[-1] < hist.loss[0] / 4
    assert bars[0].total == 30 and bars[0].n == 30


def test_early_stop_ends_the_bar_full_at_the_steps_run(bars):
    model, batches, loss_fn = regression_problem()
    calls = []

    def evaluate(m):
        calls.append(1)
        return {"exact_match": 0.5 * len(calls)}

    hist = train(
        model,
        batches,
        loss_fn,
        steps=100,
        lr=0.05,
        evaluate=evaluate,
        eval_every=10,
        stop_when=lambda metrics: metrics["exact_match"] >= 1.0,
    )
    assert hist.step[-1] == 20, "the second evaluation (step 20) reaches 1.0 and stops training"
    assert [s for s, _ in hist.evals] == [10, 20]
    bar = bars[0]
    assert bar.total == 20 and bar.n == 20, "the bar's total is shrunk to the steps actually run"


def test_progress_bar_shows_the_latest_validation_metric(bars):
    model, batches, loss_fn = regression_problem()
    train(
        model, batches, loss_fn, steps=25, lr=0.05, evaluate=lambda m: {"exact_match": 0.875}, eval_every=10
    )
    postfix = bars[0].postfix
    assert "val exact_match=0.875" in postfix and "loss=" in postfix, postfix
    assert "at step=25" in postfix, "the final evaluation, after the last step, is the one shown"


def test_a_run_without_early_stop_keeps_its_full_total(bars):
    model, batches, loss_fn = regression_problem()
    hist = train(
        model,
        batches,
        loss_fn,
        steps=20,
        lr=0.05,
        evaluate=lambda m: {"acc": 0.1},
        eval_every=5,
        stop_when=lambda metrics: metrics["acc"] > 0.5,
    )
    assert hist.step[-1] == 20 and bars[0].total == 20
    assert [s for s, _ in hist.evals] == [5, 10, 15, 20]


def test_non_finite_loss_raises_and_names_the_step(bars):
    model, batches, _ = regression_problem()
    with pytest.raises(FloatingPointError, match="at step 1"):
        train(model, batches, lambda m, b: torch.tensor(float("nan"), requires_grad=True), steps=5)


def test_steps_must_be_positive():
    model, batches, loss_fn = regression_problem()
    with pytest.raises(ValueError, match="steps must be positive"):
        train(model, batches, loss_fn, steps=0)


def test_history_smoothed_loss_is_a_running_mean():
    hist = History(step=[1, 2, 3, 4], loss=[4.0, 2.0, 0.0, 2.0])
    assert hist.smoothed_loss(window=2) == [4.0, 3.0, 1.0, 1.0]


def test_notebook_bar_ends_green_after_an_early_stop():
    from tqdm.notebook import tqdm as notebook_tqdm

    early = notebook_tqdm(total=100)
    early.update(20)
    train_module._end_bar(early, steps_run=20)
    widget = early.container.children[1]
    assert widget.bar_style == "success" and widget.max == widget.value == 20

    interrupted = notebook_tqdm(total=100)
    interrupted.update(20)
    interrupted.close()
    assert interrupted.container.children[1].bar_style == "danger", "an unfinished bar is still shown red"


def test_one_thread_restores_the_setting():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_count_parameters_skips_frozen_ones():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_parameters(model) == (3 * 4 + 4) + (4 * 2 + 2)
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 4 + (4 * 2 + 2)
