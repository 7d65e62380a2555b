"""GPT: the decoder-only Transformer, a causal language model (lesson 10).

Drop the encoder and the cross-attention of lesson 08's decoder layer and
what is left is a stack of *causal self-attention + feed-forward* blocks that
predicts the next token. This module builds it with the choices of modern
models as options, so a lesson can compare them:

- ``norm_first=True`` (pre-LN, with a final norm after the stack) or the
  paper's post-LN;
- ``norm="rms"`` (:class:`tfmcourse.norms.RMSNorm`) or ``"layer"``;
- ``positions="rope"`` (rotate q and k, :func:`tfmcourse.positional.apply_rope`),
  ``"learned"`` (a trained table) or ``"sinusoidal"`` (lesson 05's table, added);
- ``tie_weights=True``: the output projection *is* the token embedding;
- ``n_kv_heads``: fewer key/value heads than query heads (grouped-query
  attention, multi-query when 1) — lesson 11 measures what that saves.

Attention itself is :func:`tfmcourse.attention.scaled_dot_product_attention`,
the one attention core of the course. ``forward_step`` feeds only new tokens and
reuses the keys and values of earlier ones (the KV cache of lesson 11), kept in
tensors allocated once and written in place
(:class:`tfmcourse.transformer.LayerKVCache`, as lesson 09's decoder does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from tfmcourse.attention import merge_heads, scaled_dot_product_attention, split_heads
from tfmcourse.norms import RMSNorm
from tfmcourse.positional import rope_angles, rotate_pairs, sinusoidal_positional_encoding
from tfmcourse.transformer import FeedForward, LayerKVCache


@dataclass(frozen=True)
class GPTConfig:
    """Sizes and architectural choices of a :class:`GPT`; validates itself."""

    vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: as many as n_heads (plain multi-head attention)
    d_ff: int = 256
    num_layers: int = 2
    max_len: int = 128
    dropout: float = 0.0
    norm_first: bool = True
    norm: str = "rms"  # "rms" or "layer"
    positions: str = "rope"  # "rope", "learned" or "sinusoidal"
    tie_weights: bool = True

    def __post_init__(self):
        if min(self.vocab_size, self.d_model, self.n_heads, self.d_ff, self.num_layers, self.max_len) <= 0:
            raise ValueError(f"every size must be positive: {self}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.kv_heads <= 0 or self.n_heads % self.kv_heads:
            raise ValueError(
                f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads} (each key/value head "
                f"serves n_heads // n_kv_heads query heads)"
            )
        if self.norm not in ("rms", "layer"):
            raise ValueError(f"norm must be 'rms' or 'layer', got {self.norm!r}")
        if self.positions not in ("rope", "learned", "sinusoidal"):
            raise ValueError(f"positions must be 'rope', 'learned' or 'sinusoidal', got {self.positions!r}")
        if self.positions == "rope" and self.d_head % 2:
            raise ValueError(f"RoPE rotates pairs: d_head={self.d_head} must be even")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    def replace(self, **changes) -> GPTConfig:
        return replace(self, **changes)


def _norm(config: GPTConfig) -> nn.Module:
    return RMSNorm(config.d_model) if config.norm == "rms" else nn.LayerNorm(config.d_model)


KVCache = list[LayerKVCache]  # one per block


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with optional RoPE and grouped key/value heads.

    ``q_proj`` has ``n_heads`` heads; ``k_proj`` and ``v_proj`` have ``n_kv_heads``
    heads, each shared by ``n_heads // n_kv_heads`` query heads.

    Shape:
        x ``(B, n, D)`` (the ``n`` newest positions); positions ``(n,)``;
        cache a :class:`LayerKVCache` holding ``P`` positions, or None; returns ``(B, n, D)``
        and the keys and values of all ``P + n`` positions, two ``(B, G, P+n, d_head)``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        D, G, dh = config.d_model, config.kv_heads, config.d_head
        self.n_heads, self.kv_heads, self.rope = config.n_heads, G, config.positions == "rope"
        self.q_proj = nn.Linear(D, D)  # W_Q
        self.k_proj = nn.Linear(D, G * dh)  # W_K: G heads only
        self.v_proj = nn.Linear(D, G * dh)  # W_V: G heads only
        self.out_proj = nn.Linear(D, D)  # W_O
        if self.rope:  # RoPE's cos and sin for every position, computed once and looked up
            cos, sin = rope_angles(torch.arange(config.max_len), dh)  # (max_len, d_head/2) each
            self.register_buffer("rope_cos", cos.to(torch.get_default_dtype()), persistent=False)
            self.register_buffer("rope_sin", sin.to(torch.get_default_dtype()), persistent=False)

    def forward(
        self, x: Tensor, positions: Tensor, cache: LayerKVCache | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, H, n, d_head)
        k = split_heads(self.k_proj(x), self.kv_heads)  # (B, G, n, d_head)
        v = split_heads(self.v_proj(x), self.kv_heads)  # (B, G, n, d_head)
        if self.rope:  # q and k turn by the same angles: rotate them in one call
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]  # (n, d_head/2) each
            qk = rotate_pairs(torch.cat([q, k], dim=1), cos, sin)  # (B, H+G, n, d_head)
            q, k = qk[:, : self.n_heads], qk[:, self.n_heads :]
        if cache is not None:
            k, v = cache.update(k, v)  # (B, G, P+n, d_head) each
        n, L = q.shape[2], k.shape[2]
        # new query i sits at position L-n+i and may see keys 0 … L-n+i (one new query sees them all)
        mask = (
            torch.ones(n, L, dtype=torch.bool, device=x.device).triu(L - n + 1) if n > 1 else None
        )  # (n, L)
        group = self.n_heads // self.kv_heads
        k_all = k.repeat_interleave(group, dim=1) if group > 1 else k  # (B, H, L, d_head)
        v_all = v.repeat_interleave(group, dim=1) if group > 1 else v  # (B, H, L, d_head)
        context, _ = scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)  # (B, H, n, d_head)
        return self.out_proj(merge_heads(context)), (k, v)  # (B, n, D)


class Block(nn.Module):
    """Lesson 08's decoder layer without cross-attention: causal self-attention, then feed-forward.

    Pre-LN: ``x + sublayer(norm(x))``; post-LN: ``norm(x + sublayer(x))``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.norm_first = config.norm_first
        self.norm1, self.norm2 = _norm(config), _norm(config)
        self.self_attn = CausalSelfAttention(config)
        self.ff = FeedForward(config.d_model, config.d_ff, config.dropout)
        self.dropout1, self.dropout2 = nn.Dropout(config.dropout), nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, positions: Tensor, cache: LayerKVCache | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if self.norm_first:
            a, kv = self.self_attn(self.norm1(x), positions, cache)
            x = x + self.dropout1(a)
            x = x + self.dropout2(self.ff(self.norm2(x)))
        else:
            a, kv = self.self_attn(x, positions, cache)
            x = self.norm1(x + self.dropout1(a))
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x, kv  # (B, n, D)


