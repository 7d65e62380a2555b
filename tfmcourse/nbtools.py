"""Small notebook utilities shared by the builder, the grader, the tests and authors.

- :func:`clean` strips what must not be committed: widget state, execution
  timing, machine-specific kernel metadata (and, on request, outputs).
- :func:`execute` runs a notebook top to bottom (Restart & Run All) and saves
  it clean: how a lesson's committed figures are refreshed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

NB_VERSION = 4

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def reads(text: str) -> nbformat.NotebookNode:
    """The notebook in ``text`` (nbformat's errors for anything that is not one)."""
    return nbformat.reads(text, as_version=NB_VERSION)


def read(path: str | Path) -> nbformat.NotebookNode:
    return reads(Path(path).read_text(encoding="utf-8"))


def dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=NB_VERSION) + "\n"


def write(nb: nbformat.NotebookNode, path: str | Path) -> None:
    Path(path).write_text(dumps(nb), encoding="utf-8")


WIDGET_PLACEHOLDER = "[interactive widget: run the notebook in JupyterLab to use it]"

_CELL_METADATA_DROP = ("execution", "ExecuteTime", "collapsed", "scrolled", "jupyter")


def clean(nb: nbformat.NotebookNode, *, keep_outputs: bool = True) -> nbformat.NotebookNode:
    """Strip widget state, timings and machine-specific metadata (in place; also returned)."""
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}"
        for key in _CELL_METADATA_DROP:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if not keep_outputs:
            cell.outputs = []
            cell.execution_count = None
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            # widget views are live-only: without saved state their text repr
            # ("VBox(children=…)") is noise, so say what is there instead
            if "application/vnd.jupyter.widget-view+json" in data:
                out["data"] = {"text/plain": WIDGET_PLACEHOLDER}
            out.get("metadata", {}).pop("execution", None)
            kept.append(out)
        cell.outputs = kept
    return nb


def execute(path: str | Path, *, timeout: int = 600, save: bool = True) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel from its own folder and (by default) save it clean."""
    from nbclient import NotebookClient

    path = Path(path)
    nb = read(path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()
    clean(nb)
    if save:
        write(nb, path)
    return nb
