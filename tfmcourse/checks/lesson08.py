"""Checks for lesson 08: ``FeedForward``, ``EncoderLayer``, ``DecoderLayer``.

The learner's class is instantiated through ``call``, its weights are loaded
by the submodule names the exercise asks for (``self_attn.q_proj.weight``, ``ff.linear1.bias``,
``norm2.weight``, …), it is put in eval mode, and its output is compared with
the reference layer and with ``nn.TransformerEncoderLayer``/``DecoderLayer``
holding the same weights: both ``norm_first`` settings, padding and causal
masks, source length ``S`` ≠ target length ``T``.

Known mistakes are re-computed with the reference layer's own sub-modules:
each mistake function takes ``(ref, *inputs)`` where ``ref`` is the reference
layer holding the weights the learner's layer was given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tfmcourse import torch_interop, transformer
from tfmcourse.checks._core import (
    MASK_SENSE,
    TINY,
    CheckFailed,
    assert_close,
    call,
    count_parameters,
    exercise,
    expect_tensor,
    generator,
    item_locator,
    load_weights,
    mistake,
    passed,
    randn,
    require,
    set_mode,
)
from tfmcourse.checks._i18n import N_, tr
from tfmcourse.checks.lesson07 import _mha_variant

B, T, S = TINY["B"], TINY["T"], TINY["S"]
D, H, DFF = TINY["d_model"], TINY["n_heads"], TINY["d_ff"]


# ---------------------------------------------------------------- weights and inputs


def _linear(g, out_f, in_f, prefix):
    return {
        f"{prefix}.weight": randn(out_f, in_f, g=g, scale=in_f**-0.5),
        f"{prefix}.bias": randn(out_f, g=g, scale=0.1, shift=0.05),
    }


def _norm(g, prefix):
    # gains away from 1 and non-zero biases, so that swapped or missing norms show
    return {
        f"{prefix}.weight": randn(D, g=g, scale=0.3, shift=1.0),
        f"{prefix}.bias": randn(D, g=g, scale=0.2),
    }


def _ff_weights(g, prefix="ff"):
    return {**_linear(g, DFF, D, f"{prefix}.linear1"), **_linear(g, D, DFF, f"{prefix}.linear2")}


def _attn_weights(g, prefix):
    w = {}
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        w.update(_linear(g, D, D, f"{prefix}.{proj}"))
    return w


def _layer_weights(g, decoder: bool) -> dict[str, Tensor]:
    w = _attn_weights(g, "self_attn")
    if decoder:
        w.update(_attn_weights(g, "cross_attn"))
    w.update(_ff_weights(g))
    for i in range(1, 4 if decoder else 3):
        w.update(_norm(g, f"norm{i}"))
    return w


def _pad_mask(g, n, length):
    """(n, length) True at pads; sample 0 padded (at least 2 pads), the last sample not; position 0 real."""
    mask = torch.zeros(n, length, dtype=torch.bool)
    real = int(torch.randint(2, length - 1, (1,), generator=g))
    mask[0, real:] = True
    return mask


def _reference(cls, weights, norm_first):
    ref = cls(D, H, DFF, dropout=0.0, norm_first=norm_first)
    ref.load_state_dict(weights)
    return ref.eval()


def _deterministic(name, fn):
    """Run the learner's forward twice: in eval mode it must not be random (dropout off)."""
    first = fn()
    second = fn()
    if isinstance(first, Tensor) and isinstance(second, Tensor) and first.shape == second.shape:
        require(
            bool(((first == second) | (first.isnan() & second.isnan())).all()),  # NaN is judged later
            name,
            "two calls on the same input in eval mode gave different outputs: dropout must be off in "
            "eval mode (use nn.Dropout modules, or F.dropout(x, p, training=self.training))",
        )
    return first


def _expected_count(kind: str) -> int:
    lin = lambda i, o: i * o + o  # noqa: E731
    ff = lin(D, DFF) + lin(DFF, D)
    attn = 4 * lin(D, D)
    return {"ff": ff, "enc": attn + ff + 2 * 2 * D, "dec": 2 * attn + ff + 3 * 2 * D}[kind]


