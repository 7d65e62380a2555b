"""Notebooks a learner might upload: a solution, an untouched exercise, a wrong answer, garbage."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Scaled dot-product attention without the 1/sqrt(d_k): a mistake the check names.
UNSCALED_SDPA = """\
def scaled_dot_product_attention(q, k, v, attn_mask=None):
    scores = q @ k.transpose(-2, -1)
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return weights @ v, weights
"""
UNSCALED_MISTAKE = "the scores are not scaled"


def lesson_notebook(folder: str, lesson: int) -> Path:
    (path,) = sorted((ROOT / folder).glob(f"{lesson:02d}_*.ipynb"))
    return path


def place_upload(files: dict[str, Path | bytes], folder: Path) -> None:
    """Put a learner's upload in ``folder``: each name with a copy of a file or with raw bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            shutil.copyfile(content, folder / name)


def with_definition(src: Path, name: str, source: str, dest: Path) -> Path:
    """``src`` with the cell that defines ``name`` replaced by ``source``."""
    nb = nbformat.read(src, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(f"def {name}(")]
    assert len(cells) == 1, f"{src.name} should define {name} in exactly one cell"
    cells[0].source = source
    nbformat.write(nb, dest)
    return dest


@pytest.fixture
def grader_env() -> dict:
    """The environment exported graders run in here: this interpreter, no inherited course path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TFMCOURSE_PYTHON"] = sys.executable
    env["OMP_NUM_THREADS"] = "1"
    return env
