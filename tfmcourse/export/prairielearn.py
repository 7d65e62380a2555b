"""A PrairieLearn question: ``tfmcourse export prairielearn --lesson NN --out DIR``.

``DIR`` is a question folder (copy it under ``questions/`` of a course
repository), externally graded (PrairieLearn's external grading layout):

- ``info.json``: the question, with ``gradingMethod: "External"`` and
  ``externalGradingOptions`` (the image, the entry point
  ``/grade/tests/run.sh``, a time limit, no network);
- ``question.html``: the learner uploads the lesson's exercise notebook;
- ``tests/``: copied by PrairieLearn to ``/grade/tests`` at grading time:
  ``run.sh`` (the entry point), the course package (``tests/course/``),
  ``tfmcourse-grader.json`` and the ``Dockerfile`` of the grading image
  (Python, the CPU-only torch and the pinned dependencies).

The grader reads ``/grade/student/*.ipynb`` and writes
``/grade/results/results.json``: ``score`` in [0, 1] (points / max points),
``tests`` (``name`` "6.3 scaled_dot_product_attention", ``points``,
``max_points``, ``message`` = the check's message, ``output`` = why it
scored what it scored); an upload with no readable notebook is
``gradable: false`` with ``format_errors``, which costs the learner no attempt.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import sys
import traceback
import uuid
from pathlib import Path

from tfmcourse.export.bundle import (
    CONFIG_NAME,
    TORCH_CPU_INDEX,
    GraderConfig,
    course_files,
    course_version,
    exercise_notebooks,
    lesson_exercises,
    requirement_pin,
    validate_lessons,
    write_json,
)
from tfmcourse.export.submission import GradedUpload, grade_upload, grading_deadline

DEFAULT_IMAGE = "tfmcourse-grader:latest"
MAX_JOB_TIMEOUT = 600  # PrairieLearn's upper limit on externalGradingOptions.timeout

RUN_SH = """\
#!/usr/bin/env bash
# PrairieLearn's entry point (/grade/tests/run.sh); the grading root is the folder above this one.
# TFMCOURSE_PYTHON picks another interpreter (default: python3 of the image).
set -u
GRADE="$(cd "$(dirname "$0")/.." && pwd)"
PY="${TFMCOURSE_PYTHON:-python3}"
export PYTHONPATH="$GRADE/tests/course"
exec "$PY" -m tfmcourse.export.prairielearn "$GRADE"
"""

DOCKERFILE = """\
# The grading image: docker build -t {image} <this folder>, then push it where PrairieLearn can pull it.
FROM python:3.12-slim
COPY course/requirements.txt course/constraints.txt /opt/tfmcourse/
RUN pip install --no-cache-dir "{torch}" --index-url {torch_index} \\
 && pip install --no-cache-dir -r /opt/tfmcourse/requirements.txt -c /opt/tfmcourse/constraints.txt
"""

QUESTION_HTML = """\
<pl-question-panel>
  <p>Upload your notebook for <strong>lesson {lesson}</strong>, <code>{notebook}</code>, with every
  exercise you have done ({exercises}).</p>
  <p>It is graded outside your notebook, on hidden inputs: only the functions and classes you define count,
  not the outputs the notebook shows.</p>
  <pl-file-upload file-names="{notebook}"></pl-file-upload>
</pl-question-panel>

<pl-submission-panel>
  <pl-external-grader-results></pl-external-grader-results>
  <pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""


def job_timeout(config: GraderConfig) -> int:
    """Seconds for the whole grading job: the grader's own deadline and a margin, capped."""
    return int(min(MAX_JOB_TIMEOUT, grading_deadline(config) + 30))


