"""How a check talks to the secure grader: the one protocol between them.

In a notebook a check receives the learner's own function, class or module.
Under ``tfmcourse grade --secure`` it receives a :class:`Remote` instead: a
stand-in for an object that lives in another process. The helpers of
:mod:`tfmcourse.checks._core` (``call``, ``load_weights``, ``count_parameters``,
``set_mode``) accept both, so a check is written once. Only these six methods
cross the boundary; nothing else of the learner's object is reachable.

Grad mode travels with each call: a check that wants no autograd graph calls
the learner's code inside ``torch.no_grad()``, in both settings.
"""

from __future__ import annotations

from typing import Any

import torch


class Remote:
    """A learner's object living in the grading sandbox (subclassed by the grader's proxies)."""

    #: the learner's class name, for messages ("got FeedForward")
    grader_type_name: str = "object"

    def grader_call(self, name: str, args: tuple, kwargs: dict) -> Any:
        """Call the learner's object with ``args``; raise ``CheckFailed``/``ExerciseNotAttempted``
        like :func:`tfmcourse.checks._core.call` does for a local one."""
        raise NotImplementedError

    def grader_call_watching(
        self, name: str, args: tuple, kwargs: dict, shapes: list[tuple[int, int]]
    ) -> tuple[Any, bool]:
        """Like :meth:`grader_call`, and whether any torch operation of the call produced a tensor
        whose last two dimensions are one of ``shapes`` (watched in the learner's process)."""
        raise NotImplementedError

    def grader_parameter_shapes(self) -> dict[str, torch.Size]:
        """Parameter name -> shape (the values stay in the sandbox)."""
        raise NotImplementedError

    def grader_load(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy ``weights`` into the learner's parameters of those names."""
        raise NotImplementedError

    def grader_count_parameters(self) -> int:
        raise NotImplementedError

    def grader_set_mode(self, training: bool) -> None:
        """``train(training)`` on the learner's module."""
        raise NotImplementedError


def is_remote(obj: Any) -> bool:
    """Whether ``obj`` stands for a learner object in the grading sandbox."""
    return isinstance(obj, Remote)