# ---------------------------------------------------------------- known mistakes: FeedForward


@mistake(
    "FeedForward",
    "there is no ReLU between the two linear layers: without it the block is one "
    "linear map. Compute linear2(relu(linear1(x))).",
)
def _ff_no_relu(ref, x):
    return ref.linear2(ref.linear1(x))


@mistake(
    "FeedForward",
    "the ReLU is applied after linear2 instead of between the layers: "
    "it must be linear2(relu(linear1(x))), with no activation on the output.",
)
def _ff_relu_after(ref, x):
    return torch.relu(ref.linear2(ref.linear1(x)))


@mistake(
    "FeedForward",
    "a ReLU is applied after linear2 as well: the output of the block has no "
    "activation (it is added to the residual stream, which must be able to go negative).",
)
def _ff_relu_twice(ref, x):
    return torch.relu(ref.linear2(torch.relu(ref.linear1(x))))


_GELU = (
    "GELU is not wrong in itself (BERT and GPT use it) but it is another convention: this exercise "
    "asks for the 2017 paper's ReLU, nn.TransformerEncoderLayer's default, "
    "linear2(relu(linear1(x)))."
)


@mistake("FeedForward", "GELU is used instead of ReLU (the exact, erf form). " + _GELU)
def _ff_gelu(ref, x):
    return ref.linear2(F.gelu(ref.linear1(x)))


@mistake(
    "FeedForward",
    "GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), is used instead of ReLU. "
    + _GELU,
)
def _ff_gelu_tanh(ref, x):
    return ref.linear2(F.gelu(ref.linear1(x), approximate="tanh"))


@mistake(
    "FeedForward",
    "the input is added to the output: the residual connection belongs to the "
    "encoder/decoder layer, not inside FeedForward.",
)
def _ff_residual_inside(ref, x):
    return x + ref.linear2(torch.relu(ref.linear1(x)))


# ---------------------------------------------------------------- known mistakes: EncoderLayer


def _attend(attn, query, key, value, attn_mask=None, key_padding_mask=None, fill="-inf", pad_queries=False):
    """``attn(query, key, value, …)``, or the same attention with blocked scores filled another
    way (``fill``: "finite", "nan" or "product", the mistakes of lesson 07)."""
    if fill == "-inf" and not pad_queries:
        return attn(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask)
    params = {k: v.detach() for k, v in attn.state_dict().items()}
    params["n_heads"] = attn.n_heads
    out, _ = _mha_variant(
        params, query, key, value, attn_mask, key_padding_mask, fill=fill, pad_queries=pad_queries
    )
    return out


def _enc(
    ref,
    x,
    pad,
    *,
    norm_first=None,
    sa_res=True,
    ff_res=True,
    pad_used=True,
    pad_inverted=False,
    norms=("norm1", "norm2"),
    post_inside=False,
    pre_res_normed=False,
    fill="-inf",
):
    """An encoder layer with switches for the mistakes (the correct one with all defaults)."""
    nf = ref.norm_first if norm_first is None else norm_first
    n1, n2 = getattr(ref, norms[0]), getattr(ref, norms[1])
    mask = (~pad if pad_inverted else pad) if (pad_used and pad is not None) else None
    sa = lambda h: _attend(ref.self_attn, h, h, h, key_padding_mask=mask, fill=fill)  # noqa: E731
    if nf:
        h = n1(x)
        x = (h if pre_res_normed else x) * sa_res + sa(h)
        h = n2(x)
        x = (h if pre_res_normed else x) * ff_res + ref.ff(h)
    elif post_inside:
        x = x * sa_res + n1(sa(x))
        x = x * ff_res + n2(ref.ff(x))
    else:
        x = n1(x * sa_res + sa(x))
        x = n2(x * ff_res + ref.ff(x))
    return x


