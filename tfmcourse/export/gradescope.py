"""A Gradescope autograder: ``tfmcourse export gradescope --lesson NN … --out autograder.zip``.

The zip has, at its root (Gradescope's autograder specification):

- ``setup.sh``: run once, as root, when Gradescope builds the image. It makes
  a virtual environment in ``/autograder/venv`` and installs the CPU-only
  ``torch`` and the course's pinned dependencies (``requirements.txt`` with
  ``constraints.txt``) from the package indexes, or offline from the wheels
  in ``wheels/`` when the zip carries them (``--wheelhouse DIR``).
- ``run_autograder``: run for every submission. It grades the notebooks in
  ``$AUTOGRADER_ROOT/submission`` (default root ``/autograder``) with the
  secure grader and writes ``$AUTOGRADER_ROOT/results/results.json``.
- the course package and ``tfmcourse-grader.json`` (lessons and limits).

``results.json``: one test per exercise of the lessons (``name`` "6.3
scaled_dot_product_attention", ``score``, ``max_score``, ``status``,
``output`` = the check's message and why it scored what it scored), a
top-level ``score`` equal to the sum of the tests' and an ``output`` for the
whole submission (which notebook was graded, which could not be read);
``extra_data`` keeps the hidden seed, which learners never see.
"""

from __future__ import annotations

import os
import stat
import sys
import time
import traceback
import zipfile
from pathlib import Path

from tfmcourse.export.bundle import (
    CONFIG_NAME,
    TORCH_CPU_INDEX,
    ExportError,
    GraderConfig,
    course_files,
    course_version,
    exercise_notebooks,
    requirement_pin,
    validate_lessons,
    write_json,
)
from tfmcourse.export.submission import GradedUpload, Outcome, grade_upload

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
# Choose the Ubuntu 24.04 base image (Python 3.12): the pinned numpy needs Python >= 3.11.
set -euo pipefail
SOURCE="${{AUTOGRADER_ROOT:-/autograder}}/source"
VENV="${{AUTOGRADER_ROOT:-/autograder}}/venv"
if command -v apt-get >/dev/null; then
    apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11), "the pinned dependencies need Python >= 3.11: choose the Ubuntu 24.04 base image"'
python3 -m venv "$VENV"
if compgen -G "$SOURCE/wheels/*.whl" >/dev/null; then
    # Offline: every wheel was bundled in the zip.
    PIP=("$VENV/bin/pip" install --no-index --find-links "$SOURCE/wheels")
else
    "$VENV/bin/pip" install --upgrade pip
    PIP=("$VENV/bin/pip" install)
    # The CPU-only build of torch first, so that requirements.txt finds it already installed.
    "${{PIP[@]}}" "{torch}" --index-url {torch_index}
fi
"${{PIP[@]}}" -r "$SOURCE/requirements.txt" -c "$SOURCE/constraints.txt"
# run_autograder imports the course from $SOURCE (PYTHONPATH): nothing else to install.
PYTHONPATH="$SOURCE" "$VENV/bin/python" -c "import torch, tfmcourse.checks; print('tfmcourse', tfmcourse.__version__, 'torch', torch.__version__)"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission; AUTOGRADER_ROOT (default /autograder) lets it run anywhere.
# TFMCOURSE_PYTHON picks another interpreter (default: the one setup.sh installed).
set -u
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${TFMCOURSE_PYTHON:-$ROOT/venv/bin/python}"
export PYTHONPATH="$ROOT/source"
cd "$ROOT"
exec "$PY" -m tfmcourse.export.gradescope "$ROOT"
"""


def build(
    root: Path,
    lessons: list[int],
    out: str | os.PathLike,
    *,
    timeout: float | None = None,
    memory: int | None = None,
    seed: int | None = None,
    wheelhouse: str | os.PathLike | None = None,
) -> Path:
    """Write the autograder zip; returns its path."""
    lessons = validate_lessons(lessons)
    config = GraderConfig(
        lessons=lessons,
        notebooks=exercise_notebooks(root, lessons),
        timeout=timeout,
        memory=memory,
        seed=seed,
        course_version=course_version(root),
    )
    setup = SETUP_SH.format(torch=requirement_pin(root, "torch"), torch_index=TORCH_CPU_INDEX)
    wheels = sorted(Path(wheelhouse).glob("*.whl")) if wheelhouse else []
    if wheelhouse and not wheels:
        raise ExportError(f"no .whl files in {wheelhouse}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        _add(z, "setup.sh", setup, executable=True)
        _add(z, "run_autograder", RUN_AUTOGRADER, executable=True)
        _add(z, CONFIG_NAME, config.to_json())
        for path, name in course_files(root):
            _add(z, name, path.read_bytes())
        for w in wheels:
            _add(z, f"wheels/{w.name}", w.read_bytes())
    return out


def _add(z: zipfile.ZipFile, name: str, data: str | bytes, *, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))  # same bytes on every export
    info.compress_type = zipfile.ZIP_DEFLATED
    mode = 0o755 if executable else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    z.writestr(info, data)


def _test_output(o: Outcome) -> str:
    """The check's message (what was expected, the named mistake) and why it scored what it scored."""
    if o.status == "passed":
        return o.reason or "passed the check on hidden inputs"
    text = o.message.strip()
    if o.reason and o.reason not in text:
        text = f"{text}\n\n({o.reason})" if text else o.reason
    return f"{o.status}: {text}"


