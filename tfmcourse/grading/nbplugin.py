"""A pytest plugin loaded by ``tfmcourse grade``: records every nbval cell's outcome.

It writes one JSON line per notebook cell to the file named by the
``TFMCOURSE_GRADE_OUT`` environment variable: the cell's index and source,
its outcome, and the exception name and value if the cell raised.
"""

from __future__ import annotations

import json
import os

import pytest


def _write(record: dict) -> None:
    path = os.environ.get("TFMCOURSE_GRADE_OUT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cell = getattr(item, "cell", None)
    if cell is None or report.when != "call":
        return
    record = {
        "kind": "cell",
        "index": getattr(item, "cell_num", None),
        "source": cell.source,
        "outcome": report.outcome,
        "ename": None,
        "evalue": None,
        "detail": None,
    }
    for out in getattr(item, "test_outputs", None) or []:
        if out.get("output_type") == "error":
            record["ename"], record["evalue"] = out.get("ename"), out.get("evalue")
    if report.outcome == "failed" and record["ename"] is None:
        record["detail"] = str(report.longrepr)[-2000:]
    _write(record)


def pytest_collectreport(report):
    if report.failed:
        _write({"kind": "collect-error", "detail": str(report.longrepr)[-2000:]})
