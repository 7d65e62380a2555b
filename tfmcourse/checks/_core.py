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

Tolerance policy
----------------
A check must accept every correct float32 implementation, however it is
written (two-pass or one-pass variance, float64 inside, einsum, loops,
``-inf`` or a finite fill followed by zeroing, fused built-ins where the
exercise allows them), at every seed, and reject every wrong one. So:

- Values are compared in float64 against the reference with
  ``|got - expected| <= atol + rtol * |expected|``, element by element
  (:func:`assert_close`). ``RTOL = 1e-4`` is some 1,700 float32 roundings
  (``2**-24 ≈ 6e-8``) of the value itself and ``ATOL = 1e-5`` covers values
  near zero: room for any summation order over a few hundred terms, far
  below the effect of any mistake in the catalogue. A failure reports the
  value that breaks this bound the most, not merely the largest difference.
- Inputs are drawn so that float32 stays well conditioned: O(1) magnitudes
  and scores of a few units. Where a correct formula loses digits by design
  (the one-pass variance ``E[x²] - E[x]²`` cancels when ``|mean| ≫ std``, and
  the norm checks give channels a mean of several standard deviations on
  purpose), the check widens its tolerance for that input (``NORM_ATOL``,
  about ten times the worst error of the one-pass formula over 1,000 seeds)
  instead of favouring one way of writing the formula; the known mistakes it
  must still catch differ from the reference by orders of magnitude more.
- Exact properties are checked exactly: a blocked position gets weight 0, a
  fully blocked query gets a zero output, masks are compared bit for bit.
