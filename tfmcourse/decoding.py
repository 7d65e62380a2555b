"""Training inputs and decoding for encoder-decoder models (lesson 09).

- :func:`teacher_forcing_batch`: the decoder's input and labels from one target
  sequence, so the whole target is learned in one parallel, causally masked pass;
- :func:`label_smoothed_loss`: cross-entropy against a smoothed target
  distribution (equal to ``F.cross_entropy(label_smoothing=, ignore_index=)``);
- :func:`greedy_decode` and :func:`beam_search`: autoregressive generation, one
  token at a time from the model's own outputs, stopping at EOS.

The decoders work with any object that has ``encode(src) -> memory`` and
``decode(tgt_in, memory, src) -> logits (B, T, V)`` (the interface of
``tfmcourse.transformer.Transformer``); they recompute the decoder on the
whole prefix at every step, which is simple and always correct.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def teacher_forcing_batch(tgt: Tensor) -> tuple[Tensor, Tensor]:
    """Split a target batch into the decoder's input and the labels it must predict.

    ``tgt`` is ``[BOS, y1, …, yn, EOS, PAD…]``; the decoder reads
    ``[BOS, y1, …, yn, EOS, PAD…][:-1]`` and at each position must predict the
    *next* token, ``tgt[:, 1:]``: position t sees tokens ``≤ t`` (causal mask)
    and is scored on token ``t + 1``.

    Shape:
        tgt ``(B, T)`` integer, starting with BOS;
        returns ``decoder_input (B, T-1)`` and ``labels (B, T-1)``.
    """
    if tgt.dim() != 2 or tgt.shape[1] < 2:
        raise ValueError(
            f"tgt must be (B, T) with T >= 2 (BOS and at least one token), got {tuple(tgt.shape)}"
        )
    decoder_input = tgt[:, :-1]  # (B, T-1): BOS … last-but-one
    labels = tgt[:, 1:]  # (B, T-1): the next token at every position
    return decoder_input, labels


def label_smoothed_loss(logits: Tensor, target: Tensor, smoothing: float, ignore_index: int) -> Tensor:
    """Mean cross-entropy against ``(1 - ε)·one_hot(target) + ε/V`` over non-ignored rows.

    The smoothed target spreads ``ε`` uniformly over *all* ``V`` classes (the
    true class included, as ``torch.nn.functional.cross_entropy`` does), so
    the true class gets ``1 - ε + ε/V``. Rows whose target is ``ignore_index``
    (padding) contribute nothing and are not counted in the mean.

    Shape:
        logits ``(N, V)``, target ``(N,)`` integer; returns a scalar tensor.
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (N, V) and target (N,), got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    log_probs = torch.log_softmax(logits, dim=-1)  # (N, V)
    keep = target != ignore_index  # (N,)
    safe = torch.where(keep, target, torch.zeros_like(target))  # any valid class for ignored rows
    nll = -log_probs.gather(-1, safe[:, None]).squeeze(-1)  # (N,)  -log p(true class)
    uniform = -log_probs.mean(dim=-1)  # (N,)  cross-entropy with the uniform distribution
    per_row = (1.0 - smoothing) * nll + smoothing * uniform  # (N,)
    return per_row[keep].sum() / keep.sum()


def _pad_after_eos(tokens: Tensor, eos_id: int, pad_id: int) -> Tensor:
    """Replace everything after each row's first EOS by ``pad_id``."""
    is_eos = tokens == eos_id  # (B, L)
    after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first EOS
    return tokens.masked_fill(after, pad_id)


