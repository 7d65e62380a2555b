"""`tfmcourse grade --secure`: correct code passes out of process, cheating scores zero."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tests.grading.builders import (
    EXERCISES,
    LESSONS,
    ROOT,
    by_name,
    correct_impls,
    digest,
    grade,
    impl_source,
    lesson_names,
    nb_name,
    stub_source,
    write_notebook,
    wrong_impls,
)
from tfmcourse.grading.secure import policy

pytestmark = pytest.mark.slow  # every test here starts the grading sandbox

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9]*.ipynb"))
EXERCISE_NBS = sorted((ROOT / "exercises").glob("[0-9]*.ipynb"))
SEED = 4242  # a fixed hidden seed where the test needs a reproducible result


# ----------------------------------------------------------------------------- correct and unfilled


@pytest.mark.parametrize("lesson", LESSONS)
def test_generated_solution_notebook_gets_full_marks(lesson, tmp_path):
    """Every exercise of the lesson, written independently of tfmcourse, passes on a random hidden seed."""
    codes = {n: impl_source(correct_impls(n)[0].impl, n) for n in lesson_names(lesson) if correct_impls(n)}
    path = write_notebook(tmp_path / nb_name(lesson, "solution"), codes)
    before = digest(path)
    report = grade(path)
    assert report.error is None
    failures = {e.name: (e.status, e.reason, e.message) for e in report.exercises if e.status != "passed"}
    assert not failures, failures
    assert report.score == report.max_score
    assert digest(path) == before, "grading never modifies the notebook"


def test_every_correct_variant_passes_and_every_wrong_one_fails_in_secure_mode(tmp_path):
    """The mutation catalogue through the sandbox: same verdicts as in process, on a hidden seed."""
    bad = []
    for name in EXERCISES:
        for m in correct_impls(name)[1:2] + wrong_impls(name)[:2]:
            path = write_notebook(
                tmp_path / f"{m.label}" / nb_name(EXERCISES[name].lesson, "m"),
                {name: impl_source(m.impl, name)},
            )
            e = by_name(grade(path, seed=SEED))[name]
            if (e.status == "passed") != m.correct:
                bad.append((m.label, e.status, e.message[:200]))
    assert not bad, bad


@pytest.mark.parametrize("lesson", LESSONS)
def test_unfilled_notebook_scores_zero_not_attempted(lesson, tmp_path):
    path = write_notebook(
        tmp_path / nb_name(lesson, "exercise"), {n: stub_source(n) for n in lesson_names(lesson)}
    )
    report = grade(path)
    assert report.exercises and report.score == 0
    assert {e.status for e in report.exercises} == {"not attempted"}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_course_solution_notebooks_get_full_marks(path):
    before = digest(path)
    report = grade(path)
    assert report.error is None, report.error
    failures = {e.name: (e.status, e.reason, e.message) for e in report.exercises if e.status != "passed"}
    assert not failures, failures
    assert digest(path) == before


@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.name)
def test_course_exercise_notebooks_score_zero(path):
    report = grade(path)
    assert report.error is None, report.error
    assert report.exercises and report.score == 0
    assert {e.status for e in report.exercises} == {"not attempted"}, [
        (e.name, e.reason) for e in report.exercises
    ]


def test_a_definition_missing_from_the_notebook_is_not_attempted(tmp_path):
    path = write_notebook(
        tmp_path / "06_partial.ipynb",
        {"causal_mask": impl_source(correct_impls("causal_mask")[0].impl, "causal_mask")},
    )
    r = by_name(grade(path))
    assert r["causal_mask"].status == "passed"
    assert r["padding_mask"].status == "not attempted" and "not defined" in r["padding_mask"].reason


def test_in_place_modification_is_seen_across_the_process_boundary(tmp_path):
    code = textwrap.dedent("""
        def padding_mask(tokens, pad_id):
            m = tokens == pad_id
            tokens[m] = 0
            return m
    """)
    r = by_name(grade(write_notebook(tmp_path / "06_x.ipynb", {"padding_mask": code})))
    assert r["padding_mask"].status == "failed" and "changed the tokens" in r["padding_mask"].message


# ----------------------------------------------------------------------------- cheating scores zero

WRONG_CAUSAL = "def causal_mask(T):\n    return torch.zeros(T, T, dtype=torch.bool)\n"
WRONG_SDPA = (
    "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
    "    w = torch.softmax(q @ k.transpose(-2, -1), dim=-1)\n"
    "    return w @ v, w\n"
)


def _cheat(tmp_path, label, codes, extra=(), head=""):
    return grade(write_notebook(tmp_path / f"06_{label}.ipynb", codes, list(extra), head))


def test_monkeypatching_allclose_gives_nothing(tmp_path):
    extra = [
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "torch.Tensor.__eq__ = lambda *a, **k: True"
    ]
    code = "torch.allclose = lambda *a, **k: True\n" + WRONG_CAUSAL
    report = _cheat(
        tmp_path, "allclose", {"causal_mask": code, "scaled_dot_product_attention": WRONG_SDPA}, extra
    )
    assert report.score == 0
    assert by_name(report)["causal_mask"].status == "failed"
    assert "not scaled" in by_name(report)["scaled_dot_product_attention"].message


def test_replacing_the_check_function_gives_nothing(tmp_path):
    extra = [
        "def check_causal_mask(impl, *, seed=0):\n    print('✓ causal_mask: correct')\n",
        "import tfmcourse.checks\ntfmcourse.checks.check_causal_mask = lambda *a, **k: None\n"
        "tfmcourse.checks._core.CheckFailed = Exception",
    ]
    report = _cheat(tmp_path, "replace_check", {"causal_mask": WRONG_CAUSAL}, extra)
    assert by_name(report)["causal_mask"].status == "failed" and report.score == 0


def test_a_tensor_subclass_lying_through_torch_function_gives_nothing(tmp_path):
    code = textwrap.dedent("""
        class Agreeable(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                if func in (torch.allclose, torch.equal):
                    return True
                if getattr(func, "__name__", "") in ("__eq__", "__ne__", "eq", "ne"):
                    return torch.zeros(5, dtype=torch.bool)
                return super().__torch_function__(func, types, args, kwargs or {})

        def causal_mask(T):
            return torch.zeros(T, T, dtype=torch.bool).as_subclass(Agreeable)
    """)
    report = _cheat(tmp_path, "subclass", {"causal_mask": code})
    e = by_name(report)["causal_mask"]
    assert e.status == "failed" and report.score == 0
    assert "Agreeable" in e.message and "torch.Tensor subclass" in e.message


@pytest.mark.parametrize("how", ["import", "alias", "runtime"])
def test_importing_the_reference_gives_nothing(tmp_path, how):
    codes = {
        "import": {"padding_mask": "from tfmcourse.masks import padding_mask\n"},
        "alias": {
            "padding_mask": "from tfmcourse import masks as _m\n\n"
            "def padding_mask(tokens, pad_id):\n    return _m.padding_mask(tokens, pad_id)\n"
        },
        "runtime": {
            "padding_mask": "import importlib\n\ndef padding_mask(tokens, pad_id):\n"
            "    m = importlib.import_module('tfm' + 'course.masks')\n"
            "    return m.padding_mask(tokens, pad_id)\n"
        },
    }[how]
    e = by_name(_cheat(tmp_path, how, codes))["padding_mask"]
    assert e.status == "failed" and e.points == 0
    assert "tfmcourse" in e.reason, e.reason


def test_printing_a_fake_tick_gives_nothing(tmp_path):
    extra = ["print('✓ causal_mask: correct')\nprint('✓ padding_mask: correct')"]
    report = _cheat(
        tmp_path,
        "fake_tick",
        {
            "causal_mask": stub_source("causal_mask"),
            "padding_mask": "def padding_mask(tokens, pad_id):\n    print('✓ padding_mask: correct')\n",
        },
        extra,
    )
    assert report.score == 0
    assert by_name(report)["causal_mask"].status == "not attempted"
    assert by_name(report)["padding_mask"].status == "failed"


def _seed0_calls():
    """The inputs the notebook's check shows (seed 0) and the reference outputs for them."""
    ref = EXERCISES["scaled_dot_product_attention"].reference_impl()
    seen = []

    def record(q, k, v, attn_mask=None):
        out = ref(q, k, v, attn_mask=attn_mask)
        key = (round(float(q.sum()), 3), -1 if attn_mask is None else int(attn_mask.sum()))
        seen.append((key, out[0].tolist(), out[1].tolist()))
        return out

    EXERCISES["scaled_dot_product_attention"].check(record, seed=0)
    return seen


def test_hard_coding_the_outputs_of_the_default_seed_gives_nothing(tmp_path, capsys):
    table = {key: (out, w) for key, out, w in _seed0_calls()}
    code = (
        f"ANSWERS = {table!r}\n\n"
        "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
        "    key = (round(float(q.sum()), 3), -1 if attn_mask is None else int(attn_mask.sum()))\n"
        "    out, w = ANSWERS.get(key, ([], []))\n"
        "    return torch.tensor(out), torch.tensor(w)\n"
    )
    namespace = {"torch": torch}
    exec(code, namespace)
    EXERCISES["scaled_dot_product_attention"].check(namespace["scaled_dot_product_attention"], seed=0)
    assert capsys.readouterr().out.startswith("✓")
    e = by_name(_cheat(tmp_path, "hardcoded", {"scaled_dot_product_attention": code}))  # … not hidden inputs
    assert (
        e["scaled_dot_product_attention"].status == "failed" and e["scaled_dot_product_attention"].points == 0
    )


@pytest.mark.parametrize("how", ["static", "runtime"])
def test_the_torch_builtin_the_exercise_asks_for_is_rejected(tmp_path, how):
    call = (
        "F.scaled_dot_product_attention"
        if how == "static"
        else "getattr(F, 'scaled_dot_' + 'product_attention')"
    )
    code = textwrap.dedent(f"""
        import torch.nn.functional as F

        def scaled_dot_product_attention(q, k, v, attn_mask=None):
            keep = None if attn_mask is None else ~attn_mask
            out = {call}(q, k, v, attn_mask=keep)
            s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
            if attn_mask is not None:
                s = s.masked_fill(attn_mask, float('-inf'))
            return out, torch.softmax(s, -1).nan_to_num(0.0)
    """)
    e = by_name(_cheat(tmp_path, how, {"scaled_dot_product_attention": code}))["scaled_dot_product_attention"]
    assert e.status == "failed" and e.points == 0
    assert "torch.nn.functional.scaled_dot_product_attention" in e.reason, e.reason


# ----------------------------------------------------------------------------- limits


def test_infinite_loop_memory_bomb_and_exit_score_zero_and_never_stop_the_rest(tmp_path):
    codes = {
        "causal_mask": "def causal_mask(T):\n    while True:\n        pass\n",
        "padding_mask": "def padding_mask(tokens, pad_id):\n    hog = []\n    while True:\n"
        "        hog.append(torch.ones(10**7))\n",
        "scaled_dot_product_attention": "import os\n\ndef scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
        "    os._exit(0)\n",
    }
    others = {
        n: impl_source(correct_impls(n)[0].impl, n)
        for n in ("split_heads", "merge_heads")
        if n in EXERCISES and correct_impls(n)
    }
    path = write_notebook(tmp_path / "06_limits.ipynb", {**codes, **others})
    report = grade(path, timeout=4, memory=1200)
    r = by_name(report)
    assert r["causal_mask"].status == "failed" and "time limit" in r["causal_mask"].reason.lower()
    assert r["padding_mask"].status == "failed" and r["padding_mask"].points == 0
    assert r["scaled_dot_product_attention"].status == "failed"
    assert "exit" in r["scaled_dot_product_attention"].reason
    for n in others:
        assert r[n].status == "passed", (n, r[n].message)


def test_top_level_statements_never_run(tmp_path):
    marker = tmp_path / "ran"
    extra = [f"open({str(marker)!r}, 'w').write('top-level code ran')"]
    code = impl_source(correct_impls("causal_mask")[0].impl, "causal_mask")
    report = _cheat(tmp_path, "toplevel", {"causal_mask": code}, extra)
    assert by_name(report)["causal_mask"].status == "passed"
    assert not marker.exists()


# ----------------------------------------------------------------------------- reading files and the CLI


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"", "empty"),
        (b"{not json", "not valid notebook JSON"),
        (b'{"cells": 3}', "not a Jupyter notebook"),
    ],
)
def test_broken_files_are_reported_not_raised(tmp_path, content, expect):
    p = tmp_path / "06_broken.ipynb"
    p.write_bytes(content)
    report = grade(p)
    assert report.error and expect in report.error and report.score == 0


