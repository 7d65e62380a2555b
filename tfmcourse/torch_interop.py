"""The course's modules and their ``torch.nn`` twins: converting weights both ways.

The course names things the way the lessons do: three projections ``q_proj``,
``k_proj``, ``v_proj`` where torch keeps one stacked ``in_proj_weight``, the
cross-attention ``cross_attn`` where torch says ``multihead_attn``, and the
feed-forward block ``ff.linear1``/``ff.linear2`` where torch's layers hold
``linear1``/``linear2`` directly. Everything else has the same name, so a
weight is renamed (and the ``in_proj`` split or stacked) and copied; the
parity tests then compare the two modules' outputs.

>>> ours = load_from_torch(MultiHeadAttention(24, 3), nn.MultiheadAttention(24, 3, batch_first=True))
>>> twin = to_torch(EncoderLayer(24, 3, 37))          # an nn.TransformerEncoderLayer, same weights
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tfmcourse.attention import MultiHeadAttention
from tfmcourse.transformer import Decoder, DecoderLayer, Encoder, EncoderLayer, Transformer, TransformerConfig

__all__ = ["TorchTransformer", "load_from_torch", "to_torch", "weights_from_torch"]

_QKV = ("q_proj", "k_proj", "v_proj")


def _course_key(torch_key: str) -> str:
    """A torch parameter name in the course's vocabulary (``in_proj_*`` is handled by the callers)."""
    key = torch_key.replace("multihead_attn.", "cross_attn.")
    for lin in ("linear1.", "linear2."):
        if key.startswith(lin) or f".{lin}" in key:
            key = key.replace(lin, "ff." + lin)
    return key


def weights_from_torch(module: nn.Module) -> dict[str, Tensor]:
    """Parameters of a torch attention or Transformer module, under the course's names.

    Works for ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``/``DecoderLayer``,
    ``nn.TransformerEncoder``/``Decoder`` and ``nn.Transformer``: ``in_proj_weight`` becomes
    ``q_proj/k_proj/v_proj.weight``, ``multihead_attn`` becomes ``cross_attn``,
    ``linear1/linear2`` become ``ff.linear1/ff.linear2``. Returns detached copies.
    """
    out: dict[str, Tensor] = {}
    for key, value in module.state_dict().items():
        value = value.detach().clone()
        if key.endswith(("in_proj_weight", "in_proj_bias")):
            prefix, kind = key.rsplit("in_proj_", 1)
            for name, part in zip(_QKV, value.chunk(3, dim=0)):
                out[f"{_course_key(prefix)}{name}.{kind}"] = part
        else:
            out[_course_key(key)] = value
    return out


def _torch_state_dict(module: nn.Module, twin: nn.Module) -> dict[str, Tensor]:
    """``module``'s weights keyed like ``twin``'s state dict (the inverse of :func:`weights_from_torch`)."""
    mine = module.state_dict()
    out = {}
    for key in twin.state_dict():
        if key.endswith(("in_proj_weight", "in_proj_bias")):
            prefix, kind = key.rsplit("in_proj_", 1)
            parts = [mine[f"{_course_key(prefix)}{name}.{kind}"] for name in _QKV]
            out[key] = torch.cat(parts).detach().clone()
        else:
            out[key] = mine[_course_key(key)].detach().clone()
    return out


def load_from_torch(module: nn.Module, torch_module: nn.Module) -> nn.Module:
    """Copy the weights of ``torch_module`` (its torch twin) into ``module``; returns ``module``.

    ``module`` is a :class:`~tfmcourse.attention.MultiHeadAttention` (from an
    ``nn.MultiheadAttention``), an :class:`EncoderLayer`, :class:`DecoderLayer`,
    :class:`Encoder`, :class:`Decoder` or :class:`Transformer` (whose encoder and decoder get
    the weights of an ``nn.Transformer``; embeddings and the output projection are not in
    torch's module).
    """
    if isinstance(module, Transformer):
        if not isinstance(torch_module, nn.Transformer):
            raise TypeError(f"a Transformer loads from an nn.Transformer, got {type(torch_module).__name__}")
        load_from_torch(module.encoder, torch_module.encoder)
        load_from_torch(module.decoder, torch_module.decoder)
        return module
    if isinstance(torch_module, nn.MultiheadAttention) and torch_module.in_proj_weight is None:
        raise ValueError(
            "the torch module has separate kdim/vdim projections; only kdim == vdim == embed_dim is supported"
        )
    weights = weights_from_torch(torch_module)
    mine, theirs = set(module.state_dict()), set(weights)
    if mine != theirs:
        extra = sorted(theirs - mine)
        hint = ""
        if any(k.startswith("norm.") for k in extra):
            hint = (
                " (torch's stack has a final LayerNorm but this post-LN stack has none: "
                "nn.Transformer adds one even when norm_first=False; use to_torch(), which leaves it out)"
            )
        elif any(k.endswith(".bias") for k in (theirs ^ mine)):
            hint = " (one module has biases and the other does not: bias=...)"
        raise ValueError(
            f"cannot load {type(torch_module).__name__} into {type(module).__name__}: "
            f"missing {sorted(mine - theirs)}, unexpected {extra}{hint}"
        )
    sizes = {k: v.shape for k, v in module.state_dict().items()}
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(sizes[k])}" for k, v in weights.items() if v.shape != sizes[k]]
    if wrong:
        raise ValueError(
            f"cannot load {type(torch_module).__name__} into {type(module).__name__}: "
            f"sizes differ (torch vs this module) for {', '.join(wrong[:3])}"
        )
    module.load_state_dict(weights)
    return module


