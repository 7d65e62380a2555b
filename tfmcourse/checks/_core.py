"""The machinery every exercise check is built from.

A check is a function ``check_<name>(impl, *, seed=0)`` registered with
:func:`exercise`. It calls the learner's ``impl`` through :func:`call`,
checks type/shape/dtype with :func:`expect_tensor`, values with
:func:`assert_close` (which names a known mistake when the output matches
one, see :func:`mistake`) and finishes with :func:`passed`. Anything wrong
raises :class:`CheckFailed`; nothing is ever just printed.

Checks draw their inputs from a local ``torch.Generator`` seeded by ``seed``
(never the global RNG), so a check is deterministic in a notebook and can be
re-run on hidden inputs by the secure grader with another seed.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tfmcourse.checks._grader import is_remote

# Distinct odd sizes (DESIGN.md §4): a transposed axis fails loudly.
TINY = dict(B=2, T=5, S=7, d_model=24, n_heads=3, d_ff=37)

RTOL = 1e-4
ATOL = 1e-5


class CheckFailed(AssertionError):
    """An exercise check found a problem. The message says what and, if known, why."""


class ExerciseNotAttempted(CheckFailed):
    """The exercise still raises the stub's ``NotImplementedError``."""


@dataclass(frozen=True)
class Exercise:
    name: str
    lesson: int
    points: int
    check: Callable[..., None]
    title: str = ""
    reference: str = ""  # "module:attribute" of the reference implementation

    def reference_impl(self) -> Callable[..., Any]:
        """The package's reference implementation (for tests and the grader, never for learners)."""
        import importlib

        module, _, attr = self.reference.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Mistake:
    exercise: str
    description: str
    impl: Callable[..., Any]


EXERCISES: dict[str, Exercise] = {}
MISTAKES: dict[str, list[Mistake]] = {}


def exercise(name: str, lesson: int, points: int = 1, title: str = "", reference: str = ""):
    """Register ``check_<name>`` as the check of exercise ``name``.

    ``reference`` is ``"module:attribute"`` of the package's reference implementation.
    """

    def register(check: Callable[..., None]) -> Callable[..., None]:
        if check.__name__ != f"check_{name}":
            raise NameError(f"the check of {name!r} must be called check_{name}, not {check.__name__}")
        if name in EXERCISES:
            raise KeyError(f"exercise {name!r} registered twice")
        if not reference:
            raise ValueError(f"exercise {name!r} needs reference='module:attribute'")
        EXERCISES[name] = Exercise(name, lesson, points, check, title or name, reference)
        return check

    return register