def build(
    root: Path,
    lesson: int,
    out: str | os.PathLike,
    *,
    image: str = DEFAULT_IMAGE,
    timeout: float | None = None,
    memory: int | None = None,
    seed: int | None = None,
) -> Path:
    """Write the question folder ``out`` (its ``tests/`` is replaced); returns it."""
    (lesson,) = validate_lessons([lesson])
    notebooks = exercise_notebooks(root, [lesson])
    config = GraderConfig(
        lessons=[lesson],
        notebooks=notebooks,
        timeout=timeout,
        memory=memory,
        seed=seed,
        course_version=course_version(root),
    )
    exercises = lesson_exercises([lesson])
    out = Path(out)
    tests = out / "tests"
    if tests.exists():
        shutil.rmtree(tests)
    (tests / "course").mkdir(parents=True)
    info = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tfmcourse/lesson/{lesson}")),
        "title": f"Lesson {lesson:02d}: {notebooks[str(lesson)][3:-6].replace('_', ' ')} (notebook)",
        "topic": "Transformer",
        "tags": ["tfmcourse", f"lesson{lesson:02d}", "notebook"],
        "type": "v3",
        "singleVariant": True,
        "gradingMethod": "External",
        "externalGradingOptions": {
            "enabled": True,
            "image": image,
            "entrypoint": "/grade/tests/run.sh",
            "timeout": job_timeout(config),
            "enableNetworking": False,
        },
    }
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (out / "question.html").write_text(
        QUESTION_HTML.format(
            lesson=lesson,
            notebook=html.escape(notebooks[str(lesson)]),
            exercises=", ".join(f"{n} <code>{html.escape(e.name)}</code>" for n, e in exercises),
        ),
        encoding="utf-8",
    )
    run_sh = tests / "run.sh"
    run_sh.write_text(RUN_SH, encoding="utf-8")
    run_sh.chmod(0o755)
    (tests / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    (tests / "Dockerfile").write_text(
        DOCKERFILE.format(image=image, torch=requirement_pin(root, "torch"), torch_index=TORCH_CPU_INDEX),
        encoding="utf-8",
    )
    for path, name in course_files(root):
        dest = tests / "course" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return out


def results(upload: GradedUpload, config: GraderConfig) -> dict:
    """PrairieLearn's ``results.json`` for a graded upload."""
    readable = [n for n in upload.notebooks.values() if n is not None and n not in upload.unreadable]
    if not readable:
        expected = config.notebook_for(config.lessons[0])
        errors = [f"{n} could not be read: {why}" for n, why in upload.unreadable.items()]
        if not upload.unreadable:
            errors.append(f"no notebook was graded (expected {expected})")
        return {
            "gradable": False,
            "format_errors": errors + upload.notes,
            "message": f"Upload a readable {expected}: this attempt was not graded and costs nothing.",
        }
    tests = [
        {
            "name": o.label,
            "description": o.title,
            "points": o.points,
            "max_points": o.max_points,
            "message": o.message if o.status != "passed" else "passed",
            "output": o.reason,
        }
        for o in upload.outcomes
    ]
    total, maximum = sum(t["points"] for t in tests), sum(t["max_points"] for t in tests)
    message = [f"{total}/{maximum} points, graded out of process on hidden inputs ({', '.join(readable)})."]
    return {
        "gradable": True,
        "score": total / maximum if maximum else 0.0,
        "message": "\n".join(message + upload.notes),
        "tests": tests,
    }


def run(grade_root: str | os.PathLike) -> int:
    """``run.sh``: grade ``GRADE/student`` and write ``GRADE/results/results.json``."""
    grade_root = Path(grade_root)
    config = GraderConfig.load(grade_root / "tests" / CONFIG_NAME)
    out = grade_root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    status = 0
    try:
        data = results(grade_upload(grade_root / "student", config), config)
    except Exception:
        # PrairieLearn reports a job without results.json as a grading failure to the instructor;
        # write the reason down too, and take nothing from the learner.
        traceback.print_exc()
        data = {
            "gradable": False,
            "format_errors": ["the grader could not run (a problem with the grader, not your notebook)"],
        }
        status = 1
    write_json(data, out)
    print(f"results written to {out}: score {data.get('score')}")
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1] if len(sys.argv) > 1 else "/grade"))