_FILL_MISTAKES = [
    (
        "a fully blocked query gets uniform weights in {where}: blocked scores are filled with a "
        "large negative number (-1e9, or the dtype's minimum) instead of -inf, so a query whose keys "
        "are all pads (an all-pad sequence) averages every value. It must get zero weights and a zero "
        "context: use masked_softmax (or zero the weights of entirely blocked rows).",
        "finite",
    ),
    (
        "a fully blocked query gives NaN in {where}: softmax of a row of -inf is 0/0, and the NaN "
        "spreads through the LayerNorm to the whole token. A query whose keys are all pads must get "
        "zero weights and a zero context (masked_softmax does).",
        "nan",
    ),
    (
        "the masks are applied by multiplying the scores in {where} (scores * ~mask): a blocked score "
        "becomes 0 and exp(0) = 1 > 0, so pads still get weight. Fill blocked scores with -inf.",
        "product",
    ),
]

for _desc, _kw in [
    *[(d.format(where="the self-attention"), dict(fill=f)) for d, f in _FILL_MISTAKES],
    (
        "pre-LN and post-LN are swapped: with norm_first=False (the paper) the layer is "
        "x = norm(x + sublayer(x)); with norm_first=True it is x = x + sublayer(norm(x)). "
        "Pre-LN is not an error in itself (GPT-2 and most recent models use it; it trains without "
        "warm-up), but it is another convention: this exercise asks for both, chosen by norm_first, "
        "with post-LN, the 2017 paper's layout and nn.TransformerEncoderLayer's default, when "
        "norm_first=False. "
        "Check that your forward branches on self.norm_first the right way round.",
        dict(norm_first="swap"),
    ),
    (
        "there is no residual connection around the feed-forward: the second sub-layer must add its input "
        "back (x + ff(…)) before/after the LayerNorm.",
        dict(ff_res=False),
    ),
    (
        "there is no residual connection around the self-attention: add x back to the attention output.",
        dict(sa_res=False),
    ),
    (
        "the padding mask is ignored: pass src_key_padding_mask to self_attn as key_padding_mask, so "
        "that no token attends to pads.",
        dict(pad_used=False),
    ),
    (
        "the padding mask is inverted: True marks the pads (blocked); pass it as it is, not ~mask."
        + MASK_SENSE,
        dict(pad_inverted=True),
    ),
    (
        "norm1 and norm2 are swapped: norm1 goes with the self-attention sub-layer, norm2 with the "
        "feed-forward (the names are loaded from torch's layer).",
        dict(norms=("norm2", "norm1")),
    ),
    (
        "the same LayerNorm (norm1) is used for both sub-layers: each sub-layer has its own, norm1 for "
        "self-attention and norm2 for the feed-forward.",
        dict(norms=("norm1", "norm1")),
    ),
    (
        "the LayerNorm is applied to the sub-layer's output before the residual add (x + norm(f(x))): "
        "post-LN normalises the sum, norm(x + f(x)).",
        dict(post_inside=True),
    ),
    (
        "pre-LN adds the normalised x back: the residual must carry the un-normalised input, "
        "x = x + f(norm(x)), not h + f(h) with h = norm(x).",
        dict(pre_res_normed=True),
    ),
]:

    def _impl(ref, x, pad, _kw=_kw):
        kw = dict(_kw)
        if kw.get("norm_first") == "swap":
            kw["norm_first"] = not ref.norm_first
        return _enc(ref, x, pad, **kw)

    mistake("EncoderLayer", _desc)(_impl)


# ---------------------------------------------------------------- known mistakes: DecoderLayer