class GPT(nn.Module):
    """A decoder-only Transformer language model: ``model(tokens) -> next-token logits``.

    Shape:
        tokens ``(B, T)`` long with ``T <= max_len``; returns logits ``(B, T, vocab_size)``,
        where position ``t`` scores the token at ``t + 1``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        if c.positions == "learned":
            self.pos_embed = nn.Embedding(c.max_len, c.d_model)
        elif c.positions == "sinusoidal":
            self.register_buffer("pe", sinusoidal_positional_encoding(c.max_len, c.d_model), persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = _norm(c) if c.norm_first else None  # pre-LN needs a final norm; post-LN ends normed
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self._reset_parameters()
        if c.tie_weights:
            self.lm_head.weight = self.embed.weight  # one (V, D) matrix embeds and un-embeds

    def _reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        # embeddings N(0, 1/d): embedding * sqrt(d) has unit variance, and tied logits start O(1)
        nn.init.normal_(self.embed.weight, std=self.config.d_model**-0.5)
        if self.config.positions == "learned":
            nn.init.normal_(self.pos_embed.weight, std=0.02)

    def _embed(self, tokens: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        if tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(
                f"tokens must be a (B, T) integer tensor, got {tuple(tokens.shape)} {tokens.dtype}"
            )
        T = tokens.shape[1]
        if offset + T > self.config.max_len:
            raise ValueError(f"position {offset + T - 1} is beyond max_len={self.config.max_len}")
        positions = torch.arange(offset, offset + T, device=tokens.device)  # (T,)
        x = self.embed(tokens) * math.sqrt(self.config.d_model)  # (B, T, D)
        if self.config.positions == "learned":
            x = x + self.pos_embed(positions)
        elif self.config.positions == "sinusoidal":
            x = x + self.pe[positions]
        return self.dropout(x), positions

    def _head(self, x: Tensor) -> Tensor:
        if self.norm is not None:
            x = self.norm(x)
        return self.lm_head(x)  # (B, T, V)

    def forward(self, tokens: Tensor) -> Tensor:
        x, positions = self._embed(tokens, 0)
        for block in self.blocks:
            x, _ = block(x, positions)
        return self._head(x)

    def new_cache(self, batch: int) -> KVCache:
        """An empty cache for ``batch`` sequences, with room for ``max_len`` positions in every block."""
        c = self.config
        return [LayerKVCache(batch, c.kv_heads, c.max_len, c.d_head, self.embed.weight) for _ in self.blocks]

    def forward_step(self, tokens: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Feed only the newest tokens; reuse the cached keys and values of the earlier ones.

        Feeding a sequence in pieces gives the logits of :meth:`forward` on the whole.
        The cache is updated in place and returned; None starts a new one.

        Shape:
            tokens ``(B, n)``; cache from :meth:`new_cache` or an earlier call, holding ``P``
            positions, or None; returns logits ``(B, n, V)`` and the cache, now ``P + n`` positions.
        """
        if cache is None:
            cache = self.new_cache(tokens.shape[0])
        x, positions = self._embed(tokens, cache[0].length)
        for block, layer_cache in zip(self.blocks, cache):
            x, _ = block(x, positions, layer_cache)
        return self._head(x), cache
