"""What learner code may use in secure grading, decided before anything runs.

Two rules. The course's reference code: an exercise may use the reference
implementations of exercises from *earlier* lessons (lesson 8's
``EncoderLayer`` may build on ``tfmcourse.attention.MultiHeadAttention``),
never its own lesson's or a later one's (:func:`course_policy`). The torch
built-in an exercise asks the learner to write: the table :data:`FORBIDDEN`,
checked here on the source (:func:`static_violations`) and enforced again at
run time by the worker's traps.
"""

from __future__ import annotations

import ast
import pkgutil
from dataclasses import dataclass
from typing import Any

from tfmcourse.grading.secure.extract import Extracted, Unit, is_course


@dataclass(frozen=True)
class Forbidden:
    """A torch built-in an exercise asks the learner to write themselves.

    With ``kwarg`` (and its positional index ``pos``), only calls that pass a
    non-zero value for it are forbidden, e.g. ``F.cross_entropy(label_smoothing=0.1)``.
    """

    qualname: str
    why: str
    kwarg: str | None = None
    pos: int | None = None

    def wire(self) -> dict:
        return {"qualname": self.qualname, "why": self.why, "kwarg": self.kwarg, "pos": self.pos}


def _ban(why: str, *qualnames: str) -> tuple[Forbidden, ...]:
    return tuple(Forbidden(q, why) for q in qualnames)


_ATTN = ("torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward")
_TRANSFORMER = (
    "torch.nn.Transformer",
    "torch.nn.TransformerEncoder",
    "torch.nn.TransformerDecoder",
    "torch.nn.TransformerEncoderLayer",
    "torch.nn.TransformerDecoderLayer",
)

#: The one table of built-ins each exercise must not use (the exercise *is* writing them).
FORBIDDEN: dict[str, tuple[Forbidden, ...]] = {
    "rnn_cell": _ban(
        "the exercise is to write the RNN step yourself",
        "torch.nn.RNNCell",
        "torch.nn.RNN",
        "torch.rnn_tanh_cell",
        "torch.rnn_tanh",
    ),
    "batch_norm": _ban(
        "the exercise is to compute batch normalisation yourself",
        "torch.nn.functional.batch_norm",
        "torch.batch_norm",
        "torch.native_batch_norm",
        "torch.nn.BatchNorm1d",
        "torch.nn.BatchNorm2d",
        "torch.nn.BatchNorm3d",
    ),
    "layer_norm": _ban(
        "the exercise is to compute layer normalisation yourself",
        "torch.nn.functional.layer_norm",
        "torch.layer_norm",
        "torch.native_layer_norm",
        "torch.nn.LayerNorm",
        "torch.nn.functional.group_norm",
        "torch.nn.GroupNorm",
    ),
    "causal_mask": _ban(
        "the exercise is to build the mask yourself", "torch.nn.Transformer.generate_square_subsequent_mask"
    ),
    "scaled_dot_product_attention": _ban(
        "the exercise is to write attention yourself",
        "torch.nn.functional.scaled_dot_product_attention",
        *_ATTN,
    ),
    "MultiHeadAttention": _ban("the exercise is to write multi-head attention yourself", *_ATTN),
    "FeedForward": _ban("the exercise is to write the layer yourself", *_TRANSFORMER),
    "EncoderLayer": _ban("the exercise is to write the encoder layer yourself", *_TRANSFORMER, *_ATTN),
    "DecoderLayer": _ban("the exercise is to write the decoder layer yourself", *_TRANSFORMER, *_ATTN),
    "label_smoothed_loss": (
        Forbidden(
            "torch.nn.functional.cross_entropy",
            "the exercise is to write label smoothing yourself",
            kwarg="label_smoothing",
            pos=7,
        ),
        Forbidden(
            "torch.nn.CrossEntropyLoss",
            "the exercise is to write label smoothing yourself",
            kwarg="label_smoothing",
            pos=5,
        ),
    ),
    "greedy_decode": (),
    "rms_norm": _ban(
        "the exercise is to compute RMS normalisation yourself",
        "torch.nn.functional.rms_norm",
        "torch.rms_norm",
        "torch.nn.RMSNorm",
    ),
    "attend_with_cache": _ban(
        "the exercise is to write cached attention yourself",
        "torch.nn.functional.scaled_dot_product_attention",
        *_ATTN,
    ),
    "online_softmax_attention": _ban(
        "the exercise is to write block-wise attention yourself",
        "torch.nn.functional.scaled_dot_product_attention",
        *_ATTN,
    ),
}


_NORM = "the exercise is to compute {} normalisation yourself"
#: What scaled dot-product attention and multi-head attention's fast path run as.
_SDPA_OPS = (
    "aten._scaled_dot_product_flash_attention_for_cpu",
    "aten._scaled_dot_product_attention_math",
    "aten._safe_softmax",
    "aten._native_multi_head_attention",
)