def _dec(
    ref,
    y,
    memory,
    tgt_mask,
    tgt_pad,
    mem_pad,
    *,
    norm_first=None,
    ff_res=True,
    sa_res=True,
    causal=True,
    tgt_pad_used=True,
    mem_pad_used=True,
    cross="memory",
    norms=("norm1", "norm2", "norm3"),
    norm_memory=False,
    fill="-inf",
    sa_pad_queries=False,
):
    nf = ref.norm_first if norm_first is None else norm_first
    n1, n2, n3 = (getattr(ref, n) for n in norms)
    am = tgt_mask if causal else None
    tp = tgt_pad if tgt_pad_used else None
    mp = mem_pad if mem_pad_used else None
    sa = lambda h: _attend(  # noqa: E731
        ref.self_attn, h, h, h, attn_mask=am, key_padding_mask=tp, fill=fill, pad_queries=sa_pad_queries
    )

    def ca(h):
        if cross == "self":  # keys/values from the decoder's own states
            return _attend(ref.cross_attn, h, h, h, key_padding_mask=tp, fill=fill)
        if cross == "none":
            return torch.zeros_like(h)
        m = n2(memory) if norm_memory else memory
        return _attend(ref.cross_attn, h, m, m, key_padding_mask=mp, fill=fill)

    x = y
    if nf:
        x = x * sa_res + sa(n1(x))
        x = x + ca(n2(x))
        x = x * ff_res + ref.ff(n3(x))
    else:
        x = n1(x * sa_res + sa(x))
        x = n2(x + ca(x)) if cross != "none" else x
        x = n3(x * ff_res + ref.ff(x))
    return x


for _desc, _kw in [
    *[(d.format(where="the self- or cross-attention"), dict(fill=f)) for d, f in _FILL_MISTAKES],
    (
        "pre-LN and post-LN are swapped: with norm_first=False (the paper) each sub-layer is "
        "x = norm(x + sublayer(x)); with norm_first=True it is x = x + sublayer(norm(x)). "
        "Pre-LN is not an error in itself (GPT-2 and most recent models use it; it trains without "
        "warm-up), but it is another convention: this exercise asks for both, chosen by norm_first, "
        "with post-LN, the 2017 paper's layout and nn.TransformerEncoderLayer's default, when "
        "norm_first=False. "
        "Check that your forward branches on self.norm_first the right way round.",
        dict(norm_first="swap"),
    ),
    (
        "there is no residual connection around the feed-forward: the third sub-layer must add its input "
        "back (x + ff(…)).",
        dict(ff_res=False),
    ),
    (
        "there is no residual connection around the masked self-attention: add y back to its output.",
        dict(sa_res=False),
    ),
    (
        "the cross-attention reads the decoder's own states: its keys and values must come from the "
        "encoder's memory, cross_attn(x, memory, memory, key_padding_mask=memory_key_padding_mask).",
        dict(cross="self"),
    ),
    (
        "the layer never attends to the encoder's memory: every decoder layer has a cross-attention "
        "sub-layer, cross_attn(x, memory, memory, …), between self-attention and feed-forward.",
        dict(cross="none"),
    ),
    (
        "the causal mask is ignored: pass tgt_mask to self_attn as attn_mask, or each position sees the "
        "target tokens after it.",
        dict(causal=False),
    ),
    (
        "two mistakes at once: the causal mask is ignored (pass tgt_mask to self_attn as attn_mask) "
        "*and* the target padding mask is applied to the queries instead of the keys "
        "(tgt_key_padding_mask (B, T) marks keys no position may attend to: (B, 1, 1, T)).",
        dict(causal=False, sa_pad_queries=True),
    ),
    (
        "the target padding mask is applied to the queries instead of the keys: "
        "tgt_key_padding_mask (B, T) marks *keys* that no position may attend to, broadcast as "
        "(B, 1, 1, T), not (B, 1, T, 1).",
        dict(sa_pad_queries=True),
    ),
    (
        "the memory padding mask is ignored: pass memory_key_padding_mask to cross_attn as key_padding_mask, "
        "so that no target position attends to source pads.",
        dict(mem_pad_used=False),
    ),
    (
        "the target padding mask is ignored: pass tgt_key_padding_mask to self_attn as key_padding_mask.",
        dict(tgt_pad_used=False),
    ),
    (
        "the LayerNorms are used in the wrong order: norm1 goes with self-attention, norm2 with "
        "cross-attention, norm3 with the feed-forward.",
        dict(norms=("norm1", "norm3", "norm2")),
    ),
    (
        "the memory is normalised by the decoder's norm2 as well: in pre-LN only the decoder's states "
        "(the queries) go through norm2; keys and values are the encoder's memory as it is.",
        dict(norm_memory=True),
    ),
]:

    def _impl(ref, y, memory, tgt_mask, tgt_pad, mem_pad, _kw=_kw):
        kw = dict(_kw)
        if kw.get("norm_first") == "swap":
            kw["norm_first"] = not ref.norm_first
        return _dec(ref, y, memory, tgt_mask, tgt_pad, mem_pad, **kw)

    mistake("DecoderLayer", _desc)(_impl)


