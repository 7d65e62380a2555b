"""Implementations of the lesson 11 exercises, right and wrong, written independently."""

import math

import torch

from tests.mutants import correct, wrong

# ---- attend_with_cache


@correct("attend_with_cache")
def attend_with_cache_einsum(q, k_new, v_new, cache=None):
    K = k_new if cache is None else torch.cat((cache[0], k_new), dim=-2)
    V = v_new if cache is None else torch.cat((cache[1], v_new), dim=-2)
    s = torch.einsum("bhqd,bhkd->bhqk", q, K) / math.sqrt(q.size(-1))
    return torch.einsum("bhqk,bhkv->bhqv", s.softmax(-1), V), (K, V)


@correct("attend_with_cache")
def attend_with_cache_float64(q, k_new, v_new, cache=None):
    K, V = (
        (k_new, v_new)
        if cache is None
        else (torch.cat([cache[0], k_new], 2), torch.cat([cache[1], v_new], 2))
    )
    w = torch.softmax((q.double() @ K.double().transpose(2, 3)) * q.shape[-1] ** -0.5, dim=3)
    return (w @ V.double()).float(), (K, V)


@wrong("attend_with_cache", "not scaled")
def attend_with_cache_unscaled(q, k_new, v_new, cache=None):
    K, V = (
        (k_new, v_new)
        if cache is None
        else (torch.cat([cache[0], k_new], 2), torch.cat([cache[1], v_new], 2))
    )
    return torch.softmax(q @ K.transpose(-1, -2), -1) @ V, (K, V)


@wrong("attend_with_cache", "own key")
def attend_with_cache_before_append(q, k_new, v_new, cache=None):
    if cache is None:
        return v_new, (k_new, v_new)
    K, V = cache
    out = torch.softmax(q @ K.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ V
    return out, (torch.cat([K, k_new], 2), torch.cat([V, v_new], 2))


@wrong("attend_with_cache", "at the end of the time axis")
def attend_with_cache_prepends(q, k_new, v_new, cache=None):
    K, V = (
        (k_new, v_new)
        if cache is None
        else (torch.cat([k_new, cache[0]], 2), torch.cat([v_new, cache[1]], 2))
    )
    return torch.softmax(q @ K.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ V, (K, V)


@wrong("attend_with_cache", "time axis")
def attend_with_cache_feature_axis(q, k_new, v_new, cache=None):
    K, V = (
        (k_new, v_new)
        if cache is None
        else (torch.cat([cache[0], k_new], -1), torch.cat([cache[1], v_new], -1))
    )
    return v_new, (K, V)


@wrong("attend_with_cache", "sqrt(d)")
def attend_with_cache_scale_by_value_size(q, k_new, v_new, cache=None):
    K, V = (
        (k_new, v_new)
        if cache is None
        else (torch.cat([cache[0], k_new], 2), torch.cat([cache[1], v_new], 2))
    )
    return torch.softmax(q @ K.transpose(-1, -2) / math.sqrt(v_new.shape[-1]), -1) @ V, (K, V)


# ---- online_softmax_attention


@correct("online_softmax_attention")
def online_softmax_while_loop(q, k, v, block_size):
    S, start = k.shape[-2], 0
    m = l = acc = None
    while start < S:
        kb, vb = k[..., start : start + block_size, :], v[..., start : start + block_size, :]
        s = torch.einsum("...td,...sd->...ts", q, kb) / math.sqrt(q.shape[-1])
        bm = s.max(-1, keepdim=True).values
        if m is None:
            m, p = bm, torch.exp(s - bm)
            l, acc = p.sum(-1, keepdim=True), p @ vb
        else:
            new = torch.maximum(m, bm)
            p = torch.exp(s - new)
            l = l * torch.exp(m - new) + p.sum(-1, keepdim=True)
            acc = acc * torch.exp(m - new) + p @ vb
            m = new
        start += block_size
    return acc / l


@correct("online_softmax_attention")
def online_softmax_float64_logsumexp(q, k, v, block_size):
    q64, k64, v64 = q.double() / math.sqrt(q.shape[-1]), k.double(), v.double()
    lse = torch.full(q.shape[:-1] + (1,), float("-inf"), dtype=torch.float64)
    acc = torch.zeros(q.shape[:-1] + (v.shape[-1],), dtype=torch.float64)
    for s in range(0, k.shape[-2], block_size):
        sc = q64 @ k64[..., s : s + block_size, :].transpose(-1, -2)
        block_lse = torch.logsumexp(sc, -1, keepdim=True)
        new = torch.logaddexp(lse, block_lse)
        acc = acc * torch.exp(lse - new) + torch.exp(sc - new) @ v64[..., s : s + block_size, :]
        lse = new
    return acc.to(q.dtype)


@wrong("online_softmax_attention", "running max")
def online_softmax_plain_exp(q, k, v, block_size):
    num = den = 0
    for s in range(0, k.shape[-2], block_size):
        p = torch.exp(q @ k[..., s : s + block_size, :].transpose(-1, -2) / math.sqrt(q.shape[-1]))
        num, den = num + p @ v[..., s : s + block_size, :], den + p.sum(-1, keepdim=True)
    return num / den


@wrong("online_softmax_attention", "not rescaled")
def online_softmax_forgets_rescale(q, k, v, block_size):
    m = torch.full(q.shape[:-1] + (1,), float("-inf"))
    num = den = 0
    for s in range(0, k.shape[-2], block_size):
        sc = q @ k[..., s : s + block_size, :].transpose(-1, -2) / math.sqrt(q.shape[-1])
        m = torch.maximum(m, sc.amax(-1, keepdim=True))
        p = (sc - m).exp()
        num, den = num + p @ v[..., s : s + block_size, :], den + p.sum(-1, keepdim=True)
    return num / den


@wrong("online_softmax_attention", "shorter block is skipped")
def online_softmax_whole_blocks_only(q, k, v, block_size):
    n = max(1, k.shape[-2] // block_size)
    return online_softmax_while_loop(q, k[..., : n * block_size, :], v[..., : n * block_size, :], block_size)


@wrong("online_softmax_attention", "averaged")
def online_softmax_mean_of_blocks(q, k, v, block_size):
    outs = []
    for s in range(0, k.shape[-2], block_size):
        w = torch.softmax(q @ k[..., s : s + block_size, :].transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
        outs.append(w @ v[..., s : s + block_size, :])
    return torch.stack(outs).mean(0)


@wrong("online_softmax_attention", "score matrix was formed")
def online_softmax_full_scores(q, k, v, block_size):
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