#: The same bans, by the operators that actually run (recorded at torch's dispatcher in the worker),
#: so no alias (``torch.ops.aten``, ``torch._C._VariableFunctions``, a kept reference) reaches them.
FORBIDDEN_OPS: dict[str, tuple[tuple[str, ...], str]] = {
    "rnn_cell": (("aten.rnn_tanh_cell", "aten.rnn_tanh"), "the exercise is to write the RNN step yourself"),
    "batch_norm": (
        (
            "aten.native_batch_norm",
            "aten._native_batch_norm_legit",
            "aten._native_batch_norm_legit_no_training",
            "aten._batch_norm_with_update",
            "aten._batch_norm_no_update",
        ),
        _NORM.format("batch"),
    ),
    "layer_norm": (("aten.native_layer_norm", "aten.native_group_norm"), _NORM.format("layer")),
    "scaled_dot_product_attention": (_SDPA_OPS, "the exercise is to write attention yourself"),
    "attend_with_cache": (_SDPA_OPS, "the exercise is to write cached attention yourself"),
    "online_softmax_attention": (_SDPA_OPS, "the exercise is to write block-wise attention yourself"),
}
# RMS normalisation has no operator of its own to record: torch runs it as plain arithmetic
# (pow, mean, rsqrt, mul), so only its Python names are refused.


def forbidden_for(name: str) -> tuple[Forbidden, ...]:
    return FORBIDDEN.get(name, ())


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def resolve(path: str) -> Any:
    """The torch object a dotted name stands for, or None (only ``torch`` names are looked up)."""
    if path != "torch" and not path.startswith("torch."):
        return None
    try:
        return pkgutil.resolve_name(path)
    except Exception:
        return None


def _nonzero_literal(node: ast.expr) -> bool:
    try:
        return ast.literal_eval(node) not in (None, 0, 0.0, False)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return True


def course_policy(name: str) -> tuple[set[str], list[str]]:
    """What of ``tfmcourse`` exercise ``name`` may use: the reference implementations of
    exercises from *earlier* lessons (e.g. ``tfmcourse.attention.MultiHeadAttention``
    inside lesson 8's ``EncoderLayer``). Returns (allowed dotted paths, banned dotted
    paths: the references of this lesson and of later ones)."""
    from tfmcourse.checks import EXERCISES

    lesson = EXERCISES[name].lesson if name in EXERCISES else 0
    allowed, banned = set(), []
    for e in EXERCISES.values():
        if e.reference:
            (allowed.add if e.lesson < lesson else banned.append)(e.reference.replace(":", "."))
    return allowed, banned


def _course_chains(ex: Extracted, units: list[Unit]) -> list[tuple[str, str]]:
    """(root name, full dotted path) of every maximal name/attribute chain rooted at a tfmcourse import."""
    defined = set(ex.defs)
    out = []
    for unit in units:
        inner = set()
        for node in ast.walk(unit.node):
            if isinstance(node, ast.Attribute):
                inner.add(id(node.value))
        for node in ast.walk(unit.node):
            if id(node) in inner or not isinstance(node, (ast.Name, ast.Attribute)):
                continue
            parts = _dotted(node)
            if parts and parts[0] in ex.course_names and parts[0] not in defined:
                out.append((parts[0], ".".join([ex.course_names[parts[0]]] + parts[1:])))
    return out


def course_bindings(ex: Extracted, name: str, units: list[Unit]) -> dict[str, str]:
    """The tfmcourse names the exercise may use (earlier lessons' references) -> their dotted path."""
    allowed, _ = course_policy(name)
    return {
        root: ex.course_names[root]
        for root, path in _course_chains(ex, units)
        if any(path == a or path.startswith(a + ".") for a in allowed)
    }


def static_violations(ex: Extracted, name: str, units: list[Unit]) -> list[str]:
    """Why ``name`` is rejected before running: use of the course's code or of a forbidden built-in."""
    problems: list[str] = []
    defined = set(ex.defs)
    banned = [(f, resolve(f.qualname)) for f in forbidden_for(name)]
    last_names = {f.qualname.rsplit(".", 1)[-1] for f, _ in banned}  # resolve only plausible paths
    allowed, _ = course_policy(name)

    def refers_to(expr: ast.AST) -> list:
        """The forbidden built-ins a name or attribute chain of the learner's code refers to."""
        parts = _dotted(expr)
        if not parts or parts[0] not in ex.aliases or parts[0] in defined or parts[-1] not in last_names:
            return []
        path = ".".join([ex.aliases[parts[0]]] + parts[1:])
        obj = resolve(path)
        return [f for f, target in banned if path == f.qualname or (target is not None and obj is target)]

    for _root, path in _course_chains(ex, units):
        if not any(path == a or path.startswith(a + ".") for a in allowed):
            problems.append(
                f"uses {path} from the course package tfmcourse (the reference implementation); "
                "write it yourself"
            )
    for unit in units:
        for node in ast.walk(unit.node):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(is_course(m) for m in mods):
                    problems.append("imports the course package tfmcourse inside its code (not allowed)")
            elif isinstance(node, (ast.Attribute, ast.Name)) and banned:
                problems += [f"uses {f.qualname}: {f.why}" for f in refers_to(node) if f.kwarg is None]
            if isinstance(node, ast.Call) and banned:
                for f in refers_to(node.func):
                    if f.kwarg is None:
                        continue
                    kw = [k for k in node.keywords if k.arg == f.kwarg]
                    if (kw and _nonzero_literal(kw[0].value)) or (
                        f.pos is not None and len(node.args) > f.pos
                    ):
                        problems.append(f"uses {f.qualname}({f.kwarg}=...): {f.why}")
    return list(dict.fromkeys(problems))
