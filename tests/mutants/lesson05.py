"""Implementations of the lesson 05 exercises, right and wrong, written independently."""

import math

import numpy as np
import torch

from tests.mutants import correct, wrong

# ---- sinusoidal_positional_encoding


@correct("sinusoidal_positional_encoding")
def pe_loops(max_len, d_model):
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    pe = torch.zeros(max_len, d_model)
    for pos in range(max_len):
        for i in range(0, d_model, 2):
            angle = pos / (10000 ** (i / d_model))
            pe[pos, i] = math.sin(angle)
            pe[pos, i + 1] = math.cos(angle)
    return pe


@correct("sinusoidal_positional_encoding")
def pe_float32_exp_log(max_len, d_model):
    # the nanoGPT / annotated-transformer style, entirely in float32
    if d_model % 2 == 1:
        raise ValueError("odd d_model: sin/cos need pairs of columns")
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


@correct("sinusoidal_positional_encoding")
def pe_numpy_stack(max_len, d_model):
    if d_model % 2:
        raise ValueError(f"{d_model} is odd")
    angles = np.arange(max_len)[:, None] / np.power(10000.0, np.arange(0, d_model, 2) / d_model)[None]
    return torch.from_numpy(np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(max_len, d_model))


def _guard(d_model):
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")


def _pe(max_len, d_model, rate_exp, start=0, even=torch.sin, odd=torch.cos, concat=False):
    _guard(d_model)
    pos = torch.arange(start, start + max_len, dtype=torch.float32)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float32)
    ang = pos * torch.pow(10000.0, rate_exp(i, d_model))
    if concat:
        return torch.cat([even(ang), odd(ang)], 1)
    return torch.stack([even(ang), odd(ang)], -1).reshape(max_len, d_model)


@wrong("sinusoidal_positional_encoding", "i/d instead of 2i/d")
def pe_exponent_i(max_len, d_model):
    return _pe(max_len, d_model, lambda i, d: -i / d)


@wrong("sinusoidal_positional_encoding", "4i/d instead of 2i/d")
def pe_exponent_4i(max_len, d_model):
    pos = torch.arange(max_len).float().unsqueeze(1)
    col = torch.arange(0, d_model, 2).float()  # 0, 2, 4, … : already 2i
    div = torch.exp(-math.log(10000.0) * (2 * col) / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


@wrong("sinusoidal_positional_encoding", "inverted")
def pe_inverted(max_len, d_model):
    return _pe(max_len, d_model, lambda i, d: 2 * i / d)


@wrong("sinusoidal_positional_encoding", "concatenated")
def pe_concatenated(max_len, d_model):
    return _pe(max_len, d_model, lambda i, d: -2 * i / d, concat=True)


@wrong("sinusoidal_positional_encoding", "swapped")
def pe_swapped(max_len, d_model):
    return _pe(max_len, d_model, lambda i, d: -2 * i / d, even=torch.cos, odd=torch.sin)


@wrong("sinusoidal_positional_encoding", "counted from 1")
def pe_from_one(max_len, d_model):
    return _pe(max_len, d_model, lambda i, d: -2 * i / d, start=1)


@wrong("sinusoidal_positional_encoding", "accepted silently")
def pe_odd_accepted(max_len, d_model):
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    j = torch.arange(d_model)
    ang = pos / 10000 ** ((j - j % 2) / d_model)
    return torch.where(j % 2 == 0, torch.sin(ang), torch.cos(ang)).float()


@wrong("sinusoidal_positional_encoding", "column index j")
def pe_column_exponent(max_len, d_model):
    _guard(d_model)
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    j = torch.arange(d_model)
    ang = pos / 10000 ** (j / d_model)
    return torch.where(j % 2 == 0, torch.sin(ang), torch.cos(ang)).float()


@wrong("sinusoidal_positional_encoding", "should say what is wrong")
def pe_mute_error(max_len, d_model):
    if d_model % 2:
        raise ValueError()
    return pe_loops(max_len, d_model)


@wrong("sinusoidal_positional_encoding", "should say what is wrong")
def pe_mute_error_on_telling_line(max_len, d_model):
    if d_model % 2:
        raise ValueError()  # noqa: E701 - the source line mentions d_model, the message doesn't
    return pe_loops(max_len, d_model)


@wrong("sinusoidal_positional_encoding", "must raise ValueError")
def pe_assert_instead(max_len, d_model):
    assert d_model % 2 == 0, "d_model must be even"
    return pe_loops(max_len, d_model)


@wrong("sinusoidal_positional_encoding", "shape")
def pe_transposed(max_len, d_model):
    return pe_loops(max_len, d_model).T


# ---- embed_with_positions


@correct("embed_with_positions")
def embed_einsum_free(tokens, embedding, pe):
    B, T = tokens.shape
    D = embedding.weight.shape[1]
    x = embedding.weight[tokens] * D**0.5
    return x + pe[:T].unsqueeze(0).expand(B, T, D)


@correct("embed_with_positions")
def embed_loop(tokens, embedding, pe):
    B, T = tokens.shape
    D = embedding.embedding_dim
    out = torch.empty(B, T, D)
    for b in range(B):
        for t in range(T):
            out[b, t] = embedding(tokens[b, t]) * math.sqrt(D) + pe[t]
    return out


@wrong("embed_with_positions", "not scaled")
def embed_no_scale(tokens, embedding, pe):
    return embedding(tokens) + pe[: tokens.shape[1]]


@wrong("embed_with_positions", "batch axis")
def embed_batch_axis(tokens, embedding, pe):
    x = embedding(tokens) * math.sqrt(embedding.embedding_dim)
    return x + pe[: x.shape[0]].unsqueeze(1)


@wrong("embed_with_positions", "one position's code")
def embed_first_row(tokens, embedding, pe):
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[0]


@wrong("embed_with_positions", "one position's code")
def embed_last_row(tokens, embedding, pe):
    T = tokens.shape[1]
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[T - 1]


@wrong("embed_with_positions", "instead of sqrt(d_model)")
def embed_scale_d(tokens, embedding, pe):
    return embedding(tokens) * embedding.embedding_dim + pe[: tokens.shape[1]]


@wrong("embed_with_positions", "multiplied by sqrt(D) too")
def embed_scale_sum(tokens, embedding, pe):
    return (embedding(tokens) + pe[: tokens.shape[1]]) * math.sqrt(embedding.embedding_dim)


@wrong("embed_with_positions", "in place")
def embed_in_place(tokens, embedding, pe):
    pe[: tokens.shape[1]] += embedding(tokens).mean() * 0 + 0.5
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe[: tokens.shape[1]] - 0.5


@wrong("embed_with_positions", "raised RuntimeError")
def embed_whole_table(tokens, embedding, pe):
    return embedding(tokens) * math.sqrt(embedding.embedding_dim) + pe
