"""What secure grading keeps of a notebook: imports and definitions, with their line numbers."""

from __future__ import annotations

import time

from tfmcourse.grading.secure import extract


def test_extraction_keeps_only_imports_and_definitions():
    cells = [
        "%%time\nimport torch\n!ls\nimport torch.nn.functional as F\nfrom tfmcourse import viz\n"
        "def f(x):\n    return x\nf(1)\ntorch.allclose = lambda *a, **k: True\n",
        "%%bash\necho hi",
        "%matplotlib inline\nEPS = 1e-5\nalias = f\nsq = lambda x: x * x\nmodel = torch.nn.Linear(2, 2)\n"
        "class A:\n    pass\nfor i in range(3):\n    print(i)\n",
    ]
    ex = extract.extract(cells)
    assert sorted(ex.defs) == ["A", "EPS", "alias", "f", "sq"]
    assert [u.source.strip() for u in ex.imports] == ["import torch", "import torch.nn.functional as F"]
    assert ex.course_names == {"viz": "tfmcourse.viz"} and ex.aliases["F"] == "torch.nn.functional"
    # line numbers inside a cell are kept, so messages quote the learner's own line
    assert ex.defs["f"][0].source.split("\n")[5] == "def f(x):"
    assert [u.cell for u in extract.closure(ex, "alias")] == [0, 2]


def test_cell_magics_are_read_in_linear_time():
    """Forty stacked %%time lines once took the reader exponential time."""
    cell = "%%time\n" * 40 + "def f(x):\n    return x\n"
    start = time.process_time()
    ex = extract.extract([cell] * 50)
    assert "f" in ex.defs and ex.defs["f"][0].source.split("\n")[40] == "def f(x):"
    assert time.process_time() - start < 5  # exponential reading took hours; linear takes milliseconds


def test_a_cell_in_another_language_is_not_python():
    assert extract.strip_magics("%%bash\necho hi") is None
    assert extract.strip_magics("\n%%time\nx = 1") == "\n\nx = 1"
    assert extract.strip_magics("x = 1\n%matplotlib inline\n!ls") == "x = 1\n\n"


def test_a_syntax_error_is_kept_with_the_names_it_would_define():
    ex = extract.extract(["def padding_mask(tokens, pad_id)\n    return 1\n"])
    ((cell, err, names),) = ex.broken
    assert cell == 0 and "SyntaxError" in err and names == {"padding_mask"}