# ---------------------------------------------------------------- checks


def _build(name, cls, weights, count, norm_first=None, what=""):
    args = (D, DFF) if norm_first is None else (D, H, DFF)
    kwargs = dict(dropout=0.1) if norm_first is None else dict(dropout=0.1, norm_first=norm_first)
    layer = call(name, cls, *args, **kwargs)
    if not isinstance(layer, torch.nn.Module):  # in secure grading a learner's module is a RemoteModule
        raise CheckFailed(
            tr(
                "{name}: {name}(...) should build an nn.Module (subclass nn.Module and call super().__init__() first), got {layer_type}",
                name=name,
                layer_type=type(layer).__name__,
            )
        )
    n = count_parameters(layer)
    require(
        n == count,
        name,
        tr(
            "{name}{args} has {n} parameters, expected {count}{what}. Extra layers would stay randomly initialised; missing ones break the contract",
            name=name,
            args=args,
            n=n,
            count=count,
            what=what,
        ),
    )
    load_weights(layer, weights, name)
    set_mode(layer, False)
    return layer


@exercise(
    "FeedForward",
    lesson=8,
    points=1,
    title="Position-wise feed-forward network",
    reference="tfmcourse.transformer:FeedForward",
)
def check_FeedForward(FeedForward, *, seed: int = 0) -> None:
    name = "FeedForward"
    g = generator(seed)
    weights = {k.removeprefix("ff."): v for k, v in _ff_weights(g).items()}
    ff = _build(
        name,
        FeedForward,
        weights,
        _expected_count("ff"),
        what=tr(" (linear1: {D}→{DFF} and linear2: {DFF}→{D}, with biases)", D=D, DFF=DFF),
    )
    ref = transformer.FeedForward(D, DFF).eval()
    ref.load_state_dict(weights)
    # a hand-checkable case: one hidden unit positive, one negative
    small_w = {
        "linear1.weight": torch.eye(2),
        "linear1.bias": torch.zeros(2),
        "linear2.weight": torch.tensor([[1.0, 1.0], [-1.0, 2.0]]),
        "linear2.bias": torch.tensor([0.5, 0.0]),
    }
    small = call(name, FeedForward, 2, 2, dropout=0.0)
    load_weights(small, small_w, name)
    set_mode(small, False)
    small_ref = transformer.FeedForward(2, 2).eval()
    small_ref.load_state_dict(small_w)
    x_small = torch.tensor([[3.0, -2.0]])
    got = call(name, small, x_small, _no_grad=True)
    expect_tensor(name, got, (1, 2), what="output for x=[[3, -2]]", axes="N,d_model")
    with torch.no_grad():
        assert_close(
            name,
            got,
            torch.tensor([[3.5, -3.0]]),
            what="output",
            case="for x=[[3, -2]], linear1 = identity, linear2 = [[1, 1], [-1, 2]] + [0.5, 0] "
            "(relu([3, -2]) = [3, 0], then [3+0+0.5, -3+0+0] = [3.5, -3])",
            mistake_args=(small_ref, x_small),
        )
    for label, x in [
        ("x (2, 5, 24) with non-zero mean", randn(B, T, D, g=g, scale=1.5, shift=0.4)),
        ("x (7, 24) (any leading axes)", randn(S, D, g=g, scale=1.5, shift=-0.3)),
    ]:
        before = x.clone()
        out = _deterministic(name, lambda: call(name, ff, x, _no_grad=True))
        require(torch.equal(x, before), name, "forward modified its input in place")
        expect_tensor(
            name,
            out,
            tuple(x.shape),
            what=tr("output for {label}", label=tr(label)),
            axes="B,T,d_model" if x.dim() == 3 else "N,d_model",
        )
        with torch.no_grad():
            assert_close(name, out, ref(x), case=tr("for {label}", label=tr(label)), mistake_args=(ref, x))
    passed(
        name,
        tr(
            "linear2(relu(linear1(x))) on any leading axes, no dropout in eval mode, {count} parameters",
            count=_expected_count("ff"),
        ),
    )


