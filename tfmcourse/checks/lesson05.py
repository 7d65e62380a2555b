"""Checks for lesson 05: ``sinusoidal_positional_encoding``, ``embed_with_positions``."""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from tfmcourse import positional
from tfmcourse.checks._core import (
    MISTAKES,
    CheckFailed,
    ExerciseNotAttempted,
    assert_close,
    call,
    exercise,
    expect_tensor,
    generator,
    mistake,
    passed,
    randn,
    require,
)

# ---------------------------------------------------------------- known mistakes: the table
# Computed in float64 (and compared loosely, see _assert_table), so that a mistake whose
# angles are huge (inverted frequencies) is still recognised whatever float32 rounding
# the learner's version had.


def _table(max_len, d_model, *, exponent=None, invert=False, layout="interleaved", swap=False, start=0):
    p = torch.arange(start, start + max_len, dtype=torch.float64)[:, None]  # (L, 1)
    i = torch.arange(d_model // 2, dtype=torch.float64)  # (d/2,)
    expo = (2 * i if exponent is None else exponent(i)) / d_model
    rate = BASE**expo if invert else BASE ** (-expo)
    angles = p * rate  # (L, d/2)
    first, second = (torch.cos, torch.sin) if swap else (torch.sin, torch.cos)
    if layout == "concatenated":
        return torch.cat([first(angles), second(angles)], dim=1)
    pe = torch.empty(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = first(angles), second(angles)
    return pe


BASE = positional.BASE


@mistake(
    "sinusoidal_positional_encoding",
    "the exponent is i/d instead of 2i/d: for the column pair "
    "(2i, 2i+1) the rate is 1/10000^(2i/d_model), where i counts *pairs* (0, 1, …, d/2-1).",
)
def _pe_exponent_i(max_len, d_model):
    return _table(max_len, d_model, exponent=lambda i: i)


@mistake(
    "sinusoidal_positional_encoding",
    "the exponent is 4i/d instead of 2i/d: the column index 2i was doubled again (2·(2i)/d). For "
    "the column pair (2i, 2i+1) the rate is 1/10000^(2i/d_model), with i counting *pairs*, so the "
    "exponent runs from 0 to just under 1, not to 2.",
)
def _pe_exponent_4i(max_len, d_model):
    return _table(max_len, d_model, exponent=lambda i: 4 * i)


@mistake(
    "sinusoidal_positional_encoding",
    "the exponent uses the column index j (so the cos column "
    "2i+1 gets (2i+1)/d): both columns of a pair share the same frequency 1/10000^(2i/d_model).",
)
def _pe_exponent_column(max_len, d_model):
    p = torch.arange(max_len, dtype=torch.float64)[:, None]
    j = torch.arange(d_model, dtype=torch.float64)
    angles = p * BASE ** (-j / d_model)
    return torch.where(j.long() % 2 == 0, torch.sin(angles), torch.cos(angles))


@mistake(
    "sinusoidal_positional_encoding",
    "the frequencies are inverted: positions are multiplied by "
    "10000^(2i/d) instead of divided by it. The angle is pos / 10000^(2i/d_model), so the rate "
    "falls from 1 (first pair) to about 1/10000 (last pair).",
)
def _pe_inverted(max_len, d_model):
    return _table(max_len, d_model, invert=True)


@mistake(
    "sinusoidal_positional_encoding",
    "sin and cos are concatenated (all sines, then all cosines) "
    "instead of interleaved: sin goes in the even columns 0, 2, 4, … and cos in the odd columns "
    "1, 3, 5, … (pe[:, 0::2] = sin, pe[:, 1::2] = cos).",
)
def _pe_concatenated(max_len, d_model):
    return _table(max_len, d_model, layout="concatenated")


@mistake(
    "sinusoidal_positional_encoding",
    "sin and cos are swapped (cos in the even columns): the "
    "even columns 0, 2, 4, … hold sin, the odd columns 1, 3, 5, … cos.",
)
def _pe_swapped(max_len, d_model):
    return _table(max_len, d_model, swap=True)


@mistake(
    "sinusoidal_positional_encoding",
    "sin and cos are concatenated and swapped (all cosines, "
    "then all sines): interleave them, sin in the even columns and cos in the odd columns.",
)
def _pe_concatenated_swapped(max_len, d_model):
    return _table(max_len, d_model, layout="concatenated", swap=True)


@mistake(
    "sinusoidal_positional_encoding",
    "positions are counted from 1: the first row is position 0 "
    "(PE[0] = [0, 1, 0, 1, …]), use torch.arange(max_len).",
)
def _pe_from_one(max_len, d_model):
    return _table(max_len, d_model, start=1)


def _loose_mistake(got, max_len, d_model):
    """The first registered mistake whose table equals ``got`` up to float32 rounding of large angles.

    Angles of thousands of radians (inverted frequencies) lose ~1e-2 in float32, so the
    low-frequency columns 0-7 are compared tightly and the rest loosely.
    """
    g = got.detach().double()
    for m in MISTAKES.get("sinusoidal_positional_encoding", []):
        ref = m.impl(max_len, d_model)
        if (
            ref.shape == g.shape
            and torch.allclose(g[:, :8], ref[:, :8], rtol=0, atol=1e-3)
            and torch.allclose(g, ref, rtol=0, atol=0.15)
        ):
            return m.description
    return None


def _assert_table(name, got, max_len, d_model, case):
    expected = positional.sinusoidal_positional_encoding(max_len, d_model)
    try:
        assert_close(name, got, expected, what="table", case=case, mistake_args=(max_len, d_model))
    except CheckFailed as exc:
        msg = str(exc)
        if "known mistake" not in msg:
            found = _loose_mistake(got, max_len, d_model)
            if found:
                msg += f"\n  This matches a known mistake: {found}"
        raise CheckFailed(msg) from None


# ---------------------------------------------------------------- known mistakes: embedding + PE


@mistake(
    "embed_with_positions",
    "the embedding is not scaled: multiply embedding(tokens) by "
    "sqrt(d_model) before adding the positional table, or the fixed PE (entries of size 1) "
    "drowns the small learned embeddings.",
)
def _emb_no_scale(tokens, embedding, pe):
    return embedding(tokens) + pe[: tokens.shape[1]]


@mistake("embed_with_positions", "the embedding is scaled by d_model instead of sqrt(d_model).")
def _emb_scale_d(tokens, embedding, pe):
    return embedding(tokens) * embedding.embedding_dim + pe[: tokens.shape[1]]


@mistake(
    "embed_with_positions",
    "the sum is scaled, so the positional code is multiplied by sqrt(D) "
    "too: scale only the embedding, then add the table: embedding(tokens) * sqrt(D) + pe[:T].",
)
def _emb_scale_both(tokens, embedding, pe):
    return (embedding(tokens) + pe[: tokens.shape[1]]) * math.sqrt(embedding.embedding_dim)


@mistake(
    "embed_with_positions",
    "the positional code is added along the batch axis (sample b gets "
    "position b's code): add pe[:T] along the time axis, shape (T, D) broadcast as (1, T, D).",
)
def _emb_batch_axis(tokens, embedding, pe):
    B = tokens.shape[0]
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[:B, None, :]


@mistake(
    "embed_with_positions",
    "one position's code is added to every token (pe[0] everywhere): "
    "token t must get row t of the table, i.e. add pe[:T].",
)
def _emb_one_position(tokens, embedding, pe):
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[0]


@mistake(
    "embed_with_positions",
    "one position's code is added to every token (pe[T-1] "
    "everywhere, an index instead of a slice): token t must get row t, i.e. add pe[:T].",
)
def _emb_last_position(tokens, embedding, pe):
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[tokens.shape[1] - 1]


@mistake(
    "embed_with_positions",
    "one position's code is added to every token (pe[T] everywhere, an "
    "index instead of a slice): token t must get row t, i.e. add pe[:T].",
)
def _emb_position_T(tokens, embedding, pe):
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[tokens.shape[1]]


@mistake(
    "embed_with_positions",
    "the positional table is indexed by the token ids (pe[tokens]) instead of by the positions 0 … T-1.",
)
def _emb_pe_by_token(tokens, embedding, pe):
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[tokens]


# ---------------------------------------------------------------- checks


@exercise(
    "sinusoidal_positional_encoding",
    lesson=5,
    points=2,
    title="Sinusoidal positional encoding",
    reference="tfmcourse.positional:sinusoidal_positional_encoding",
)
def check_sinusoidal_positional_encoding(sinusoidal_positional_encoding, *, seed: int = 0) -> None:
    name = "sinusoidal_positional_encoding"
    # Large first (mistakes differ most there), then a tiny hand-checkable case.
    cases = [(13 + seed % 7, 24), (4, 2), (37, 64 + 2 * (seed % 3))]
    for max_len, d_model in cases:
        got = call(name, sinusoidal_positional_encoding, max_len, d_model)
        expect_tensor(
            name,
            got,
            (max_len, d_model),
            what=f"table for max_len={max_len}, d_model={d_model}",
            axes="max_len,d_model",
        )
        case = f"for max_len={max_len}, d_model={d_model}"
        if d_model == 2:
            case += " (here PE[p] = [sin p, cos p])"
        _assert_table(name, got, max_len, d_model, case)
    odd = 7 + 2 * (seed % 4)  # 7, 9, 11 or 13
    try:
        out = call(name, sinusoidal_positional_encoding, 6, odd)
    except ExerciseNotAttempted:
        raise
    except CheckFailed as exc:
        msg = str(exc)
        require(
            "raised ValueError" in msg,
            name,
            f"an odd d_model={odd} must raise ValueError (sin and cos come in pairs), but {msg.split(': ', 1)[-1]}",
        )
        text = msg.split("raised ValueError", 1)[1]
        text = re.sub(r"\s*\(line \d+(:.*)?\)\s*$", "", text, flags=re.S)  # the message, not the source line
        require(
            any(w in text.lower() for w in ("even", "odd", "d_model", "pair", str(odd))),
            name,
            f"the ValueError for d_model={odd} should say what is wrong (e.g. 'd_model must be even, "
            f"got {odd}'), got {text.strip(' :')!r}",
        )
    else:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckFailed(
            f"{name}: odd d_model={odd} was accepted silently (it returned {shape}). The sin/cos columns "
            f"come in pairs, so raise ValueError with a clear message, e.g. "
            f"raise ValueError(f'd_model must be even, got {{d_model}}')."
        )
    passed(
        name,
        f"interleaved sin/cos with rates 1/10000^(2i/d), positions from 0, for "
        f"{', '.join(f'({a}, {b})' for a, b in cases)}; odd d_model raises ValueError",
    )


def _embedding(V: int, D: int, g: torch.Generator, scale: float) -> nn.Embedding:
    emb = nn.Embedding(V, D)
    with torch.no_grad():
        emb.weight.copy_(randn(V, D, g=g, scale=scale, shift=0.1))
    return emb


@exercise(
    "embed_with_positions",
    lesson=5,
    points=1,
    title="Embedding plus positions",
    reference="tfmcourse.positional:embed_with_positions",
)
def check_embed_with_positions(embed_with_positions, *, seed: int = 0) -> None:
    name = "embed_with_positions"
    g = generator(seed)
    B, T, D, V, max_len = 2, 5, 24, 11, 9
    emb = _embedding(V, D, g, scale=0.5)
    tokens = torch.randint(0, V, (B, T), generator=g)
    tokens[0, :2] = torch.tensor([3, 3])  # a repeated token: only its position tells them apart
    cases = [
        ("with a random (9, 24) table", tokens, randn(max_len, D, g=g, shift=0.3)),
        ("with the sinusoid table", tokens, positional.sinusoidal_positional_encoding(max_len, D)),
        (
            "with T = max_len = 9 and B = 3",
            torch.randint(0, V, (3, max_len), generator=g),
            randn(max_len, D, g=g, shift=-0.2),
        ),
    ]
    for label, tok, pe in cases:
        keep = (tok.clone(), pe.clone(), emb.weight.detach().clone())
        got = call(name, embed_with_positions, tok, emb, pe, _no_grad=True)
        require(
            torch.equal(tok, keep[0]) and torch.equal(pe, keep[1]) and torch.equal(emb.weight, keep[2]),
            name,
            f"it modified its inputs (tokens, embedding or pe) in place {label}; build a new tensor",
        )
        expect_tensor(name, got, (tok.shape[0], tok.shape[1], D), what=f"output {label}", axes="B,T,D")
        with torch.no_grad():
            expected = positional.embed_with_positions(tok, emb, pe)
        assert_close(
            name,
            got,
            expected,
            case=label,
            mistake_args=(tok, emb, pe),
            hint="embedding(tokens) * sqrt(D) + pe[:T]",
        )
    passed(name, "embedding(tokens)·sqrt(D) + pe[:T] for random and sinusoid tables, B≠T and T = max_len")
