"""The Transformer (lesson 08): feed-forward, encoder and decoder layers, stacks, the full model.

Everything speaks ``torch.nn.Transformer``'s vocabulary (batch-first, ``d_model``,
``norm_first``, ``*_key_padding_mask``, masks with ``True`` = blocked), so a
layer copied into its torch twin gives the same numbers (see
:mod:`tfmcourse.torch_interop`).

>>> cfg = TransformerConfig(src_vocab=40, tgt_vocab=30)
>>> model = Transformer(cfg)
>>> logits = model(src, tgt_in)                        # (B, T, tgt_vocab)
>>> memory = model.encode(src)                         # (B, S, d_model)
>>> logits, cross = model.decode(tgt_in, memory, src, need_weights=True)   # cross: [(B, H, T, S)] per layer
>>> step_logits, cache = model.decode_step(tokens, memory, src, cache)     # incremental decoding
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from tfmcourse.attention import MultiHeadAttention
from tfmcourse.masks import causal_mask, padding_mask
from tfmcourse.positional import sinusoidal_positional_encoding

__all__ = [
    "Decoder",
    "DecoderCache",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "LayerKVCache",
    "Transformer",
    "TransformerConfig",
    "base_config",
    "count_model_parameters",
]


# ---------------------------------------------------------------- layers


class FeedForward(nn.Module):
    """Position-wise feed-forward network ``linear2(ReLU(linear1(x)))``.

    Dropout sits after the ReLU, as in ``nn.TransformerEncoderLayer``.

    Shape:
        x ``(..., d_model)``; returns ``(..., d_model)``; the hidden layer is ``(..., d_ff)``.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)  # W_1, b_1
        self.linear2 = nn.Linear(d_ff, d_model)  # W_2, b_2
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        hidden = torch.relu(self.linear1(x))  # (..., d_ff)
        return self.linear2(self.dropout(hidden))  # (..., d_model)


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each wrapped in a residual connection and a LayerNorm.

    Post-LN (the paper, default): ``x = norm(x + sublayer(x))``.
    Pre-LN (``norm_first=True``): ``x = x + sublayer(norm(x))``.
    Equal to ``nn.TransformerEncoderLayer(batch_first=True, norm_first=...)``.

    Shape:
        x ``(B, S, D)``; src_key_padding_mask ``(B, S)`` bool, True at pads; returns ``(B, S, D)``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x  # (B, S, D)

    def _sa_block(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        return self.dropout1(self.self_attn(x, x, x, key_padding_mask=key_padding_mask))

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.ff(x))


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder memory, feed-forward.

    Each sub-layer has its residual connection and LayerNorm (post-LN by default,
    pre-LN with ``norm_first=True``). Equal to
    ``nn.TransformerDecoderLayer(batch_first=True, norm_first=...)``, whose
    ``multihead_attn`` is called ``cross_attn`` here.

    Shape:
        y ``(B, T, D)``; memory ``(B, S, D)``; tgt_mask ``(T, T)`` bool (causal);
        tgt_key_padding_mask ``(B, T)``; memory_key_padding_mask ``(B, S)``; returns
        ``(B, T, D)`` and, with ``need_weights=True``, the cross-attention weights ``(B, H, T, S)``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ):
        def self_attention(x: Tensor) -> Tensor:
            return self.self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask)

        def cross_attention(x: Tensor) -> tuple[Tensor, Tensor]:
            # queries from the decoder, keys and values from the encoder's memory
            return self.cross_attn(
                x, memory, memory, key_padding_mask=memory_key_padding_mask, need_weights=True
            )

        x, weights = self._layer(y, self_attention, cross_attention)
        return (x, weights) if need_weights else x  # (B, T, D), (B, H, T, S)

    def forward_step(
        self,
        y_new: Tensor,
        memory_kv: tuple[Tensor, Tensor],
        cache: LayerKVCache | None,
        attn_mask: Tensor | None,
        tgt_key_padding_mask: Tensor | None,
        memory_key_padding_mask: Tensor | None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Process only the ``n`` newest target positions, attending to cached keys/values.

        The same layer as ``forward``; only where attention gets its keys and values
        differs: the earlier positions' from ``cache``, the memory's from ``memory_kv``
        (``cross_attn.project_kv(memory, memory)``, computed once).

        Shape:
            y_new ``(B, n, D)``; memory_kv two ``(B, H, S, d_head)``; cache holding ``P``
            positions (the new ones are written into it) or None; attn_mask ``(n, P+n)``;
            tgt_key_padding_mask ``(B, P+n)``; returns ``(B, n, D)`` and the self-attention
            keys/values of all positions ``(B, H, P+n, d_head)``.
        """
        new_kv = []

        def self_attention(x: Tensor) -> Tensor:
            k, v = self.self_attn.project_kv(x, x)  # (B, H, n, d_head)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, H, P+n, d_head)
            new_kv.append((k, v))
            return self.self_attn.attend(x, k, v, attn_mask, tgt_key_padding_mask)[0]

        def cross_attention(x: Tensor) -> tuple[Tensor, Tensor]:
            return self.cross_attn.attend(x, *memory_kv, key_padding_mask=memory_key_padding_mask)

        x, _ = self._layer(y_new, self_attention, cross_attention)
        return x, new_kv[0]

    def _layer(
        self,
        x: Tensor,
        self_attention: Callable[[Tensor], Tensor],
        cross_attention: Callable[[Tensor], tuple[Tensor, Tensor]],
    ) -> tuple[Tensor, Tensor]:
        """The three residual sub-layers, given the two attentions; returns ``x`` and the cross weights."""
        if self.norm_first:
            x = x + self.dropout1(self_attention(self.norm1(x)))
            cross, weights = cross_attention(self.norm2(x))
            x = x + self.dropout2(cross)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self.dropout1(self_attention(x)))
            cross, weights = cross_attention(x)
            x = self.norm2(x + self.dropout2(cross))
            x = self.norm3(x + self._ff_block(x))
        return x, weights  # (B, n, D), (B, H, n, S)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout3(self.ff(x))


# ---------------------------------------------------------------- stacks


class Encoder(nn.Module):
    """``num_layers`` encoder layers, each with its own parameters.

    A final LayerNorm follows the stack when ``norm_first`` (pre-LN leaves the
    residual stream un-normalised); post-LN layers already end with one.

    Shape:
        x ``(B, S, D)``; src_key_padding_mask ``(B, S)``; returns ``(B, S, D)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        num_layers: int,
        dropout: float = 0.0,
        norm_first: bool = False,
    ):
        super().__init__()
        # N fresh layers: independent parameters, independently initialised
        # (nn.ModuleList([layer] * N) would be one layer, with its parameters, applied N times)
        self.layers = nn.ModuleList(
            [EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(self, x: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=src_key_padding_mask)
        return self.norm(x) if self.norm is not None else x


class Decoder(nn.Module):
    """``num_layers`` decoder layers with independent parameters; every layer attends to the memory.

    Shape:
        y ``(B, T, D)``; memory ``(B, S, D)``; masks as :class:`DecoderLayer`; returns
        ``(B, T, D)`` and, with ``need_weights``, a list of cross-attention weights ``(B, H, T, S)``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        num_layers: int,
        dropout: float = 0.0,
        norm_first: bool = False,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(
        self,
        y: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ):
        cross_weights = []
        for layer in self.layers:
            y, w = layer(
                y,
                memory,
                tgt_mask=tgt_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                need_weights=True,
            )
            cross_weights.append(w)
        if self.norm is not None:
            y = self.norm(y)
        return (y, cross_weights) if need_weights else y


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of a :class:`Transformer`. Validates itself; ``tiny()`` has distinct odd sizes for tests.

    ``tie_weights`` shares the target embedding with the output projection and,
    when the two vocabularies are the same size (a shared vocabulary, as in the
    paper), the source embedding too.
    """

    src_vocab: int
    tgt_vocab: int
    d_model: int = 64
    n_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    max_len: int = 64
    norm_first: bool = False
    tie_weights: bool = False
    pad_id: int = 0

    def __post_init__(self):
        for name in ("src_vocab", "tgt_vocab", "d_model", "n_heads", "d_ff", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"TransformerConfig.{name} must be a positive integer, got {value!r}")
        for name in ("num_encoder_layers", "num_decoder_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TransformerConfig.{name} must be an integer >= 1, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                f"(each head gets d_model // n_heads features)"
            )
        if self.d_model % 2 != 0:
            raise ValueError(
                f"d_model={self.d_model} must be even: the sinusoidal positional encoding pairs "
                f"sin and cos features"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (0 <= self.pad_id < min(self.src_vocab, self.tgt_vocab)):
            raise ValueError(
                f"pad_id={self.pad_id} must be a token id of both vocabularies "
                f"(0 <= pad_id < {min(self.src_vocab, self.tgt_vocab)})"
            )

    @classmethod
    def tiny(cls, src_vocab: int = 11, tgt_vocab: int = 13, **overrides) -> TransformerConfig:
        """Distinct odd sizes (d_model 24, 3 heads, d_ff 37) so a transposed axis fails loudly."""
        sizes = dict(
            d_model=24,
            n_heads=3,
            d_ff=37,
            num_encoder_layers=2,
            num_decoder_layers=2,
            dropout=0.0,
            max_len=32,
        )
        sizes.update(overrides)
        return cls(src_vocab=src_vocab, tgt_vocab=tgt_vocab, **sizes)

    def replace(self, **changes) -> TransformerConfig:
        return replace(self, **changes)


def base_config() -> TransformerConfig:
    """The paper's base model: d_model 512, 8 heads, d_ff 2048, 6+6 layers, shared 37000-token vocabulary."""
    return TransformerConfig(
        src_vocab=37000,
        tgt_vocab=37000,
        d_model=512,
        n_heads=8,
        num_encoder_layers=6,
        num_decoder_layers=6,
        d_ff=2048,
        dropout=0.1,
        max_len=512,
        norm_first=False,
        tie_weights=True,
    )


class LayerKVCache:
    """One layer's keys and values, in tensors allocated once for ``capacity`` positions.

    A step writes only its new keys and values where the filled part ends
    (``k_cache[:, :, t] = k``) and attends over the filled part, a view: nothing
    cached before is copied. Appending with ``torch.cat`` instead would copy the
    whole cache at every step. Inference engines likewise reserve their caches up
    front, for the longest sequence they serve.

    Shape:
        ``k_cache``, ``v_cache`` ``(B, G, capacity, d_head)``; ``keys`` and ``values``,
        the ``length`` positions filled so far, ``(B, G, length, d_head)``.
    """

    def __init__(self, batch: int, kv_heads: int, capacity: int, d_head: int, like: Tensor):
        self.k_cache = like.new_zeros(batch, kv_heads, capacity, d_head)  # like: dtype and device
        self.v_cache = like.new_zeros(batch, kv_heads, capacity, d_head)
        self.length = 0  # positions filled so far

    @property
    def keys(self) -> Tensor:
        return self.k_cache[:, :, : self.length]  # (B, G, length, d_head), a view

    @property
    def values(self) -> Tensor:
        return self.v_cache[:, :, : self.length]  # (B, G, length, d_head), a view

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the keys and values of ``n`` new positions after the cached ones; return all of them.

        Shape:
            k, v ``(B, G, n, d_head)``; returns two ``(B, G, length + n, d_head)`` views.
        """
        start, end = self.length, self.length + k.shape[2]
        if end > self.k_cache.shape[2]:
            raise ValueError(f"the cache holds {self.k_cache.shape[2]} positions; cannot fill up to {end}")
        self.k_cache[:, :, start:end] = k  # in place: the cached positions are not copied
        self.v_cache[:, :, start:end] = v
        self.length = end
        return self.keys, self.values


@dataclass
class DecoderCache:
    """What incremental decoding keeps between steps (updated in place by each step).

    ``memory_kv``: per decoder layer, the cross-attention keys and values of the
    memory ``(B, H, S, d_head)``, computed once. ``self_kv``: per layer, a
    :class:`LayerKVCache` of the self-attention keys and values of every target
    position so far ``(B, H, P, d_head)``.
    ``tgt_pad``: ``(B, P)`` True where a fed target token was the pad.
    """

    memory_kv: list[tuple[Tensor, Tensor]]
    self_kv: list[LayerKVCache] = field(default_factory=list)
    tgt_pad: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.tgt_pad is None else self.tgt_pad.shape[1]


class Transformer(nn.Module):
    """The encoder-decoder Transformer: embeddings + positions, encoder, decoder, output projection.

    ``encode(src)`` and ``decode(tgt_in, memory, src)`` build their own masks from
    ``config.pad_id`` (and the causal mask), so callers pass only token ids.

    Shape:
        src ``(B, S)`` long; tgt_in ``(B, T)`` long; ``forward`` returns logits ``(B, T, tgt_vocab)``.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"Transformer needs a TransformerConfig, got {type(config).__name__}")
        c = self.config = config
        self.src_embed = nn.Embedding(c.src_vocab, c.d_model)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.d_model)
        self.register_buffer("pe", sinusoidal_positional_encoding(c.max_len, c.d_model), persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = Encoder(c.d_model, c.n_heads, c.d_ff, c.num_encoder_layers, c.dropout, c.norm_first)
        self.decoder = Decoder(c.d_model, c.n_heads, c.d_ff, c.num_decoder_layers, c.dropout, c.norm_first)
        self.generator = nn.Linear(c.d_model, c.tgt_vocab)  # pre-softmax projection
        self._reset_parameters()
        if c.tie_weights:
            self.generator.weight = self.tgt_embed.weight
            if c.src_vocab == c.tgt_vocab:
                self.src_embed.weight = self.tgt_embed.weight

    def _reset_parameters(self) -> None:
        # Linear layers as nn.Transformer (xavier-uniform); embeddings N(0, 1/d_model), so that
        # embedding * sqrt(d_model) has unit variance, like the positional encoding.
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name:
                nn.init.xavier_uniform_(p)
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=self.config.d_model**-0.5)
        nn.init.zeros_(self.generator.bias)

    # ---- pieces

    def _embed(self, tokens: Tensor, embedding: nn.Embedding, offset: int = 0) -> Tensor:
        T = tokens.shape[1]
        if offset + T > self.config.max_len:
            raise ValueError(
                f"sequence of length {offset + T} is longer than max_len={self.config.max_len} "
                f"of the positional table: raise TransformerConfig.max_len"
            )
        x = embedding(tokens) * math.sqrt(self.config.d_model)  # (B, T, D)
        return self.dropout(x + self.pe[offset : offset + T])  # (B, T, D)

    def _check_tokens(self, tokens: Tensor, name: str) -> None:
        if tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
            raise ValueError(
                f"{name} must be a (B, length) integer tensor of token ids, "
                f"got {tuple(tokens.shape)} {tokens.dtype}"
            )

    def encode(self, src: Tensor) -> Tensor:
        """Shape: src ``(B, S)``; returns memory ``(B, S, D)``."""
        self._check_tokens(src, "src")
        x = self._embed(src, self.src_embed)
        return self.encoder(x, src_key_padding_mask=padding_mask(src, self.config.pad_id))

    def decode(self, tgt_in: Tensor, memory: Tensor, src: Tensor, need_weights: bool = False):
        """Logits for every target position, in one parallel pass (causal mask inside).

        Shape:
            tgt_in ``(B, T)``; memory ``(B, S, D)``; src ``(B, S)`` (for its padding mask);
            returns logits ``(B, T, tgt_vocab)`` and, with ``need_weights``, a list with one
            cross-attention weight tensor ``(B, H, T, S)`` per decoder layer.
        """
        self._check_tokens(tgt_in, "tgt_in")
        y = self._embed(tgt_in, self.tgt_embed)
        masks = dict(
            tgt_mask=causal_mask(tgt_in.shape[1], device=tgt_in.device),
            tgt_key_padding_mask=padding_mask(tgt_in, self.config.pad_id),
            memory_key_padding_mask=padding_mask(src, self.config.pad_id),
        )
        if not need_weights:
            return self.generator(self.decoder(y, memory, **masks))  # (B, T, V)
        out, cross = self.decoder(y, memory, **masks, need_weights=True)
        return self.generator(out), cross

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Shape: src ``(B, S)``, tgt_in ``(B, T)``; returns logits ``(B, T, tgt_vocab)``."""
        return self.decode(tgt_in, self.encode(src), src)

    def decode_step(
        self, tokens: Tensor, memory: Tensor, src: Tensor, cache: DecoderCache | None = None
    ) -> tuple[Tensor, DecoderCache]:
        """Incremental decoding: feed only the newest target tokens, reuse past keys/values.

        ``tokens`` are the target tokens at positions ``cache.length ... cache.length+n-1``.
        Feeding a sequence in pieces gives the same logits as :meth:`decode` on the whole.

        Shape:
            tokens ``(B, n)``; memory ``(B, S, D)``; src ``(B, S)``; returns logits
            ``(B, n, tgt_vocab)`` and the :class:`DecoderCache`, updated in place.
        """
        self._check_tokens(tokens, "tokens")
        if cache is None:
            c = self.config
            cache = DecoderCache(
                memory_kv=[layer.cross_attn.project_kv(memory, memory) for layer in self.decoder.layers],
                self_kv=[
                    LayerKVCache(tokens.shape[0], c.n_heads, c.max_len, c.d_model // c.n_heads, memory)
                    for _ in self.decoder.layers
                ],
            )
        P, n = cache.length, tokens.shape[1]
        pad = padding_mask(tokens, self.config.pad_id)
        tgt_pad = pad if cache.tgt_pad is None else torch.cat([cache.tgt_pad, pad], dim=1)  # (B, P+n)
        # new query i (position P+i) may see keys 0 .. P+i
        attn_mask = torch.ones(n, P + n, dtype=torch.bool, device=tokens.device).triu(P + 1)  # (n, P+n)
        mem_pad = padding_mask(src, self.config.pad_id)
        y = self._embed(tokens, self.tgt_embed, offset=P)  # (B, n, D)
        for layer, memory_kv, layer_cache in zip(self.decoder.layers, cache.memory_kv, cache.self_kv):
            y, _ = layer.forward_step(y, memory_kv, layer_cache, attn_mask, tgt_pad, mem_pad)
        cache.tgt_pad = tgt_pad
        if self.decoder.norm is not None:
            y = self.decoder.norm(y)
        return self.generator(y), cache


# ---------------------------------------------------------------- parameter counts


def count_model_parameters(config: TransformerConfig) -> int:
    """Parameters of ``Transformer(config)`` (tied weights counted once), without allocating them."""
    with torch.device("meta"):
        model = Transformer(config)
    return sum(p.numel() for p in model.parameters())