def mistake(exercise_name: str, description: str):
    """Register a known wrong implementation of an exercise.

    ``description`` is what the learner reads: the mistake in plain words and
    the fix to look for. ``impl`` takes the same arguments as the exercise.
    """

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        MISTAKES.setdefault(exercise_name, []).append(Mistake(exercise_name, description, impl))
        return impl

    return register


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def randn(*shape: int, g: torch.Generator, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    return torch.randn(*shape, generator=g) * scale + shift


def _summary(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (line {last.lineno}: {last.line.strip()})" if last.line else f" (line {last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def call(name: str, impl: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the learner's implementation, turning its exceptions into check results.

    ``impl`` is the learner's object or, under the secure grader, a
    :class:`~tfmcourse.checks._grader.Remote` standing for it. ``_no_grad=True``
    is shorthand for calling inside ``torch.no_grad()``.
    """
    no_grad = kwargs.pop("_no_grad", False)
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        if is_remote(impl):  # secure grading: the code runs in another process
            return impl.grader_call(name, args, kwargs)
        if not callable(impl):
            raise CheckFailed(f"{name}: expected a function or class, got {type(impl).__name__}")
        try:
            return impl(*args, **kwargs)
        except NotImplementedError as exc:
            raise ExerciseNotAttempted(f"{name}: not attempted yet ({exc})") from None
        except CheckFailed:
            raise
        except Exception as exc:  # the learner's code crashed: say where, don't show our traceback
            raise CheckFailed(f"{name}: calling it raised {_summary(exc)}") from None


def _fmt(t: Tensor, n: int = 6) -> str:
    flat = t.detach().reshape(-1)[:n].tolist()
    if t.dtype == torch.bool:
        return "[" + ", ".join("T" if x else "F" for x in flat) + (", …]" if t.numel() > n else "]")
    return "[" + ", ".join(f"{x:.4g}" for x in flat) + (", …]" if t.numel() > n else "]")


def expect_tensor(
    name: str,
    got: Any,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype | str | None = "float",
    what: str = "output",
    axes: str | None = None,
) -> Tensor:
    """Check that ``got`` is a tensor of the given shape and kind of dtype.

    ``dtype`` is a torch dtype, ``"float"`` (any floating dtype) or ``None``.
    ``axes`` names the axes (e.g. ``"B,T,S"``) so a mismatch can say which one.
    """
    if not isinstance(got, Tensor):
        raise CheckFailed(f"{name}: the {what} should be a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(shape):
        labels = axes.split(",") if axes else None
        detail = ""
        if len(got.shape) != len(shape):
            detail = f" ({got.dim()} dimensions instead of {len(shape)})"
        else:
            bad = [i for i, (a, b) in enumerate(zip(got.shape, shape)) if a != b]
            names = [f"{labels[i].strip()} (axis {i})" if labels else f"axis {i}" for i in bad]
            detail = f" (wrong size along {', '.join(names)})"
            if sorted(got.shape) == sorted(shape):
                detail += " — the right sizes in the wrong order: is an axis transposed?"
        ax = f" [{axes}]" if axes else ""
        raise CheckFailed(f"{name}: {what} has shape {tuple(got.shape)}, expected {tuple(shape)}{ax}{detail}")
    if dtype == "float":
        if not got.is_floating_point():
            raise CheckFailed(f"{name}: {what} should be a floating-point tensor, got dtype {got.dtype}")
    elif dtype is not None and got.dtype != dtype:
        raise CheckFailed(f"{name}: {what} should have dtype {dtype}, got {got.dtype}")
    return got


def _close(a: Tensor, b: Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype == torch.bool or b.dtype == torch.bool or not a.is_floating_point():
        return bool(torch.equal(a, b))
    a64, b64 = a.detach().double(), b.detach().double()
    if torch.isnan(a64).any() or torch.isnan(b64).any():
        return bool(torch.equal(torch.isnan(a64), torch.isnan(b64))) and torch.allclose(
            a64.nan_to_num(0.0), b64.nan_to_num(0.0), rtol=rtol, atol=atol
        )
    return torch.allclose(a64, b64, rtol=rtol, atol=atol)


def diagnose(
    exercise_name: str, got: Any, *args: Any, pick: Callable[[Any], Any] | None = None, **kwargs: Any
) -> str | None:
    """The description of the first known mistake whose output equals ``got``, if any.

    ``pick`` selects the compared part of a mistake's output (e.g. ``lambda r: r[0]``).
    """
    for m in MISTAKES.get(exercise_name, []):
        try:
            out = m.impl(*args, **kwargs)
            if pick is not None:
                out = pick(out)
        except Exception:
            continue
        if isinstance(got, Tensor) and isinstance(out, Tensor) and _close(got, out, RTOL, ATOL):
            return m.description
        if not isinstance(got, Tensor) and not isinstance(out, Tensor):
            try:
                if (
                    isinstance(got, (int, float))
                    and isinstance(out, (int, float))
                    and math.isclose(float(got), float(out), rel_tol=RTOL, abs_tol=ATOL)
                ):
                    return m.description
            except (TypeError, ValueError):
                continue
    return None


def assert_close(
    name: str,
    got: Tensor,
    expected: Tensor,
    *,
    what: str = "output",
    rtol: float = RTOL,
    atol: float = ATOL,
    case: str = "",
    mistake_args: tuple | None = None,
    mistake_kwargs: dict | None = None,
    mistake_pick: Callable[[Any], Any] | None = None,
    hint: str = "",
) -> None:
    """Compare values; on a mismatch, report where and how much, and name a known mistake.

    ``mistake_args`` are the inputs to re-run the registered mistakes of
    ``name`` on; if one of them reproduces ``got``, the message names it.
    """
    expect_tensor(name, got, tuple(expected.shape), dtype=None, what=what)
    if _close(got, expected, rtol, atol):
        return
    lines = [f"{name}: wrong {what}" + (f" {case}" if case else "") + "."]
    if got.dtype == torch.bool or expected.dtype == torch.bool:
        diff = got != expected
        idx = tuple(int(i) for i in diff.nonzero()[0]) if diff.any() else ()
        lines.append(
            f"  {int(diff.sum())} of {diff.numel()} entries differ; first at index {idx}:"
            f" expected {bool(expected[idx])}, got {bool(got[idx])}."
        )
        lines.append(
            f"  expected {_fmt(expected.reshape(-1, expected.shape[-1])[0] if expected.dim() else expected, 8)}"
            f"\n  got      {_fmt(got.reshape(-1, got.shape[-1])[0] if got.dim() else got, 8)}  (first row)"
        )
    else:
        g64, e64 = got.detach().double(), expected.detach().double()
        if torch.isnan(g64).any() and not torch.isnan(e64).any():
            n = int(torch.isnan(g64).sum())
            idx = tuple(int(i) for i in torch.isnan(g64).nonzero()[0])
            lines.append(
                f"  your output has {n} NaN value(s), the first at index {idx}; expected {e64[idx].item():.4g}."
            )
        else:
            diff = (g64 - e64).abs().nan_to_num(float("inf"))
            flat = int(diff.reshape(-1).argmax())
            idx = (
                tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
                if diff.dim()
                else ()
            )
            lines.append(
                f"  largest difference {diff.max().item():.3g} at index {idx}: "
                f"expected {e64[idx].item():.5g}, got {g64[idx].item():.5g}."
            )
        row_e = e64.reshape(-1, e64.shape[-1])[0] if e64.dim() else e64
        row_g = g64.reshape(-1, g64.shape[-1])[0] if g64.dim() else g64
        lines.append(f"  expected {_fmt(row_e)}\n  got      {_fmt(row_g)}  (first row)")
    if mistake_args is not None:
        found = diagnose(name, got, *mistake_args, pick=mistake_pick, **(mistake_kwargs or {}))
        if found:
            lines.append(f"  This matches a known mistake: {found}")
    if hint:
        lines.append(f"  Hint: {hint}")
    raise CheckFailed("\n".join(lines))


def require(condition: bool, name: str, message: str) -> None:
    """Raise ``CheckFailed`` with ``name: message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(f"{name}: {message}")


def passed(name: str, detail: str = "") -> None:
    """Print the one-line success message of a check."""
    print(f"✓ {name}: correct" + (f" — {detail}" if detail else ""))


def load_weights(module: torch.nn.Module, weights: dict[str, Tensor], name: str = "") -> None:
    """Copy ``weights`` (``{"q_proj.weight": tensor, …}``) into a learner's module.

    Checks never rely on the order a learner created layers in or on the global
    RNG: every parameter the check cares about is loaded through here, by the
    submodule names of the exercise's contract. A missing or wrongly shaped parameter is a
    ``CheckFailed`` that names it.
    """
    remote = is_remote(module)  # secure grading: the module is in another process
    params = dict(module.named_parameters()) if not remote else {}
    shapes = module.grader_parameter_shapes() if remote else {k: p.shape for k, p in params.items()}
    label = name or (module.grader_type_name if remote else type(module).__name__)
    for key, value in weights.items():
        if key not in shapes:
            sub = key.rsplit(".", 1)[0]
            raise CheckFailed(
                f"{label}: no parameter {key!r}. The contract names the "
                f"submodule {sub!r}; your module has parameters {sorted(shapes)}"
            )
        if tuple(shapes[key]) != tuple(value.shape):
            raise CheckFailed(
                f"{label}: parameter {key!r} has shape {tuple(shapes[key])}, expected {tuple(value.shape)}"
            )
    if remote:
        module.grader_load(weights)
        return
    with torch.no_grad():
        for key, value in weights.items():
            params[key].copy_(value)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters of a learner's module (checks use this, not ``.parameters()`` directly)."""
    if is_remote(module):
        return module.grader_count_parameters()
    return sum(p.numel() for p in module.parameters())


def set_mode(module: torch.nn.Module, training: bool) -> None:
    """Put a learner's module in train or eval mode."""
    if is_remote(module):
        module.grader_set_mode(training)
        return
    module.train(training)