@torch.no_grad()
def greedy_decode(model: Any, src: Tensor, max_len: int, bos_id: int, eos_id: int, pad_id: int) -> Tensor:
    """Generate by always taking the most likely next token.

    Starts every row from BOS, feeds the model its own previous outputs, and
    stops once every row has produced EOS (or after ``max_len`` tokens).
    Put the model in eval mode first (dropout off).

    Shape:
        src ``(B, S)``; returns ``(B, L)`` long with ``L <= max_len``: the
        generated tokens *without* BOS, each row ending with its EOS and padded
        with ``pad_id`` after it; a row with no EOS runs to ``max_len``.
    """
    memory = model.encode(src)
    B = src.shape[0]
    ys = torch.full((B, 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
    for _ in range(max_len):
        logits = model.decode(ys, memory, src)  # (B, t, V)
        next_tok = logits[:, -1].argmax(dim=-1)  # (B,)  the last position predicts the next token
        next_tok = next_tok.masked_fill(done, pad_id)  # finished rows only get padding
        ys = torch.cat([ys, next_tok[:, None]], dim=1)  # (B, t + 1)
        done = done | (next_tok == eos_id)
        if bool(done.all()):
            break
    return ys[:, 1:]  # (B, L) without BOS


@torch.no_grad()
def beam_search(
    model: Any,
    src: Tensor,
    max_len: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    beam_size: int = 4,
    length_penalty: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Keep the ``beam_size`` most likely prefixes per row instead of one.

    Hypotheses that emit EOS are finished; the search stops when every beam
    of every row is finished or after ``max_len`` tokens. The winner of a row
    maximises the length-normalised log-probability
    ``sum(log p) / length ** length_penalty`` (length counts the EOS), so
    short hypotheses are not preferred merely for having fewer factors < 1.
    With ``beam_size=1`` this is :func:`greedy_decode`.

    Shape:
        src ``(B, S)``; returns ``tokens (B, L)`` long, ``L <= max_len``
        (same layout as :func:`greedy_decode`), and ``scores (B,)`` float,
        the normalised log-probability of each returned sequence.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    B, K = src.shape[0], beam_size
    memory = model.encode(src)
    mem = memory.repeat_interleave(K, dim=0)  # (B*K, S, D)
    src_k = src.repeat_interleave(K, dim=0)  # (B*K, S)
    seqs = torch.full((B * K, 1), bos_id, dtype=torch.long, device=src.device)  # (B*K, 1)
    logp = torch.full((B, K), float("-inf"), device=src.device)  # (B, K)
    logp[:, 0] = 0.0  # one live hypothesis per row at the start (the others are copies)
    finished = torch.zeros(B * K, dtype=torch.bool, device=src.device)  # (B*K,)
    lengths = torch.zeros(B * K, device=src.device)  # (B*K,) tokens generated incl. EOS
    for _ in range(max_len):
        logits = model.decode(seqs, mem, src_k)[:, -1]  # (B*K, V)
        V = logits.shape[-1]
        step_lp = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        # A finished hypothesis can only be extended by PAD, at no cost.
        step_lp = torch.where(finished[:, None], torch.full_like(step_lp, float("-inf")), step_lp)
        step_lp[finished, pad_id] = 0.0
        total = logp.reshape(B * K, 1) + step_lp  # (B*K, V)
        new_len = lengths[:, None] + (~finished[:, None]).float()  # (B*K, 1)
        # rank by the normalised score so finished short and live long hypotheses compete fairly
        ranked = total / new_len.clamp_min(1.0) ** length_penalty  # (B*K, V)
        _top, idx = ranked.reshape(B, K * V).topk(K, dim=-1)  # (B, K)
        beam, tok = idx // V, idx % V  # (B, K)
        parent = (torch.arange(B, device=src.device)[:, None] * K + beam).reshape(-1)  # (B*K,)
        seqs = torch.cat([seqs[parent], tok.reshape(-1, 1)], dim=1)  # (B*K, t + 1)
        logp = total.reshape(B, K * V).gather(1, idx)  # (B, K)
        lengths = new_len.reshape(-1)[parent]
        finished = finished[parent] | (tok.reshape(-1) == eos_id)
        if bool(finished.all()):
            break
    score = logp / lengths.reshape(B, K).clamp_min(1.0) ** length_penalty  # (B, K)
    best = score.argmax(dim=-1)  # (B,)
    rows = torch.arange(B, device=src.device) * K + best
    out = _pad_after_eos(seqs[rows, 1:], eos_id, pad_id)  # (B, L)
    keep = (
        int((out != pad_id).any(dim=0).nonzero().max()) + 1 if bool((out != pad_id).any()) else out.shape[1]
    )
    return out[:, :keep], score.gather(1, best[:, None]).squeeze(1)


# ---------------------------------------------------------------- sampling (lesson 10)


def next_token_distribution(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """The distribution the next token is drawn from, after temperature, top-k and top-p.

    In this order: divide the logits by ``temperature`` (``0`` means greedy: a
    one-hot on the argmax, the lowest index on ties); ``top_k`` keeps every token
    whose logit is ≥ the k-th largest (ties at the boundary are all kept);
    ``top_p`` then keeps, of what top-k left (renormalised), the smallest set of
    most likely tokens whose probability reaches ``top_p``. Every other token
    gets exactly 0 and the kept ones are renormalised.

    Shape:
        logits ``(B, V)`` (any leading axes); returns probabilities of the same shape.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None to keep every token), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (or None), got {top_p}")
    V = logits.shape[-1]
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), V).to(logits.dtype)
    scaled = logits / temperature  # (B, V)
    keep = torch.ones_like(scaled, dtype=torch.bool)  # (B, V)
    if top_k is not None and top_k < V:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest logit
        keep = scaled >= kth
    if top_p is not None and top_p < 1.0:
        probs = torch.softmax(scaled.masked_fill(~keep, float("-inf")), dim=-1)  # (B, V)
        sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)  # (B, V)
        mass_before = sorted_p.cumsum(dim=-1) - sorted_p  # (B, V): probability of the likelier tokens
        keep_sorted = mass_before < top_p  # the first token is always kept
        keep = keep & torch.zeros_like(keep).scatter(-1, order, keep_sorted)
    return torch.softmax(scaled.masked_fill(~keep, float("-inf")), dim=-1)


@torch.no_grad()
def sample(
    model: Any,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Generate from a causal language model ``model(tokens (B, T)) -> logits (B, T, V)``.

    Recomputes the model on the whole prefix at every step (lesson 11 caches
    the keys and values instead). Rows stop at their first ``eos_id``; after it
    they are padded with ``pad_id``.

    Shape:
        prompt ``(B, P)`` long; returns the generated tokens ``(B, max_new_tokens)``
        (without the prompt).
    """
    tokens = prompt
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)  # (B,)
    for _ in range(max_new_tokens):
        logits = model(tokens)[:, -1]  # (B, V): the last position predicts the next token
        probs = next_token_distribution(logits, temperature, top_k, top_p)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
        nxt = nxt.masked_fill(done, pad_id)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)  # (B, t + 1)
        done = done | (nxt == eos_id)
    return tokens[:, prompt.shape[1] :]
