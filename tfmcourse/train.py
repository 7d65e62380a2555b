"""The training loop every lesson shares: seeded, CPU-friendly, with a progress bar.

>>> history = train(model, get_batch, loss_fn, steps=300, lr=3e-3)
>>> plot_history(history)            # tfmcourse.viz
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


@contextlib.contextmanager
def one_thread():
    """Run torch on one CPU thread, then restore the previous setting.

    The course's models are small enough to gain nothing from intra-op
    parallelism, and on a busy machine (or two notebooks run side by side)
    spinning threads can make a step many times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class History:
    """What a run produced, ready to plot: loss and learning rate per step, evaluations."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    seconds: float = 0.0

    def eval_series(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and values of one evaluated metric."""
        pts = [(s, m[key]) for s, m in self.evals if key in m]
        return [s for s, _ in pts], [v for _, v in pts]

    def smoothed_loss(self, window: int = 20) -> list[float]:
        out, acc = [], 0.0
        for i, v in enumerate(self.loss):
            acc += v
            if i >= window:
                acc -= self.loss[i - window]
            out.append(acc / min(i + 1, window))
        return out


def train(
    model: nn.Module,
    batches: Callable[[int], Any] | Iterable[Any],
    loss_fn: Callable[[nn.Module, Any], Tensor],
    *,
    steps: int,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    clip: float | None = 1.0,
    seed: int | None = 0,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    stop_when: Callable[[dict[str, float]], bool] | None = None,
    progress: bool = True,
    desc: str = "training",
    single_thread: bool = True,
) -> History:
    """Train ``model`` for ``steps`` optimisation steps and return its :class:`History`.

    ``batches`` is either a function ``step -> batch`` or an iterable (cycled).
    ``loss_fn(model, batch)`` returns a scalar loss. ``evaluate(model)`` (in
    eval mode, no grad) is called every ``eval_every`` steps and at the end;
    ``stop_when(metrics)`` may end training early. ``seed`` seeds torch's
    global RNG once at the start (dropout), so a run is reproducible.
    ``single_thread`` trains on one CPU thread (see :func:`one_thread`).

    The progress bar shows the recent training loss and the latest
    evaluation's metrics; after an early stop its total is the number of
    steps actually run, so it ends full rather than looking interrupted.
    """
    with one_thread() if single_thread else contextlib.nullcontext():
        return _train(
            model,
            batches,
            loss_fn,
            steps=steps,
            lr=lr,
            optimizer=optimizer,
            scheduler=scheduler,
            clip=clip,
            seed=seed,
            evaluate=evaluate,
            eval_every=eval_every,
            stop_when=stop_when,
            progress=progress,
            desc=desc,
        )


def _train(
    model,
    batches,
    loss_fn,
    *,
    steps,
    lr,
    optimizer,
    scheduler,
    clip,
    seed,
    evaluate,
    eval_every,
    stop_when,
    progress,
    desc,
) -> History:
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if seed is not None:
        torch.manual_seed(seed)
    if callable(batches):
        get = batches
    else:
        it = itertools.cycle(batches)
        get = lambda _step: next(it)  # noqa: E731
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    hist = History()
    start = time.perf_counter()

    def run_eval(step: int) -> bool:
        if evaluate is None:
            return False
        was = model.training
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate(model).items()}
        model.train(was)
        hist.evals.append((step, metrics))
        return bool(stop_when and stop_when(metrics))

    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=True, mininterval=0.5)
    model.train()
    stopped = False
    for step in range(1, steps + 1):
        loss = loss_fn(model, get(step))
        if not torch.isfinite(loss):
            bar.close()  # left unfinished: a notebook shows it red
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate?")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        hist.step.append(step)
        hist.loss.append(loss.item())
        hist.lr.append(opt.param_groups[0]["lr"])
        bar.update(1)
        if eval_every and step % eval_every == 0 and step != steps and run_eval(step):
            stopped = True
        if step % 10 == 0 or stopped:
            bar.set_postfix(_progress_metrics(hist), refresh=False)
        if stopped:
            break
    if not stopped and evaluate is not None:
        run_eval(hist.step[-1])
        bar.set_postfix(_progress_metrics(hist), refresh=False)
    _end_bar(bar, steps_run=hist.step[-1])
    hist.seconds = time.perf_counter() - start
    model.eval()
    return hist


def _progress_metrics(hist: History) -> dict[str, str]:
    """What the progress bar shows: the recent training loss and the latest evaluation."""
    shown = {"loss": f"{hist.smoothed_loss(10)[-1]:.3f}"}
    if hist.evals:
        step, metrics = hist.evals[-1]
        shown.update({f"val {k}": f"{v:.3f}" for k, v in metrics.items()})
        shown["at step"] = str(step)
    return shown


def _end_bar(bar, steps_run: int) -> None:
    """Close the bar with its total set to the steps actually run.

    An early stop is a success: with the total shrunk to the steps run, the
    bar ends full (green in a notebook) instead of looking interrupted.
    """
    if steps_run < (bar.total or 0):
        bar.total = steps_run
        container = getattr(bar, "container", None)  # the notebook widget keeps its own maximum
        if container is not None:
            container.children[1].max = steps_run
        bar.refresh()
    bar.close()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- one language-model step (lesson 10)


def next_token_loss(model: nn.Module, tokens: Tensor, pad_id: int) -> Tensor:
    """Mean cross-entropy (nats per token) of predicting ``tokens[:, 1:]`` from ``tokens[:, :-1]``.

    Pad targets are ignored. Divide by ``ln 2`` for bits per token.

    Shape:
        tokens ``(B, T)`` long; ``model(tokens[:, :-1])`` returns ``(B, T-1, V)``; returns a scalar.
    """
    if tokens.dim() != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be (B, T) with T >= 2, got shape {tuple(tokens.shape)}")
    inputs, targets = tokens[:, :-1], tokens[:, 1:]  # (B, T-1) each
    logits = model(inputs)  # (B, T-1, V)
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id
    )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    tokens: Tensor,
    pad_id: int,
    max_grad_norm: float = 1.0,
) -> float:
    """One step of next-token training; returns the loss before the step.

    Position ``t`` of ``tokens[:, :-1]`` is scored on ``tokens[:, t + 1]``
    (cross-entropy; pad targets ignored). Then, in this order: clear the
    gradients, backward, clip the global gradient norm to ``max_grad_norm``,
    ``optimizer.step()``, ``scheduler.step()`` (if a scheduler is given).

    Shape:
        tokens ``(B, T)`` long; ``model(tokens[:, :-1])`` returns ``(B, T-1, V)``.
    """
    loss = next_token_loss(model, tokens, pad_id)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss.item()