def _has_blocked_query(tgt_mask, tgt_pad, mem_pad) -> Tensor:
    """(B,) True for samples where some query sees no key, in self- or cross-attention."""
    blocked = torch.zeros(B, T, T, dtype=torch.bool)
    if tgt_mask is not None:
        blocked = blocked | tgt_mask
    if tgt_pad is not None:
        blocked = blocked | tgt_pad[:, None, :]
    out = blocked.all(-1).any(-1)
    if mem_pad is not None:
        out = out | mem_pad.all(-1)
    return out


def _decoder_locator(tgt_pad, mem_pad):
    labels = {}
    for b in range(B):
        parts = []
        if tgt_pad is not None and bool(tgt_pad[b, 0]):
            parts.append("its target starts with pads")
        if mem_pad is not None and bool(mem_pad[b].all()):
            parts.append("its memory is all pads")
        labels[b] = " and ".join(parts)
    return item_locator(labels)


def _ensure_tensor_out(name, out):
    if isinstance(out, (tuple, list)):
        raise CheckFailed(
            tr(
                "{name}: forward should return just the output tensor, got a {out_type} of length {len_out}",
                name=name,
                out_type=type(out).__name__,
                len_out=len(out),
            )
        )
    return out


@exercise(
    "EncoderLayer", lesson=8, points=2, title="Encoder layer", reference="tfmcourse.transformer:EncoderLayer"
)
def check_EncoderLayer(EncoderLayer, *, seed: int = 0) -> None:
    name = "EncoderLayer"
    g = generator(seed)
    x = randn(B, S, D, g=g, scale=1.5, shift=0.3)
    pad = _pad_mask(g, B, S)
    edge_pad = torch.zeros(B, S, dtype=torch.bool)
    edge_pad[0, : int(torch.randint(1, S - 1, (1,), generator=g))] = True  # pads first: position 0 too
    edge_pad[1] = True  # every key of sample 1 is a pad: each of its queries is fully blocked
    for norm_first in (False, True):
        weights = _layer_weights(g, decoder=False)
        layer = _build(
            name,
            EncoderLayer,
            weights,
            _expected_count("enc"),
            norm_first,
            what=" (self_attn: 4 projections with bias, ff, norm1, norm2)",
        )
        ref = _reference(transformer.EncoderLayer, weights, norm_first)
        twin = torch_interop.to_torch(ref).train()  # dropout 0: train mode only avoids torch's fast path
        for label, mask, items in [
            ("with src_key_padding_mask (sample 0 padded)", pad, {}),
            ("without a mask", None, {}),
            (
                "with sample 0 padded at its start and sample 1 all pads",
                edge_pad,
                {1: "the all-pad sequence"},
            ),
        ]:
            case = tr(
                "(norm_first={norm_first}, x (B={B}, S={S}, D={D}) {label})",
                norm_first=norm_first,
                B=B,
                S=S,
                D=D,
                label=tr(label),
            )
            before = x.clone()
            out = _deterministic(name, lambda: call(name, layer, x, src_key_padding_mask=mask, _no_grad=True))
            require(torch.equal(x, before), name, "forward modified its input in place")
            out = expect_tensor(
                name,
                _ensure_tensor_out(name, out),
                (B, S, D),
                what=tr("output {case}", case=tr(case)),
                axes="B,S,D",
            )
            with torch.no_grad():
                assert_close(
                    name,
                    out,
                    ref(x, src_key_padding_mask=mask),
                    case=case,
                    mistake_args=(ref, x, mask),
                    locate=item_locator(items),
                )
                # torch's layer agrees on samples with at least one real token (it gives NaN otherwise)
                ok = torch.ones(B, dtype=torch.bool) if mask is None else ~mask.all(-1)
                assert_close(
                    name,
                    out[ok],
                    twin(x, src_key_padding_mask=mask)[ok],
                    what="output (vs nn.TransformerEncoderLayer with the same weights)",
                    case=case,
                )
    passed(
        name,
        "equals nn.TransformerEncoderLayer(batch_first=True) with the same weights, post-LN and "
        "pre-LN, with and without padding",
    )


