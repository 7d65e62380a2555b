"""The package reads in lesson order: a concept module imports only the ideas of earlier lessons."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tfmcourse"

# The lesson that introduces each reference module's idea; 0 = shared infrastructure
# (data sets, the training loop) that may import no concept at all.
LESSON = {
    "data": 0,
    "train": 0,
    "seq2seq": 2,  # lessons 01-02
    "norms": 3,
    "residual": 4,
    "positional": 5,
    "masks": 6,
    "attention": 6,
    "transformer": 8,
    "torch_interop": 8,
    "decoding": 9,
    "schedule": 9,
}
# masked_softmax is lesson 02's exercise; it lives beside the attention it serves.
NAME_LESSON = {("attention", "masked_softmax"): 2}


def _tfmcourse_imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every ``tfmcourse`` import in ``path``, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tfmcourse":
            parts = node.module.split(".")[1:]
            if parts:
                found += [(parts[0], alias.name) for alias in node.names]
            else:  # from tfmcourse import norms
                found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (alias.name.split(".")[1], None)
                for alias in node.names
                if alias.name.startswith("tfmcourse.")
            ]
    return found


def _module_files(name: str) -> list[Path]:
    return sorted((PACKAGE / name).glob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"]


@pytest.mark.parametrize("module", sorted(LESSON))
def test_reference_module_imports_only_earlier_lessons(module):
    for path in _module_files(module):
        for imported, name in _tfmcourse_imports(path):
            if imported == module:
                continue
            assert imported in LESSON, (
                f"{path.name} imports tfmcourse.{imported}, which is not a concept module"
            )
            lesson = NAME_LESSON.get((imported, name), LESSON[imported])
            assert lesson <= LESSON[module], (
                f"tfmcourse/{path.relative_to(PACKAGE)} (lesson {LESSON[module]}) imports "
                f"{name or imported} from tfmcourse.{imported} (lesson {lesson})"
            )


def test_the_checker_sees_an_import_from_a_later_lesson(tmp_path):
    bad = tmp_path / "norms.py"
    bad.write_text("def f():\n    from tfmcourse.attention import MultiHeadAttention\n")
    assert _tfmcourse_imports(bad) == [("attention", "MultiHeadAttention")]
    assert LESSON["attention"] > LESSON["norms"]


def test_experiments_are_one_module_per_lesson_and_not_imported_by_reference_code():
    names = {p.stem for p in (PACKAGE / "experiments").glob("*.py")} - {"__init__"}
    assert {"lesson01", "lesson03", "lesson04", "lesson09"} <= names
    assert all(re.fullmatch(r"lesson\d\d", n) for n in names), sorted(names)
    for module in LESSON:
        for path in _module_files(module):
            assert "experiments" not in {m for m, _ in _tfmcourse_imports(path)}, path.name
