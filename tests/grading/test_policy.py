"""What learner code may use in secure grading, decided on the source before anything runs."""

from __future__ import annotations

import textwrap

import pytest

from tfmcourse.checks import EXERCISES
from tfmcourse.grading.secure import extract, policy


def violations(name: str, code: str) -> list[str]:
    ex = extract.extract([textwrap.dedent(code)])
    return policy.static_violations(ex, name, extract.closure(ex, name))


def test_forbidden_table_names_real_torch_objects():
    assert policy.FORBIDDEN
    for name, entries in policy.FORBIDDEN.items():
        assert name in EXERCISES, name
        for f in entries:
            assert policy.resolve(f.qualname) is not None, f"{name}: {f.qualname} does not exist in torch"


@pytest.mark.parametrize(
    "code",
    [
        "import torch.nn.functional as F\ndef layer_norm(x, g, b, eps=1e-5):\n    return F.layer_norm(x, x.shape[-1:], g, b, eps)\n",
        "from torch.nn import functional\ndef layer_norm(x, g, b, eps=1e-5):\n    return functional.layer_norm(x, x.shape[-1:], g, b, eps)\n",
        "import torch\ndef layer_norm(x, g, b, eps=1e-5):\n    return torch.layer_norm(x, x.shape[-1:], g, b, eps)\n",
    ],
    ids=["alias", "from-import", "torch-namespace"],
)
def test_the_forbidden_builtin_is_found_under_any_alias(code):
    (problem,) = violations("layer_norm", code)
    assert "layer_norm" in problem and "yourself" in problem


def test_a_forbidden_keyword_is_refused_only_when_it_is_used():
    ok = "import torch.nn.functional as F\ndef label_smoothed_loss(logits, target, smoothing, ignore_index):\n    return F.cross_entropy(logits, target, ignore_index=ignore_index)\n"
    bad = ok.replace("ignore_index=ignore_index)", "ignore_index=ignore_index, label_smoothing=smoothing)")
    assert violations("label_smoothed_loss", ok) == []
    (problem,) = violations("label_smoothed_loss", bad)
    assert "label_smoothing" in problem


def test_the_course_reference_is_refused_but_a_docstring_naming_it_is_not():
    named = '''
        import torch
        def causal_mask(T):
            """Like tfmcourse.masks.causal_mask, written by hand."""
            i = torch.arange(T)
            return i[None, :] > i[:, None]
    '''
    assert violations("causal_mask", named) == []
    used = "from tfmcourse import masks\ndef causal_mask(T):\n    return masks.causal_mask(T)\n"
    (problem,) = violations("causal_mask", used)
    assert "tfmcourse.masks.causal_mask" in problem and "reference" in problem


def test_earlier_lessons_references_are_allowed_and_later_ones_pruned():
    allowed, banned = policy.course_policy("EncoderLayer")
    assert "tfmcourse.attention.MultiHeadAttention" in allowed
    assert "tfmcourse.transformer.EncoderLayer" in banned and "tfmcourse.transformer.FeedForward" in banned
    code = "from tfmcourse.attention import MultiHeadAttention\nclass EncoderLayer(MultiHeadAttention):\n    pass\n"
    ex = extract.extract([code])
    units = extract.closure(ex, "EncoderLayer")
    assert policy.static_violations(ex, "EncoderLayer", units) == []
    assert policy.course_bindings(ex, "EncoderLayer", units) == {
        "MultiHeadAttention": "tfmcourse.attention.MultiHeadAttention"
    }


def test_forbidden_operators_exist_in_torch():
    import torch

    assert set(policy.FORBIDDEN_OPS) <= set(policy.FORBIDDEN)
    for name, (ops, why) in policy.FORBIDDEN_OPS.items():
        assert why and ops
        for op in ops:
            namespace, _, attr = op.partition(".")
            assert namespace == "aten" and hasattr(torch.ops.aten, attr), f"{name}: {op} is not an operator"


@pytest.mark.parametrize(
    "name,code,qualname",
    [
        (
            "rms_norm",
            "import torch\ndef rms_norm(x, weight, eps=1e-6):\n    return torch.rms_norm(x, x.shape[-1:], weight, eps)\n",
            "rms_norm",
        ),
        (
            "rms_norm",
            "from torch import nn\ndef rms_norm(x, weight, eps=1e-6):\n    return nn.RMSNorm(x.shape[-1], eps)(x) * weight\n",
            "RMSNorm",
        ),
        (
            "online_softmax_attention",
            "from torch.nn import functional\ndef online_softmax_attention(q, k, v, block_size):\n"
            "    return functional.scaled_dot_product_attention(q, k, v)\n",
            "scaled_dot_product_attention",
        ),
        (
            "attend_with_cache",
            "import torch\ndef attend_with_cache(q, k_new, v_new, cache=None):\n"
            "    return torch.nn.MultiheadAttention(4, 1)(q, k_new, v_new), cache\n",
            "MultiheadAttention",
        ),
    ],
    ids=["torch-rms_norm", "nn-RMSNorm", "functional-sdpa", "nn-MultiheadAttention"],
)
def test_the_builtins_of_lessons_10_and_11_are_found_on_the_source(name, code, qualname):
    (problem,) = violations(name, code)
    assert qualname in problem and "yourself" in problem
