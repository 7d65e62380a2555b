"""How a check's outcome looks in a notebook.

IPython shows an exception through its ``_render_traceback_()`` when it has
one: :class:`~tfmcourse.checks.CheckFailed` uses :func:`failure_lines`, so a
failed check is a short block — ✗, the exercise, the message, how to get a
hint — with no frame of the course's code. When the learner's own code
crashed inside the check, the block ends with the learner's frames only.
A not-attempted exercise is one line, and a pass is a green ✓ line.
"""

from __future__ import annotations

import html
import sys
import textwrap
import traceback
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # tfmcourse/
WIDTH = 100

RED, GREEN, GREY, BOLD, RESET = "\x1b[31m", "\x1b[32m", "\x1b[90m", "\x1b[1m", "\x1b[0m"


def exercise_of(exc: BaseException) -> str | None:
    """The exercise whose check raised ``exc``: found from the traceback, else from the message."""
    from tfmcourse.checks._core import EXERCISES

    codes = {e.check.__code__: name for name, e in EXERCISES.items()}
    tb = exc.__traceback__
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code)
        if name:
            return name
        tb = tb.tb_next
    head = str(exc).split(":", 1)[0].strip()
    return head if head in EXERCISES else None


def _title(name: str | None) -> str:
    if name is None:
        return "exercise check"
    from tfmcourse.progress import exercise_number

    return f"Exercise {exercise_number(name)} · {name}"


def _wrap(message: str) -> list[str]:
    """Wrap long lines at word boundaries, keeping each line's indentation."""
    out = []
    for line in message.splitlines() or [""]:
        indent = line[: len(line) - len(line.lstrip())]
        out.extend(
            textwrap.wrap(line, WIDTH, subsequent_indent=indent + "  ", break_long_words=False) or [line]
        )
    return out


def is_learner_frame(filename: str) -> bool:
    """A frame of the learner's code: not the course's package, not an installed library."""
    path = Path(filename)
    if filename.startswith("<"):
        return not filename.startswith("<frozen")
    resolved = path.resolve() if path.is_absolute() else path
    if PACKAGE in resolved.parents:
        return False
    return not any(part in ("site-packages", "dist-packages") for part in resolved.parts) and (
        not str(resolved).startswith(sys.base_prefix)
    )


def learner_frames(exc: BaseException) -> list[str]:
    """The formatted traceback of ``exc``, keeping only the learner's frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_learner_frame(f.filename)]
    lines = ["Traceback (your code only):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n").splitlines()


def failure_lines(exc: BaseException, *, color: bool = True) -> list[str]:
    """What a notebook shows for a failed or not-attempted check."""
    from tfmcourse.checks._core import ExerciseNotAttempted

    name = exercise_of(exc)
    c = (lambda code, s: f"{code}{s}{RESET}") if color else (lambda code, s: s)
    if isinstance(exc, ExerciseNotAttempted):
        return [
            c(
                GREY,
                f"· {_title(name)}: not attempted yet — write your code in place of "
                "`raise NotImplementedError(…)` above, then run this cell again.",
            )
        ]
    message = str(exc)
    if name and message.startswith(f"{name}: "):
        message = message[len(name) + 2 :]
    lines = [c(BOLD + RED, f"✗ {_title(name)}")]
    lines += ["  " + line for line in _wrap(message)]
    learner_error = getattr(exc, "learner_error", None)
    if learner_error is not None:
        lines += [""] + ["  " + line for line in learner_frames(learner_error)]
    if name:
        from tfmcourse.checks.hints import HINTS

        if HINTS.get(name):
            lines += [
                "",
                c(GREY, f'  Stuck? Run hint("{name}") in a new cell; run it again for the next hint.'),
            ]
    return lines


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where rich output is shown)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return shell is not None and hasattr(shell, "kernel")


def offer_hint() -> None:
    """Make ``hint`` callable in the notebook after a failure, unless the learner uses that name."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    if shell is None or "hint" in shell.user_ns:
        return
    from tfmcourse.checks.hints import hint

    shell.push({"hint": hint})


def show_passed(line: str) -> None:
    """Print the ✓ line; in a notebook, also as a green block that stands out."""
    if not in_notebook():
        print(line)
        return
    from IPython.display import display

    block = (
        '<div style="border-left: 4px solid #2e7d32; background: #e8f5e9; color: #1b5e20; '
        'padding: 4px 10px; font-weight: bold; white-space: pre-wrap;">'
        f"{html.escape(line)}</div>"
    )
    display({"text/plain": line, "text/html": block}, raw=True)