def test_syntax_error_is_reported_for_that_exercise_only(tmp_path):
    ok = impl_source(correct_impls("causal_mask")[0].impl, "causal_mask")
    path = write_notebook(
        tmp_path / "06_syntax.ipynb",
        {"causal_mask": ok, "padding_mask": "def padding_mask(tokens, pad_id)\n    return 1\n"},
    )
    r = by_name(grade(path))
    assert r["causal_mask"].status == "passed"
    assert r["padding_mask"].status == "failed" and "syntax" in r["padding_mask"].reason


def test_cli_json_has_the_grade_format_plus_a_reason(tmp_path):
    codes = {
        "causal_mask": impl_source(correct_impls("causal_mask")[0].impl, "causal_mask"),
        "padding_mask": stub_source("padding_mask"),
        "scaled_dot_product_attention": WRONG_SDPA,
    }
    path = write_notebook(tmp_path / "06_cli.ipynb", codes)
    out = tmp_path / "report.json"
    exe = Path(sys.executable).with_name("tfmcourse")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tfmcourse"]
    proc = subprocess.run(
        cmd + ["grade", "--secure", str(path), "--json", str(out), "--timeout", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "causal_mask" in proc.stdout and "secure mode" in proc.stdout
    data = json.loads(out.read_text())
    (nb,) = data["notebooks"]
    assert set(nb) >= {"path", "score", "max_score", "error", "exercises"}
    ex = {e["name"]: e for e in nb["exercises"]}
    assert set(ex["causal_mask"]) == {"name", "lesson", "status", "points", "max_points", "message", "reason"}
    assert [ex[n]["status"] for n in codes] == ["passed", "not attempted", "failed"]
    assert nb["score"] == EXERCISES["causal_mask"].points and all(e["reason"] for e in ex.values())


# ----------------------------------------------------------------------------- earlier lessons' references


def _mha_source(base: str) -> str:
    return textwrap.dedent(f"""
        import sys
        from tfmcourse.attention import scaled_dot_product_attention as sdpa

        class MultiHeadAttention({base}):
            pass
    """)


@pytest.mark.parametrize("how", ["same_lesson", "module", "via_globals", "runtime_import"])
def test_only_earlier_lessons_references_may_be_used(tmp_path, how):
    """Lesson 8 may build on tfmcourse.attention.MultiHeadAttention (a lesson-7 exercise); lesson 7 may not."""
    code = {
        "same_lesson": "from tfmcourse.attention import MultiHeadAttention\n",
        "module": (
            "from tfmcourse import attention as A\n\n"
            "class MultiHeadAttention(getattr(A, 'MultiHead' + 'Attention')):\n    pass\n"
        ),
        "via_globals": _mha_source("sdpa.__globals__['MultiHead' + 'Attention']"),
        "runtime_import": _mha_source(
            "__import__('importlib').import_module('tfm' + 'course.transformer').MultiHeadAttention"
        ),
    }[how]
    path = write_notebook(tmp_path / "07_ref.ipynb", {"MultiHeadAttention": code})
    e = by_name(grade(path))["MultiHeadAttention"]
    assert e.status == "failed" and e.points == 0, (e.status, e.reason, e.message)
    why = {
        "same_lesson": "tfmcourse.attention.MultiHeadAttention",
        "module": "tfmcourse.attention",
        "via_globals": "KeyError",
        "runtime_import": "imports tfmcourse",
    }[how]
    assert why in e.reason + e.message, (e.reason, e.message)


def test_a_later_lesson_may_use_an_earlier_reference_but_not_its_own(tmp_path):
    own = "from tfmcourse.transformer import EncoderLayer\n"
    path = write_notebook(tmp_path / "08_ref.ipynb", {"EncoderLayer": own})
    e = by_name(grade(path))["EncoderLayer"]
    assert e.status == "failed" and "tfmcourse.transformer.EncoderLayer" in e.reason
    allowed, banned = policy.course_policy("EncoderLayer")
    assert "tfmcourse.attention.MultiHeadAttention" in allowed
    assert "tfmcourse.transformer.EncoderLayer" in banned and "tfmcourse.transformer.FeedForward" in banned


def test_numpy_scalars_count_as_numbers_like_in_the_notebook(tmp_path):
    code = textwrap.dedent("""
        import numpy as np

        def noam_lr(step, d_model, warmup_steps, factor=1.0):
            step = np.float64(max(step, 1))
            return factor * np.float64(d_model) ** -0.5 * np.minimum(step ** -0.5, step * warmup_steps ** -1.5)
    """)
    e = by_name(grade(write_notebook(tmp_path / "09_np.ipynb", {"noam_lr": code})))["noam_lr"]
    assert e.status == "passed", e.message


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_processes_started_by_learner_code_are_killed(tmp_path, shared_folder):
    pids = shared_folder / "pids"
    code = textwrap.dedent(f"""
        import subprocess
        PIDS = {str(pids)!r}

        def causal_mask(T):
            p = subprocess.Popen(["sleep", "300"])
            with open(PIDS, "a") as f:
                f.write(f"{{p.pid}}\\n")
            i = torch.arange(T)
            return i[None, :] > i[:, None]
    """)
    e = by_name(grade(write_notebook(tmp_path / "06_spawn.ipynb", {"causal_mask": code})))["causal_mask"]
    assert e.status == "passed", e.message
    started = [int(x) for x in pids.read_text().split()]
    assert started
    time.sleep(0.5)
    assert not [p for p in started if _alive(p)], "a process the learner started outlived grading"


@pytest.mark.parametrize("how", ["idiomatic", "tamper"])
def test_the_model_given_to_greedy_decode_can_be_used_but_not_reconfigured(tmp_path, how):
    """The scripted model stays in the grader; learner code may call encode/decode, not reshape it."""
    base = impl_source(correct_impls("greedy_decode")[0].impl, "greedy_decode")
    if how == "idiomatic":
        wrapper = (
            "def greedy_decode(model, src, max_len, bos_id, eos_id, pad_id):\n"
            "    model.eval()\n    params = list(model.parameters())\n"
            "    device = params[0].device if params else src.device\n"
            "    return _inner(model, src.to(device), max_len, bos_id, eos_id, pad_id)\n"
        )
    else:
        wrapper = (
            "def greedy_decode(model, src, max_len, bos_id, eos_id, pad_id):\n"
            "    for p in model.parameters():\n        pass\n"
            "    model.load_state_dict({})\n"
            "    return _inner(model, src, max_len, bos_id, eos_id, pad_id)\n"
        )
    code = base.replace("\ngreedy_decode = ", "\n_inner = ") + "\n\n" + wrapper
    e = by_name(grade(write_notebook(tmp_path / "09_greedy.ipynb", {"greedy_decode": code})))["greedy_decode"]
    if how == "idiomatic":
        assert e.status == "passed", e.message
    else:
        assert e.status == "failed" and "load_state_dict() may not be called" in e.message, e.message


# ----------------------------------------------------------------------------- the channel


def test_nothing_from_the_learner_is_ever_unpickled(tmp_path, monkeypatch):
    """Grading works with every unpickler disabled, and an object built to run code on unpickling is
    reported by its type name only."""
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("the grader unpickled something")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    marker = tmp_path / "unpickled"
    code = textwrap.dedent(f"""
        import os

        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))

        def causal_mask(T):
            return Payload()
    """)
    ok = impl_source(correct_impls("padding_mask")[0].impl, "padding_mask")
    r = by_name(
        grade(write_notebook(tmp_path / "06_pickle.ipynb", {"causal_mask": code, "padding_mask": ok}))
    )
    assert r["causal_mask"].status == "failed" and "Payload" in r["causal_mask"].message
    assert r["padding_mask"].status == "passed"
    assert not marker.exists()


def test_garbage_on_the_channel_costs_only_that_exercise(tmp_path):
    """Learner code writing a forged frame to every descriptor it has: that exercise fails, the next passes."""
    code = textwrap.dedent("""
        import os
        import pickle

        def causal_mask(T):
            junk = pickle.dumps({"op": "result", "payload": True})
            for fd in range(3, 64):
                try:
                    os.write(fd, junk)
                except OSError:
                    pass
            i = torch.arange(T)
            return i[None, :] > i[:, None]
    """)
    ok = impl_source(correct_impls("padding_mask")[0].impl, "padding_mask")
    r = by_name(grade(write_notebook(tmp_path / "06_junk.ipynb", {"causal_mask": code, "padding_mask": ok})))
    assert r["causal_mask"].status == "failed" and "grading channel" in r["causal_mask"].reason
    assert r["padding_mask"].status == "passed", r["padding_mask"].message


def test_a_docstring_naming_the_course_package_is_not_refused(tmp_path):
    code = textwrap.dedent('''
        def causal_mask(T):
            """My own version of tfmcourse.masks.causal_mask."""
            i = torch.arange(T)
            return i[None, :] > i[:, None]
    ''')
    r = by_name(grade(write_notebook(tmp_path / "06_doc.ipynb", {"causal_mask": code})))
    assert r["causal_mask"].status == "passed", r["causal_mask"].message


@pytest.mark.parametrize(
    "name,code,op",
    [
        (
            "layer_norm",
            "def layer_norm(x, gamma, beta, eps=1e-5):\n"
            "    return torch.ops.aten.layer_norm(x, [x.shape[-1]], gamma, beta, eps)\n",
            "aten.native_layer_norm",
        ),
        (
            "layer_norm",
            "def layer_norm(x, gamma, beta, eps=1e-5):\n"
            "    functions = getattr(torch._C, '_Variable' + 'Functions')\n"
            "    return functions.layer_norm(x, [x.shape[-1]], gamma, beta, eps)\n",
            "aten.native_layer_norm",
        ),
        (
            "batch_norm",
            "def batch_norm(x, gamma, beta, eps=1e-5):\n"
            "    flat = x.reshape(-1, x.shape[-1])\n"
            "    out = torch.ops.aten.batch_norm(flat, gamma, beta, None, None, True, 0.0, eps, False)\n"
            "    return out.reshape(x.shape)\n",
            "aten.",
        ),
        (
            "scaled_dot_product_attention",
            "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
            "    keep = None if attn_mask is None else ~attn_mask\n"
            "    out = torch.ops.aten.scaled_dot_product_attention(q, k, v, keep)\n"
            "    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5\n"
            "    if attn_mask is not None:\n"
            "        s = s.masked_fill(attn_mask, float('-inf'))\n"
            "    return out, torch.softmax(s, -1).nan_to_num(0.0)\n",
            "aten._s",
        ),
        (
            "attend_with_cache",
            "def attend_with_cache(q, k_new, v_new, cache=None):\n"
            "    K = k_new if cache is None else torch.cat([cache[0], k_new], dim=2)\n"
            "    V = v_new if cache is None else torch.cat([cache[1], v_new], dim=2)\n"
            "    return torch.ops.aten.scaled_dot_product_attention(q, K, V), (K, V)\n",
            "aten._s",
        ),
        (
            "online_softmax_attention",
            "def online_softmax_attention(q, k, v, block_size):\n"
            "    return torch.ops.aten.scaled_dot_product_attention(q, k, v)\n",
            "aten._s",
        ),
    ],
    ids=[
        "aten-layer_norm",
        "variable-functions",
        "aten-batch_norm",
        "aten-sdpa",
        "aten-cached",
        "aten-online",
    ],
)
def test_the_forbidden_builtin_is_caught_by_the_operator_that_ran(tmp_path, name, code, op):
    """Reaching the built-in by a name the source check and the traps do not know still scores zero."""
    lesson = EXERCISES[name].lesson
    e = by_name(grade(write_notebook(tmp_path / nb_name(lesson, "ops"), {name: code})))[name]
    assert e.status == "failed" and e.points == 0, (e.status, e.message)
    assert op in e.reason and "yourself" in e.reason, e.reason


def test_the_grader_process_is_out_of_reach_of_learner_code(tmp_path):
    """Learner code finds the grader's pid (its grandparent) but cannot open its descriptors or memory."""
    code = textwrap.dedent("""
        import os

        def causal_mask(T):
            zygote = os.getppid()
            with open(f"/proc/{zygote}/stat") as f:
                grader = int(f.read().rsplit(")", 1)[1].split()[1])
            outcome = []
            for what in (f"/proc/{grader}/fd", f"/proc/{grader}/environ"):
                try:
                    os.listdir(what) if what.endswith("fd") else open(what).read()
                    outcome.append("open")
                except PermissionError:
                    outcome.append("denied")
            raise RuntimeError("grader-access:" + ",".join(outcome))
    """)
    e = by_name(grade(write_notebook(tmp_path / "06_proc.ipynb", {"causal_mask": code})))["causal_mask"]
    assert "grader-access:denied,denied" in e.message, e.message


def test_memory_is_limited_per_exercise_across_all_its_processes(tmp_path):
    """Three forked children, each within the per-process limit, together over it: killed, named."""
    code = textwrap.dedent("""
        import os
        import time

        def causal_mask(T):
            for _ in range(3):
                if os.fork() == 0:
                    hog = torch.ones(100 * 2**20)  # 400 MB, touched
                    time.sleep(60)
                    os._exit(0)
            time.sleep(60)
    """)
    ok = impl_source(correct_impls("padding_mask")[0].impl, "padding_mask")
    path = write_notebook(tmp_path / "06_forks.ipynb", {"causal_mask": code, "padding_mask": ok})
    r = by_name(grade(path, timeout=30, memory=1200))
    assert r["causal_mask"].status == "failed", r["causal_mask"].reason
    assert "memory limit exceeded: its processes together used" in r["causal_mask"].reason
    assert r["padding_mask"].status == "passed", r["padding_mask"].message


def test_processes_that_leave_the_session_or_are_orphaned_are_killed(tmp_path, shared_folder):
    """A daemon (fork, setsid, fork again, parent exits) does not outlive its exercise."""
    pids = shared_folder / "pids"
    code = textwrap.dedent(f"""
        import os
        import time

        def causal_mask(T):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    with open({str(pids)!r}, "a") as f:
                        f.write(f"{{os.getpid()}}\\n")
                    time.sleep(300)
                os._exit(0)
            os.wait()
            time.sleep(0.5)
            i = torch.arange(T)
            return i[None, :] > i[:, None]
    """)
    e = by_name(grade(write_notebook(tmp_path / "06_daemon.ipynb", {"causal_mask": code})))["causal_mask"]
    assert e.status == "passed", e.message
    started = [int(x) for x in pids.read_text().split()]
    assert started
    time.sleep(0.5)
    assert not [p for p in started if _alive(p)], "a daemon started by learner code outlived grading"


def test_a_layer_class_that_is_not_an_nn_module_is_named_out_of_process(tmp_path):
    code = textwrap.dedent("""
        class FeedForward:
            def __init__(self, d_model, d_ff, dropout=0.1):
                self.d_model = d_model

            def __call__(self, x):
                return x
    """)
    report = grade(write_notebook(tmp_path / "08_not_a_module.ipynb", {"FeedForward": code}))
    e = by_name(report)["FeedForward"]
    assert e.status == "failed" and "should build an nn.Module" in e.message, e.message


RUNTIME_BUILTINS = {
    "rms_norm": (
        "def rms_norm(x, weight, eps=1e-6):\n"
        "    return getattr(F, 'rms_' + 'norm')(x, x.shape[-1:], weight, eps)\n",
        "torch.nn.functional.rms_norm",
    ),
    "attend_with_cache": (
        "def attend_with_cache(q, k_new, v_new, cache=None):\n"
        "    K = k_new if cache is None else torch.cat([cache[0], k_new], dim=2)\n"
        "    V = v_new if cache is None else torch.cat([cache[1], v_new], dim=2)\n"
        "    return getattr(F, 'scaled_dot_' + 'product_attention')(q, K, V), (K, V)\n",
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "online_softmax_attention": (
        "def online_softmax_attention(q, k, v, block_size):\n"
        "    return getattr(F, 'scaled_dot_' + 'product_attention')(q, k, v)\n",
        "torch.nn.functional.scaled_dot_product_attention",
    ),
}


@pytest.mark.parametrize("how", ["static", "runtime"])
@pytest.mark.parametrize("name", sorted(RUNTIME_BUILTINS))
def test_the_torch_builtins_of_lessons_10_and_11_are_rejected(tmp_path, name, how):
    code, qualname = RUNTIME_BUILTINS[name]
    if how == "static":
        code = re.sub(r"getattr\(F, '(\w+)' \+ '(\w+)'\)", r"F.\1\2", code)
    code = "import torch.nn.functional as F\n" + code
    lesson = EXERCISES[name].lesson
    e = by_name(grade(write_notebook(tmp_path / nb_name(lesson, how), {name: code})))[name]
    assert e.status == "failed" and e.points == 0, (e.status, e.message)
    assert qualname in e.reason, e.reason


def test_train_step_gets_one_model_optimizer_and_scheduler_across_the_checks_calls(tmp_path):
    """The worker keeps the rebuilt model, optimizer and scheduler between the check's calls (the
    momentum and the warm-up carry over) and the parameters come back to the check after each."""
    code = textwrap.dedent("""
        import torch.nn.functional as F

        SEEN = []

        def train_step(model, optimizer, scheduler, tokens, pad_id, max_grad_norm=1.0):
            bound = [id(p) for p in model.parameters()] == [id(p) for p in optimizer.param_groups[0]["params"]]
            SEEN.append((id(model), id(optimizer), id(scheduler), id(scheduler.optimizer), bound))
            if not bound or len(set(SEEN)) != 1:
                raise RuntimeError(f"not the same objects: {SEEN}")
            logits = model(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), ignore_index=pad_id)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            return loss.item()
    """)
    e = by_name(grade(write_notebook(tmp_path / "10_kept.ipynb", {"train_step": code})))["train_step"]
    assert e.status == "passed", e.message


def test_online_softmax_attention_that_forms_the_whole_score_matrix_is_caught_out_of_process(tmp_path):
    code = textwrap.dedent("""
        import math

        def online_softmax_attention(q, k, v, block_size):
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            return torch.softmax(scores, dim=-1) @ v
    """)
    e = by_name(grade(write_notebook(tmp_path / "11_full.ipynb", {"online_softmax_attention": code})))
    e = e["online_softmax_attention"]
    assert e.status == "failed" and "score matrix was formed" in e.message, e.message


def test_a_korean_notebook_is_graded_with_korean_messages(tmp_path):
    """The learner's edition decides the language of the report (ko/exercises has the setup line)."""
    source = ROOT / "ko" / "exercises" / "06_scaled_dot_product_attention.ipynb"
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    report = grade(path)
    messages = " ".join(e.message for e in report.exercises)
    assert {e.status for e in report.exercises} == {"not attempted"}
    assert re.search("[\uac00-\ud7a3]", messages), messages
    english = grade(ROOT / "exercises" / source.name)
    assert not re.search("[\uac00-\ud7a3]", " ".join(e.message for e in english.exercises))
