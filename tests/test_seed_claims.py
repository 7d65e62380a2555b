"""The seed-claim map (docs/seed_claims.md) points at sections and cells that exist.

Every reference reads ``[NN](../notebooks/NN_x.ipynb) § heading (`cell id`)``: the cell must exist
and lie in the section with that heading, so renumbered or rewritten lessons cannot leave the map
pointing at the wrong experiment.
"""

import re
from pathlib import Path

import pytest

from tfmcourse import nbtools

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "seed_claims.md"
REF = re.compile(r"\[(\d\d)\]\(\.\./notebooks/([^)]+)\) § (.+?) \(`([^`]+)`\)")
HEADING = re.compile(r"^(#+)\s+(.*)$", re.M)


def references():
    return [m.groups() for m in REF.finditer(MAP.read_text(encoding="utf-8"))]


def section_headings(cells, index):
    """The headings in force at cell ``index``: the nearest one of each level, outermost first."""
    found = {}
    for cell in reversed(cells[: index + 1]):
        if cell.cell_type != "markdown":
            continue
        for hashes, text in reversed(HEADING.findall(cell.source)):
            level = len(hashes)
            if all(level < lv for lv in found):  # an enclosing heading of the ones found so far
                found[level] = text.strip()
    return set(found.values())


def test_the_map_has_references():
    assert len(references()) > 50


@pytest.mark.parametrize("number, notebook, heading, cell_id", references())
def test_each_reference_points_at_a_cell_in_its_section(number, notebook, heading, cell_id):
    assert notebook.startswith(number)
    cells = nbtools.read(ROOT / "notebooks" / notebook).cells
    ids = [c.get("id") for c in cells]
    assert cell_id in ids, f"{notebook} has no cell {cell_id}"
    assert heading.strip() in section_headings(cells, ids.index(cell_id)), (
        f"{notebook} cell {cell_id} is not in the section '{heading}'"
    )
