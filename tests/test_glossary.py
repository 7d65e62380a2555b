"""The glossary in lesson 00 is the single source of Korean terms: every notebook uses its words.

``WRONG`` lists renderings met in Korean writing on the Transformer that the course does not use,
with the glossary's term to use instead. Each notebook is scanned for them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tfmcourse import nbtools

ROOT = Path(__file__).resolve().parent.parent

WRONG = {
    "자기 주의": "셀프 어텐션",
    "자기 어텐션": "셀프 어텐션",
    "셀프어텐션": "셀프 어텐션",
    "멀티 헤드 어텐션": "멀티헤드 어텐션",
    "다중 헤드 어텐션": "멀티헤드 어텐션",
    "크로스 어텐션": "교차 어텐션",
    "교차 주의": "교차 어텐션",
    "주의 집중": "어텐션",
    "주의 메커니즘": "어텐션",
    "레이어 정규화": "층 정규화",
    "계층 정규화": "층 정규화",
    "배치 노멀라이제이션": "배치 정규화",
    "잔여 연결": "잔차 연결",
    "위치 부호화": "위치 인코딩",
    "포지셔널 인코딩": "위치 인코딩",
    "위치 채움": "패딩",
    "교사 강제": "교사 강요",
    "노출 바이어스": "노출 편향",
    "라벨 스무딩": "레이블 스무딩",
    "웜업": "워밍업",
    "워밍 업": "워밍업",
    "탐욕적 디코딩": "그리디 디코딩",
    "탐욕 디코딩": "그리디 디코딩",
    "빔 서치": "빔 탐색",
    "빔 써치": "빔 탐색",
    "소프트 맥스": "소프트맥스",
    "컨텍스트 벡터": "문맥 벡터",
    "KV 캐시": "키-값 캐시",
    "키 값 캐시": "키-값 캐시",
}


def glossary() -> dict[str, str]:
    """English → Korean, parsed from the glossary table of lesson 00."""
    nb = nbtools.read(ROOT / "notebooks" / "00_start_here.ipynb")
    (cell,) = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Glossary")]
    rows = [line for line in cell.source.splitlines() if line.startswith("| ") and "---" not in line]
    terms = {}
    for row in rows[1:]:  # the first row is the header
        english, korean, _lessons = (part.strip() for part in row.strip("|").split("|"))
        terms[english] = korean
    return terms


def korean_terms() -> set[str]:
    return {t.strip() for ko in glossary().values() for t in ko.split("/")}


def test_glossary_has_the_courses_concepts_with_the_chosen_terms():
    terms = korean_terms()
    required = {
        "어텐션", "셀프 어텐션", "교차 어텐션", "멀티헤드 어텐션", "잔차 연결", "층 정규화", "배치 정규화",
        "위치 인코딩", "교사 강요", "빔 탐색", "패딩", "마스크", "인코더", "디코더", "임베딩", "소프트맥스",
        "노출 편향", "레이블 스무딩", "그리디 디코딩", "샘플링", "온도", "키-값 캐시",
    }  # fmt: skip
    assert not required - terms, f"missing from the glossary: {sorted(required - terms)}"
    assert any("워밍업" in ko for ko in glossary().values())
    assert len(glossary()) >= 40


def test_every_wrong_variant_points_at_a_glossary_term_and_is_not_one():
    terms = korean_terms()
    text = " ".join(terms)
    for wrong, right in WRONG.items():
        assert right in terms or right in text, f"{right!r} (instead of {wrong!r}) is not in the glossary"
        assert wrong not in text, f"the glossary itself uses {wrong!r}"


def wrong_terms_in(path: Path) -> list[str]:
    nb = nbtools.read(path)
    found = []
    for i, cell in enumerate(nb.cells):
        for wrong, right in WRONG.items():
            if re.search(re.escape(wrong), cell.source):
                found.append(f"cell {i}: {wrong!r} → {right!r}")
    return found


NOTEBOOKS = sorted(
    p.relative_to(ROOT).as_posix()
    for folder in ("notebooks", "exercises", "solutions", "ko/notebooks", "ko/exercises")
    for p in (ROOT / folder).glob("*.ipynb")
)


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_uses_the_glossary_terms(rel):
    found = wrong_terms_in(ROOT / rel)
    assert not found, f"{rel} uses Korean terms that differ from the glossary: {found}"


def test_the_scan_finds_a_variant(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## 멀티 헤드 어텐션 (multi-head attention)")]
    nbtools.write(nb, tmp_path / "x.ipynb")
    assert wrong_terms_in(tmp_path / "x.ipynb") == ["cell 0: '멀티 헤드 어텐션' → '멀티헤드 어텐션'"]