def _layer_kwargs(layer: EncoderLayer | DecoderLayer) -> dict:
    attn = layer.self_attn
    return dict(
        d_model=attn.d_model,
        nhead=attn.n_heads,
        dim_feedforward=layer.ff.linear1.out_features,
        dropout=layer.dropout1.p,
        batch_first=True,
        norm_first=layer.norm_first,
    )


def _twin(module: nn.Module) -> nn.Module:
    """A torch module with ``module``'s sizes and options (its own fresh weights)."""
    if isinstance(module, MultiHeadAttention):
        return nn.MultiheadAttention(
            module.d_model,
            module.n_heads,
            dropout=module.dropout.p,
            bias=module.q_proj.bias is not None,
            batch_first=True,
        )
    if isinstance(module, EncoderLayer):
        return nn.TransformerEncoderLayer(**_layer_kwargs(module))
    if isinstance(module, DecoderLayer):
        return nn.TransformerDecoderLayer(**_layer_kwargs(module))
    if isinstance(module, (Encoder, Decoder)):
        norm = None if module.norm is None else nn.LayerNorm(module.norm.normalized_shape)
        layer, n = _twin(module.layers[0]), len(module.layers)
        if isinstance(module, Encoder):
            return nn.TransformerEncoder(layer, n, norm=norm, enable_nested_tensor=False)
        return nn.TransformerDecoder(layer, n, norm=norm)
    if isinstance(module, Transformer):
        c = module.config
        return nn.Transformer(
            d_model=c.d_model,
            nhead=c.n_heads,
            num_encoder_layers=c.num_encoder_layers,
            num_decoder_layers=c.num_decoder_layers,
            dim_feedforward=c.d_ff,
            dropout=c.dropout,
            batch_first=True,
            norm_first=c.norm_first,
            custom_encoder=_twin(module.encoder),
            custom_decoder=_twin(module.decoder),
        )
    raise TypeError(f"no torch twin for {type(module).__name__}")


def to_torch(module: nn.Module) -> nn.Module:
    """A torch twin of ``module`` holding the same weights (for parity tests and benchmarks).

    MultiHeadAttention → ``nn.MultiheadAttention``, EncoderLayer → ``nn.TransformerEncoderLayer``,
    DecoderLayer → ``nn.TransformerDecoderLayer``, Encoder/Decoder → ``nn.TransformerEncoder``/
    ``Decoder``, Transformer → ``nn.Transformer`` (without the final LayerNorms torch adds by
    default when the model is post-LN). All batch-first, ReLU, eps 1e-5.
    """
    twin = _twin(module)
    if isinstance(module, Transformer):  # torch's model holds only the two stacks
        twin.encoder.load_state_dict(_torch_state_dict(module.encoder, twin.encoder))
        twin.decoder.load_state_dict(_torch_state_dict(module.decoder, twin.decoder))
    else:
        twin.load_state_dict(_torch_state_dict(module, twin))
    return twin


class TorchTransformer(Transformer):
    """The same model with ``torch.nn``'s encoder and decoder stacks inside (for benchmarks).

    Embeddings, positional encoding, output layer and the ``encode``/``decode``/``forward``
    interface are :class:`Transformer`'s; the stacks are ``nn.TransformerEncoder``/``Decoder``
    built by :func:`to_torch` from a freshly initialised course model, so with the same seed both
    models start from identical weights. ``decode_step`` and ``need_weights`` are not available
    (torch's decoder returns no attention weights and has no key/value cache).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        self.encoder = to_torch(self.encoder)
        self.decoder = to_torch(self.decoder)

    def decode(self, tgt_in: Tensor, memory: Tensor, src: Tensor, need_weights: bool = False):
        if need_weights:
            raise NotImplementedError("torch.nn.TransformerDecoder does not return attention weights")
        return super().decode(tgt_in, memory, src)

    def decode_step(self, *args, **kwargs):
        raise NotImplementedError("TorchTransformer has no incremental decoding: use decode() on the prefix")