- Every correct implementation in the test catalogue is run over at least 200
  seeds with zero rejections (``tests/test_checks_seeds.py``); every wrong one
  is rejected, and named, at every seed (``benchmarks/mutation_score.py``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tfmcourse.checks._grader import is_remote
from tfmcourse.checks._i18n import N_, tr

# Distinct odd sizes: a transposed or swapped axis fails loudly.
TINY = dict(B=2, T=5, S=7, d_model=24, n_heads=3, d_ff=37)

RTOL = 1e-4
ATOL = 1e-5
# normalisation of inputs whose mean is a few standard deviations from zero: the
# one-pass variance E[x²] - E[x]² (correct, but cancelling in float32) stays within this
NORM_ATOL = 2e-4

# appended to every "mask inverted" mistake: the other sense is a convention, not nonsense
MASK_SENSE = (
    " The other sense (True = keep) is a real convention — F.scaled_dot_product_attention and many "
    "tutorials use it — but this course uses nn.MultiheadAttention's: True = blocked, one sense "
    "everywhere."
)


class CheckFailed(AssertionError):
    """An exercise check found a problem. The message says what and, if known, why.

    In a notebook it is shown as a short block (see ``_display``) instead of a
    traceback through the course's code; ``learner_error`` is the exception the
    learner's own code raised inside the check, if that is what went wrong.
    """

    learner_error: BaseException | None = None
    learner_summary: str = ""
    status = "failed"

    def lines(self, color: bool = True) -> list[str]:
        """The block a notebook shows for this failure."""
        from tfmcourse.checks._display import failure_lines

        return failure_lines(self, color=color)

    def show(self) -> None:
        """Print the block a check cell shows when it fails (used to demonstrate one).

        It goes to stderr, which Jupyter shows on the same red background as an error.
        """
        print("\n".join(self.lines()), file=sys.stderr)

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting a traceback. It is also the moment
        # the learner sees the outcome, so it is noted in their workspace's progress.
        from tfmcourse import progress
        from tfmcourse.checks._display import exercise_of, offer_hint

        name = exercise_of(self)
        if name:
            progress.record(name, self.status)
            offer_hint()
        return self.lines()


class ExerciseNotAttempted(CheckFailed):
    """The exercise still raises the stub's ``NotImplementedError``."""

    status = "not attempted"


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
    from tfmcourse.checks._display import is_learner_frame

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_learner_frame(f.filename)]
    where = ""
    if frames:  # the learner's line closest to the error, not one inside torch or the course
        last = frames[-1]
        where = (
            tr(" (line {lineno}: {line})", lineno=last.lineno, line=last.line.strip())
            if last.line
            else tr(" (line {lineno})", lineno=last.lineno)
        )
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
            raise CheckFailed(
                tr("{name}: expected a function or class, got {type}", name=name, type=type(impl).__name__)
            )
        try:
            return impl(*args, **kwargs)
        except NotImplementedError as exc:
            raise ExerciseNotAttempted(
                tr("{name}: not attempted yet ({error})", name=name, error=exc)
            ) from None
        except CheckFailed:
            raise
        except Exception as exc:  # the learner's code crashed: say where, don't show our traceback
            failure = CheckFailed(tr("{name}: calling it raised {error}", name=name, error=_summary(exc)))
            failure.learner_error = exc  # shown with the learner's frames only
            failure.learner_summary = f"{type(exc).__name__}: {exc}"  # the same in every language
            raise failure from None


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
    A literal ``what`` is translated like every message.
    """
    what = tr(what)
    if not isinstance(got, Tensor):
        raise CheckFailed(
            tr(
                "{name}: the {what} should be a torch.Tensor, got {type}",
                name=name,
                what=what,
                type=type(got).__name__,
            )
        )
    if tuple(got.shape) != tuple(shape):
        labels = axes.split(",") if axes else None
        detail = ""
        if len(got.shape) != len(shape):
            detail = tr(" ({got} dimensions instead of {expected})", got=got.dim(), expected=len(shape))
        else:
            bad = [i for i, (a, b) in enumerate(zip(got.shape, shape)) if a != b]
            names = [
                tr("{label} (axis {i})", label=labels[i].strip(), i=i) if labels else tr("axis {i}", i=i)
                for i in bad
            ]
            detail = tr(" (wrong size along {axes})", axes=", ".join(names))
            if sorted(got.shape) == sorted(shape):
                detail += tr(" — the right sizes in the wrong order: is an axis transposed?")
        ax = f" [{axes}]" if axes else ""
        raise CheckFailed(
            tr(
                "{name}: {what} has shape {got}, expected {expected}{axes}{detail}",
                name=name,
                what=what,
                got=tuple(got.shape),
                expected=tuple(shape),
                axes=ax,
                detail=detail,
            )
        )
    if dtype == "float":
        if not got.is_floating_point():
            raise CheckFailed(
                tr(
                    "{name}: {what} should be a floating-point tensor, got dtype {dtype}",
                    name=name,
                    what=what,
                    dtype=got.dtype,
                )
            )
    elif dtype is not None and got.dtype != dtype:
        raise CheckFailed(
            tr(
                "{name}: {what} should have dtype {dtype}, got {got}",
                name=name,
                what=what,
                dtype=dtype,
                got=got.dtype,
            )
        )
    return got


def _close(a: Tensor, b: Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype == torch.bool or b.dtype == torch.bool or not a.is_floating_point():
        return bool(torch.equal(a, b))
    return not bool((_excess(a, b, rtol, atol) > 1).any())


def _excess(got: Tensor, expected: Tensor, rtol: float, atol: float) -> Tensor:
    """Per element, ``|got - expected| / (atol + rtol·|expected|)``: above 1 fails.

    Equal values (infinities of the same sign, NaN where NaN is expected) give 0;
    a NaN or infinity that is not expected gives ``inf``.
    """
    g, e = got.detach().double(), expected.detach().double()
    same = (g == e) | (torch.isnan(g) & torch.isnan(e))
    ratio = (g - e).abs() / (atol + rtol * e.abs())
    return torch.where(same, torch.zeros_like(ratio), ratio.nan_to_num(float("inf"), posinf=float("inf")))


def item_locator(labels: dict[int, str] | list[str], axis: int = 0, what: str = N_("batch item")):
    """A ``locate`` for :func:`assert_close`: names the input case an index falls in.

    ``labels[i]`` describes item ``i`` along ``axis`` (e.g. ``{1: "the all-pad sequence"}``).
    """
    table = dict(enumerate(labels)) if isinstance(labels, list) else dict(labels)

    def locate(idx: tuple[int, ...]) -> str:
        if len(idx) <= axis:
            return ""
        i = idx[axis]
        return f"{tr(what)} {i}" + (f", {tr(table[i])}" if table.get(i) else "")

    return locate


def _window(t: Tensor, idx: tuple[int, ...], width: int = 7) -> tuple[str, Tensor]:
    """The slice of ``t`` along its last axis around ``idx``: (its index text, the values)."""
    if t.dim() == 0:
        return "", t.reshape(1)
    n = t.shape[-1]
    lo = max(0, min(idx[-1] - width // 2, n - width))
    hi = min(n, lo + width)
    head = ", ".join(str(i) for i in idx[:-1])
    return f"[{head + ', ' if head else ''}{lo}:{hi}]", t[idx[:-1]][lo:hi]


def _values(t: Tensor) -> str:
    flat = t.detach().reshape(-1).tolist()
    if t.dtype == torch.bool:
        return "[" + ", ".join("T" if x else "F" for x in flat) + "]"
    return "[" + ", ".join(f"{x:.5g}" for x in flat) + "]"


def diagnose(
    exercise_name: str,
    got: Any,
    *args: Any,
    pick: Callable[[Any], Any] | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    **kwargs: Any,
) -> str | None:
    """The description of the first known mistake whose output equals ``got``, if any.

    ``pick`` selects the compared part of a mistake's output (e.g. ``lambda r: r[0]``);
    ``rtol``/``atol`` are the check's own tolerances.
    """
    for m in MISTAKES.get(exercise_name, []):
        try:
            with torch.no_grad():
                out = m.impl(*args, **kwargs)
            if pick is not None:
                out = pick(out)
        except Exception:
            continue
        if isinstance(got, Tensor) and isinstance(out, Tensor) and _close(got, out, rtol, atol):
            return tr(m.description)
        if not isinstance(got, Tensor) and not isinstance(out, Tensor):
            try:
                if (
                    isinstance(got, (int, float))
                    and isinstance(out, (int, float))
                    and math.isclose(float(got), float(out), rel_tol=rtol, abs_tol=atol)
                ):
                    return tr(m.description)
            except (TypeError, ValueError):
                continue
    return None


def mismatch_report(
    got: Tensor,
    expected: Tensor,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
    what: str = "output",
    locate: Callable[[tuple[int, ...]], str] | None = None,
) -> list[str]:
    """Lines that show where ``got`` departs from ``expected`` (same shape): how many
    values fail, the worst one (index, expected, got) with the input case it belongs
    to, and a few values around it on the same row, where the two really differ."""
    what = tr(what)
    if got.dtype == torch.bool or expected.dtype == torch.bool or not expected.is_floating_point():
        bad = got != expected
        worst = tuple(int(i) for i in bad.nonzero()[0]) if bad.any() else ()
        count = tr("  {bad} of {total} entries differ", bad=int(bad.sum()), total=bad.numel())
        first = tr("first at index {index}", index=worst)
        e_at, g_at = expected[worst].item(), got[worst].item()
    else:
        excess = _excess(got, expected, rtol, atol)
        bad = excess > 1
        flat = int(excess.reshape(-1).argmax())
        worst = (
            tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), excess.shape)) if got.dim() else ()
        )
        count = tr(
            "  {bad} of {total} values differ by more than {atol:g} + {rtol:g}·|expected|",
            bad=int(bad.sum()),
            total=bad.numel(),
            atol=atol,
            rtol=rtol,
        )
        first = tr("the worst at index {index}", index=worst)
        e_at, g_at = expected[worst].item(), got[worst].item()
    where = locate(worst) if (locate is not None and worst) else ""
    lines = [
        f"{count}; {first}"
        + (f" ({where})" if where else "")
        + tr(": expected {expected}, got {got}.", expected=_scalar(e_at), got=_scalar(g_at))
    ]
    if got.dim() and got.shape[-1] > 1:
        label, e_row = _window(expected, worst)
        _, g_row = _window(got, worst)
        lines.append(
            tr(
                "  around it, {what}{index}:\n    expected {expected}\n    got      {got}",
                what=what,
                index=label,
                expected=_values(e_row),
                got=_values(g_row),
            )
        )
    return lines


def _scalar(x: Any) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


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
    locate: Callable[[tuple[int, ...]], str] | None = None,
) -> None:
    """Compare values; on a mismatch, report where and how much, and name a known mistake.

    ``mistake_args`` are the inputs to re-run the registered mistakes of
    ``name`` on; if one of them reproduces ``got``, the message names it.
    ``locate`` turns the index of the worst value into the input case it
    belongs to (see :func:`item_locator`). Literal ``what``, ``case`` and ``hint``
    are translated like every message.
    """
    what, case, hint = tr(what), tr(case) if case else case, tr(hint) if hint else hint
    expect_tensor(name, got, tuple(expected.shape), dtype=None, what=what)
    if _close(got, expected, rtol, atol):
        return
    lines = [tr("{name}: wrong {what}{case}.", name=name, what=what, case=f" {case}" if case else "")]
    found = None
    if mistake_args is not None:
        found = diagnose(
            name, got, *mistake_args, pick=mistake_pick, rtol=rtol, atol=atol, **(mistake_kwargs or {})
        )
    if found:
        lines.append(tr("  This matches a known mistake: {mistake}", mistake=found))
    short = what.split(" (")[0].split()[-1] if what else tr("output")
    lines += mismatch_report(got, expected, rtol=rtol, atol=atol, what=short, locate=locate)
    if hint:
        lines.append(tr("  Hint: {hint}", hint=hint))
    raise CheckFailed("\n".join(lines))


def require(condition: bool, name: str, message: str) -> None:
    """Raise ``CheckFailed`` with ``name: message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(f"{name}: {tr(message)}")


def passed(name: str, detail: str = "") -> None:
    """Print the one-line success message of a check (in a notebook, a green block).

    Inside a learner's workspace the pass is also noted in their progress.
    """
    from tfmcourse import progress
    from tfmcourse.checks._display import show_passed

    show_passed("✓ " + tr("{name}: correct", name=name) + (f" — {tr(detail)}" if detail else ""))
    if name in EXERCISES:
        progress.record(name, "passed")


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
                tr(
                    "{name}: no parameter {key!r}. The contract names the submodule {sub!r}; "
                    "your module has parameters {params}",
                    name=label,
                    key=key,
                    sub=sub,
                    params=sorted(shapes),
                )
            )
        if tuple(shapes[key]) != tuple(value.shape):
            raise CheckFailed(
                tr(
                    "{name}: parameter {key!r} has shape {got}, expected {expected}",
                    name=label,
                    key=key,
                    got=tuple(shapes[key]),
                    expected=tuple(value.shape),
                )
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
