"""Inference at speed (lesson 11): the KV cache, its memory, and attention block by block.

- :func:`attend_with_cache`: one decoding step of attention that appends the new
  key and value to a cache instead of recomputing the whole prefix;
- :func:`generate`: greedy or sampled generation from a :class:`tfmcourse.gpt.GPT`,
  recomputing every step or reusing the model's cache (``forward_step``), with
  the logits of every step so the two can be compared exactly;
- :func:`kv_cache_bytes_per_token`: what the cache costs, and how grouped-query
  attention divides it;
- :func:`online_softmax_attention`: exact attention over key blocks with a
  running max and sum (the idea behind FlashAttention), never forming the
  ``(T, S)`` score matrix; :func:`peak_tensor_bytes` measures that.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from tfmcourse.attention import scaled_dot_product_attention
from tfmcourse.decoding import next_token_distribution

# ---------------------------------------------------------------- the KV cache


def attend_with_cache(
    q: Tensor, k_new: Tensor, v_new: Tensor, cache: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Attend one new query over every position so far, keeping keys and values in a cache.

    The new key and value are appended at the end of the time axis; the query
    (the newest position) may see every cached position and itself, so no
    mask is needed. Called for t = 0, 1, …, T−1 this is causal self-attention.

    Shape:
        q, k_new ``(B, H, 1, d)``; v_new ``(B, H, 1, dv)``; cache ``(K (B, H, t, d), V (B, H, t, dv))``
        or None; returns ``out (B, H, 1, dv)`` and the cache with ``t + 1`` positions.
    """
    if cache is None:
        K, V = k_new, v_new  # (B, H, 1, d), (B, H, 1, dv)
    else:
        K = torch.cat([cache[0], k_new], dim=2)  # (B, H, t+1, d)
        V = torch.cat([cache[1], v_new], dim=2)  # (B, H, t+1, dv)
    out, _ = scaled_dot_product_attention(q, K, V)  # (B, H, 1, dv)
    return out, (K, V)


def generate(
    model: Any,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    use_cache: bool = True,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Generate ``max_new_tokens`` tokens after ``prompt``, greedily by default.

    With ``use_cache=False`` the model runs on the whole sequence at every step;
    with ``use_cache=True`` the prompt is fed once and then only the newest
    token, through ``model.forward_step`` and its key/value cache. Both return
    the same tokens and the same logits (up to float rounding). Both run under
    ``torch.inference_mode()`` and write into a token tensor allocated once.

    Shape:
        prompt ``(B, P)`` long; returns tokens ``(B, P + max_new_tokens)`` and the
        logits that chose each new token ``(B, max_new_tokens, V)``.
    """
    B, P = prompt.shape
    step_logits = []
    with torch.inference_mode():  # like no_grad, and without autograd's bookkeeping on every operation
        tokens = prompt.new_empty(B, P + max_new_tokens)  # filled as the tokens are chosen
        tokens[:, :P] = prompt
        cache = None
        for t in range(P, P + max_new_tokens):  # tokens[:, :t] are known; choose tokens[:, t]
            if use_cache:
                logits, cache = model.forward_step(prompt if t == P else tokens[:, t - 1 : t], cache)
            else:
                logits = model(tokens[:, :t])
            last = logits[:, -1]  # (B, V): the last position scores the next token
            step_logits.append(last)
            if temperature == 0:
                tokens[:, t] = last.argmax(dim=-1)  # (B,)
            else:
                probs = next_token_distribution(last, temperature, top_k, top_p)
                tokens[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
    # outside inference mode, so the caller gets ordinary tensors (inference tensors cannot enter autograd)
    return tokens.clone(), torch.stack(step_logits, dim=1)


def kv_cache_bytes_per_token(num_layers: int, n_kv_heads: int, d_head: int, bytes_per_value: int = 4) -> int:
    """Bytes the cache grows by per generated token (per sequence): a key and a value
    of ``n_kv_heads × d_head`` numbers in every layer."""
    return 2 * num_layers * n_kv_heads * d_head * bytes_per_value


def cache_nbytes(cache: list[Any]) -> int:
    """Bytes of the keys and values a model's cache holds so far, in every layer.

    ``cache`` is what ``GPT.forward_step`` returns; it counts the filled positions
    (the room reserved for later ones, up to ``max_len``, is not counted).
    """
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in cache)


def matmul_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the matrix products ``fn()`` runs (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------- attention block by block


def online_softmax_attention(q: Tensor, k: Tensor, v: Tensor, block_size: int) -> Tensor:
    """Exact ``softmax(q kᵀ / sqrt(d)) v``, one block of ``block_size`` keys at a time.

    For every query it keeps a running max ``m`` of the scores seen, a running
    sum ``l`` of ``exp(score − m)`` and a running weighted sum ``acc`` of the
    values. When a block raises the max, the old ``l`` and ``acc`` are rescaled
    by ``exp(m_old − m_new)``; at the end ``out = acc / l``. Only ``(T, block)``
    scores exist at any time, never ``(T, S)``, and ``exp`` only ever sees
    numbers ≤ 0, so huge scores cannot overflow.

    Shape:
        q ``(..., T, d)``, k ``(..., S, d)``, v ``(..., S, dv)``; returns ``(..., T, dv)``.
    """
    if int(block_size) != block_size or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or k.shape[-2] == 0:
        raise ValueError(
            f"need q (..., T, d), k (..., S, d), v (..., S, dv) with S >= 1; got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1])
    S = k.shape[-2]
    m = torch.full(q.shape[:-1] + (1,), float("-inf"), dtype=q.dtype)  # (..., T, 1) running max
    l = torch.zeros(q.shape[:-1] + (1,), dtype=q.dtype)  # (..., T, 1) running sum
    acc = torch.zeros(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype)  # (..., T, dv)
    for start in range(0, S, block_size):
        kb, vb = k[..., start : start + block_size, :], v[..., start : start + block_size, :]
        scores = q @ kb.transpose(-2, -1) * scale  # (..., T, b)
        m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (..., T, 1)
        correction = torch.exp(m - m_new)  # (..., T, 1): rescales what was summed so far
        p = torch.exp(scores - m_new)  # (..., T, b), every entry <= 1
        l = l * correction + p.sum(dim=-1, keepdim=True)
        acc = acc * correction + p @ vb  # (..., T, dv)
        m = m_new
    return acc / l


class _PeakTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensors created inside the mode that are still alive, and their peak."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.refs: dict[int, int] = {}
        self.current = self.peak = 0

    def _release(self, ptr: int) -> None:
        self.refs[ptr] -= 1
        if self.refs[ptr] == 0:
            self.current -= self.live.pop(ptr)
            del self.refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            a.untyped_storage().data_ptr()
            for a in list(args) + list((kwargs or {}).values())
            if isinstance(a, Tensor)
        }
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                ptr = t.untyped_storage().data_ptr()
                if ptr in inputs and ptr not in self.live:
                    continue  # a view of (or in-place op on) a tensor made before the probe
                if ptr not in self.live:
                    self.live[ptr] = t.untyped_storage().nbytes()
                    self.current += self.live[ptr]
                    self.peak = max(self.peak, self.current)
                self.refs[ptr] = self.refs.get(ptr, 0) + 1
                weakref.finalize(t, self._release, ptr)
        return out


def peak_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of the tensors ``fn()`` creates that are alive at the same time.

    Inputs created before the call are not counted, so this is the *extra*
    memory a computation needs (a memory probe at the level of torch's
    operators; it does not see allocator caching or fused kernels).
    """
    with _PeakTensorBytes() as probe:
        result = fn()
    del result
    return probe.peak