@exercise(
    "DecoderLayer", lesson=8, points=3, title="Decoder layer", reference="tfmcourse.transformer:DecoderLayer"
)
def check_DecoderLayer(DecoderLayer, *, seed: int = 0) -> None:
    name = "DecoderLayer"
    g = generator(seed)
    y = randn(B, T, D, g=g, scale=1.5, shift=-0.3)
    memory = randn(B, S, D, g=g, scale=1.5, shift=0.5)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    mem_pad = _pad_mask(g, B, S)
    tgt_pad = _pad_mask(g, B, T).flip(0)  # the other sample padded on the target side
    left_pad = torch.zeros(B, T, dtype=torch.bool)
    left_pad[0, : int(torch.randint(1, T - 1, (1,), generator=g))] = True
    mem_allpad = torch.zeros(B, S, dtype=torch.bool)
    mem_allpad[1] = True
    cases = [  # no masks first: mistakes that would crash with masks (wrong keys) are named here
        (N_("without masks"), None, None, None),
        (N_("with the causal tgt_mask and both padding masks"), causal, tgt_pad, mem_pad),
        (N_("with the causal tgt_mask only"), causal, None, None),
        (
            N_(
                "with the causal tgt_mask, sample 0's target padded at its start (its first queries see "
                "no key) and sample 1's memory all pads"
            ),
            causal,
            left_pad,
            mem_allpad,
        ),
    ]
    for norm_first in (False, True):
        weights = _layer_weights(g, decoder=True)
        layer = _build(
            name,
            DecoderLayer,
            weights,
            _expected_count("dec"),
            norm_first,
            what=" (self_attn and cross_attn: 4 projections each, ff, norm1..3)",
        )
        ref = _reference(transformer.DecoderLayer, weights, norm_first)
        twin = torch_interop.to_torch(ref).train()
        for label, tm, tp, mp in cases:
            case = tr(
                "(norm_first={norm_first}, y (B={B}, T={T}), memory (B={B}, S={S}), {label})",
                norm_first=norm_first,
                B=B,
                T=T,
                S=S,
                label=tr(label),
            )
            before = (y.clone(), memory.clone())
            out = _deterministic(
                name,
                lambda: call(
                    name,
                    layer,
                    y,
                    memory,
                    tgt_mask=tm,
                    tgt_key_padding_mask=tp,
                    memory_key_padding_mask=mp,
                    _no_grad=True,
                ),
            )
            require(
                torch.equal(y, before[0]) and torch.equal(memory, before[1]),
                name,
                "forward modified its inputs in place",
            )
            out = expect_tensor(
                name,
                _ensure_tensor_out(name, out),
                (B, T, D),
                what=tr("output {case}", case=tr(case)),
                axes="B,T,D",
            )
            kw = dict(tgt_mask=tm, tgt_key_padding_mask=tp, memory_key_padding_mask=mp)
            with torch.no_grad():
                assert_close(
                    name,
                    out,
                    ref(y, memory, **kw),
                    case=case,
                    mistake_args=(ref, y, memory, tm, tp, mp),
                    locate=_decoder_locator(tp, mp),
                )
                # torch's layer agrees on samples where every query sees a key (NaN otherwise)
                ok = ~_has_blocked_query(tm, tp, mp)
                if ok.any():
                    assert_close(
                        name,
                        out[ok],
                        twin(y, memory, **kw)[ok],
                        what="output (vs nn.TransformerDecoderLayer with the same weights)",
                        case=case,
                    )
    passed(
        name,
        "equals nn.TransformerDecoderLayer(batch_first=True) with the same weights, post-LN and "
        "pre-LN, causal and padding masks, T≠S",
    )