def results(upload: GradedUpload, config: GraderConfig, *, execution_time: float | None = None) -> dict:
    """Gradescope's ``results.json`` for a graded upload."""
    tests = [
        {
            "name": o.label,
            "number": o.number,
            "score": float(o.points),
            "max_score": float(o.max_points),
            "status": "passed" if o.status == "passed" else "failed",
            "output": _test_output(o),
            "visibility": "visible",
        }
        for o in upload.outcomes
    ]
    lines = [f"{upload.score}/{upload.max_score} points, graded out of process on hidden inputs."]
    for lesson in config.lessons:
        name = upload.notebooks.get(lesson)
        if name is None:
            lines.append(f"Lesson {lesson}: no notebook graded (expected {config.notebook_for(lesson)}).")
        elif name in upload.unreadable:
            lines.append(
                f"Lesson {lesson}: {name} could not be read, so it scored 0: {upload.unreadable[name]}"
            )
        else:
            lines.append(f"Lesson {lesson}: graded {name}.")
    lines.extend(upload.notes)
    return {
        "score": float(sum(t["score"] for t in tests)),
        "execution_time": round(execution_time or 0.0, 1),
        "output": "\n".join(lines),
        "visibility": "visible",
        "stdout_visibility": "hidden",  # the grader's log names the hidden seed
        "extra_data": {
            "seed": upload.seed,
            "lessons": config.lessons,
            "notebooks": {str(k): v for k, v in upload.notebooks.items()},
            "unreadable": upload.unreadable,
            "tfmcourse_version": config.course_version,
        },
        "tests": tests,
    }


def failure_results(config: GraderConfig, why: str) -> dict:
    """What a learner sees when the grader itself broke: no score lost silently, the reason logged."""
    return {
        "score": 0.0,
        "output": "The autograder could not grade this submission (a problem with the grader, not "
        "with your notebook). Please resubmit later or tell your instructor.",
        "stdout_visibility": "hidden",
        "extra_data": {"grader_error": why, "lessons": config.lessons},
        "tests": [],
    }


def run(root: str | os.PathLike) -> int:
    """``run_autograder``: grade ``ROOT/submission`` and write ``ROOT/results/results.json``."""
    root = Path(root)
    config = GraderConfig.load(root / "source" / CONFIG_NAME)
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    status = 0
    try:
        data = results(
            grade_upload(root / "submission", config), config, execution_time=time.monotonic() - start
        )
    except Exception as exc:  # whatever happens, Gradescope gets a results.json that says so
        traceback.print_exc()
        data, status = failure_results(config, f"{type(exc).__name__}: {exc}"), 1
    write_json(data, out)
    print(f"results written to {out}: {data['score']:g} points")
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AUTOGRADER_ROOT", "/autograder")))
