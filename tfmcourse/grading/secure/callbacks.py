"""What learner code may do with a trusted object a check passes in (e.g. greedy_decode's model).

The object stays in the grader; the learner's code holds a stand-in that asks
for it through the session. Only the methods in :data:`CALLBACK_METHODS` may be
called and only plain attributes read, so learner code cannot reconfigure the
object the check compares against. What is refused raises ``AttributeError``,
which the learner's code receives as its call's error.
"""

from __future__ import annotations

from typing import Any

#: What learner code may call on a trusted object a check passes in.
CALLBACK_METHODS = frozenset(
    {"__call__", "forward", "encode", "decode", "eval", "parameters", "named_parameters"}
)
_ALLOWED = ", ".join(sorted(CALLBACK_METHODS - {"__call__"}))


def _refuse_private(obj: Any, method: Any) -> None:
    if obj is None or not isinstance(method, str) or (method.startswith("_") and method != "__call__"):
        raise AttributeError(f"no attribute {method!r}")


def look_up(obj: Any, method: Any) -> tuple[str, Any]:
    """Learner code read attribute ``method`` of ``obj``: ``("value", it)`` for data (sent as
    plain data only), ``("method", None)`` for a method it may call."""
    _refuse_private(obj, method)
    value = getattr(obj, method)
    if not callable(value):
        return "value", value
    if method in CALLBACK_METHODS:
        return "method", None
    raise AttributeError(
        f"secure grading: {type(obj).__name__}.{method}() may not be called here (allowed: {_ALLOWED})"
    )


def check_call(obj: Any, method: Any) -> None:
    """Refuse a call of ``method`` on ``obj`` that is not allowed (before its arguments are read)."""
    _refuse_private(obj, method)
    if method not in CALLBACK_METHODS:
        raise AttributeError(f"secure grading: {method}() may not be called here (allowed: {_ALLOWED})")


def invoke(obj: Any, method: str, args: Any, kwargs: Any) -> Any:
    """Call an allowed ``method`` of ``obj``; parameters come back as detached copies."""
    result = (obj if method == "__call__" else getattr(obj, method))(*args, **kwargs)
    if method == "parameters":
        return [p.detach().clone() for p in result]
    if method == "named_parameters":
        return [(k, v.detach().clone()) for k, v in result]
    return result
