"""Progressive hints for every exercise: the idea, then where to look, then nearly the code.

``hint("scaled_dot_product_attention")`` (or ``hint(6.3)``) prints the next
hint of that exercise each time it is called; a failed check says how to ask.
"""

from __future__ import annotations

HINTS: dict[str, tuple[str, ...]] = {
    # lesson 01
    "rnn_cell": (
        "One RNN step mixes the new input and the previous state, each through its own weight "
        "matrix plus its own bias, and squashes the sum with tanh.",
        "torch.nn.RNNCell's documentation gives the formula: h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh). "
        "weight_ih is (H, I) and weight_hh is (H, H): each is used transposed.",
        "torch.tanh(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh)",
    ),
    "last_hidden_state": (
        "Padded sequences keep running past their end: the state you want is the one after the "
        "last *real* token, at position lengths[b] - 1, not the last column of the tensor.",
        "outputs is (B, S, H). For each row b you need one time index, so build a (B,) index "
        "tensor and use advanced indexing with torch.arange(B) for the batch axis.",
        "outputs[torch.arange(outputs.shape[0]), lengths - 1]   # (B, H)",
    ),
    # lesson 02
    "additive_scores": (
        "Bahdanau's energy compares the query with every key through a small one-layer network: "
        "project both into the same A-dimensional space, add, tanh, then score with v.",
        "W_query @ q gives (B, A); W_key applied to every key gives (B, S, A). Add them by "
        "broadcasting the query over the S axis (unsqueeze(1)), then a dot product with v over A.",
        "torch.tanh((query @ W_query.T).unsqueeze(1) + keys @ W_key.T) @ v   # (B, S)",
    ),
    "masked_softmax": (
        "A blocked position must get exactly 0 weight: remove it *before* the softmax, so the "
        "others still sum to 1. True in the mask means blocked.",
        "scores.masked_fill(mask, float('-inf')) then softmax over dim=-1. A row with every "
        "position blocked becomes all -inf and the softmax gives NaN: replace those rows by 0.",
        "w = torch.softmax(scores.masked_fill(mask, float('-inf')), dim=-1)\n"
        "return w.nan_to_num(0.0)   # or torch.where(mask.all(-1, keepdim=True), 0.0, w)",
    ),
    "bahdanau_attention": (
        "Attention = scores → weights → weighted average: score every key against the query, turn the "
        "scores into weights that sum to 1 over the keys, and average the values with them.",
        "Reuse your additive_scores and masked_softmax from above (the key_padding_mask is the mask). "
        "The context is a weighted sum over S: weights (B, S) against values (B, S, Dv).",
        "weights = masked_softmax(additive_scores(query, keys, W_query, W_key, v), key_padding_mask)\n"
        "context = (weights.unsqueeze(-1) * values).sum(1)   # or torch.bmm(weights.unsqueeze(1), values)",
    ),
    # lesson 03
    "batch_norm": (
        "Batch norm normalises each *channel* (the last axis) with statistics taken over everything "
        "else: the batch and, for sequences, the time axis.",
        "Take mean and variance over every axis but the last: dims = tuple(range(x.dim() - 1)). "
        "Training mode uses the biased variance (unbiased=False / correction=0), and eps goes inside "
        "the square root.",
        "mean = x.mean(dims, keepdim=True); var = x.var(dims, keepdim=True, unbiased=False)\n"
        "return gamma * (x - mean) / torch.sqrt(var + eps) + beta",
    ),
    "layer_norm": (
        "Layer norm normalises each token's vector on its own: statistics over the last axis only, "
        "so nothing depends on the batch or on other positions.",
        "Mean and variance over dim=-1 with keepdim=True; biased variance; eps inside the square root; "
        "then gamma and beta of shape (D,) broadcast along the last axis, as in F.layer_norm.",
        "mean = x.mean(-1, keepdim=True); var = x.var(-1, keepdim=True, unbiased=False)\n"
        "return gamma * (x - mean) / torch.sqrt(var + eps) + beta",
    ),
    # lesson 04
    "residual_sublayer": (
        "A residual sub-layer adds its input back: x + f(x). The only question is where the norm "
        "goes: after the sum (post-LN, the 2017 paper) or on the sub-layer's input (pre-LN).",
        "Post-LN: norm(x + sublayer(x)). Pre-LN (norm_first=True): x + sublayer(norm(x)) — the residual "
        "path itself is never normalised.",
        "if norm_first:\n    return x + sublayer(norm(x))\nreturn norm(x + sublayer(x))",
    ),
    # lesson 05
    "sinusoidal_positional_encoding": (
        "Each pair of columns (2i, 2i+1) is one rotating clock with its own frequency: sin in the even "
        "column, cos in the odd one, at the angle p / 10000^(2i/d_model).",
        "Build positions (max_len, 1) and the even column indices 2i = torch.arange(0, d_model, 2), "
        "compute the angles by broadcasting to (max_len, d_model/2), then fill pe[:, 0::2] and "
        "pe[:, 1::2]. Check d_model is even first and raise ValueError if it is not.",
        "angle = torch.arange(max_len)[:, None] / 10000 ** (torch.arange(0, d_model, 2) / d_model)\n"
        "pe = torch.zeros(max_len, d_model); pe[:, 0::2] = angle.sin(); pe[:, 1::2] = angle.cos()",
    ),
    "embed_with_positions": (
        "Token embeddings are scaled up by sqrt(d_model) so they are not drowned by the positional "
        "table, then the positions of the first T tokens are added to every sequence.",
        "tokens is (B, T): the position table must be cut to its first T rows and broadcast over the "
        "batch axis, not added along it. D is the embedding's size (embedding.embedding_dim).",
        "D = embedding.embedding_dim\nreturn embedding(tokens) * math.sqrt(D) + pe[: tokens.shape[1]]",
    ),
    # lesson 06
    "causal_mask": (
        "Query i may look at keys j ≤ i, itself included: blocked (True) exactly where j > i, "
        "strictly above the diagonal.",
        "torch.triu keeps the upper triangle; its diagonal argument decides whether the main diagonal "
        "is kept (diagonal=0) or not (diagonal=1). Compare the T = 4 picture in the exercise.",
        "torch.ones(T, T, dtype=torch.bool).triu(1)   # or arange(T)[None, :] > arange(T)[:, None]",
    ),
    "padding_mask": (
        "The mask marks the positions nobody should attend to: the pads. It is True where the token "
        "is the pad token, whatever number that is.",
        "Compare the whole tensor with pad_id (the argument, not 0): the result is already a (B, S) "
        "bool tensor.",
        "tokens == pad_id",
    ),
    "scaled_dot_product_attention": (
        "Scores are dot products of queries with keys, divided by sqrt(d) so their spread does not grow "
        "with the head size; softmax over the *keys* turns each query's row into weights.",
        "q @ k.transpose(-2, -1) gives (..., T, S); divide by math.sqrt(q.shape[-1]). Fill blocked "
        "positions with -inf before the softmax over dim=-1; a fully blocked row gives NaN, which "
        "must become 0; then weights @ v.",
        "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "if attn_mask is not None: scores = scores.masked_fill(attn_mask, float('-inf'))\n"
        "weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)\nreturn weights @ v, weights",
    ),
    # lesson 07
    "split_heads": (
        "Splitting into heads cuts each token's D features into H consecutive chunks of D/H, then "
        "moves the head axis before time so each head is a separate attention problem.",
        "x.view(B, T, H, D // H) cuts the features; .transpose(1, 2) gives (B, H, T, D/H). Viewing "
        "straight to (B, H, T, D/H) mixes tokens between heads.",
        "B, T, D = x.shape\nreturn x.view(B, T, n_heads, D // n_heads).transpose(1, 2)",
    ),
    "merge_heads": (
        "Merging is the exact inverse of split_heads: put time back before the heads, then glue the "
        "heads' features side by side.",
        "x.transpose(1, 2) gives (B, T, H, dh); it is no longer contiguous, so use .reshape (or "
        ".contiguous().view) to get (B, T, H*dh).",
        "B, H, T, dh = x.shape\nreturn x.transpose(1, 2).reshape(B, T, H * dh)",
    ),
    "MultiHeadAttention": (
        "Multi-head attention = project q, k, v with their own Linear layers, split into heads, run "
        "scaled dot-product attention in every head at once, merge, and project once more.",
        "__init__: check d_model % n_heads == 0, create q_proj, k_proj, v_proj, out_proj as "
        "nn.Linear(d_model, d_model, bias=bias). forward: combine attn_mask (T, S) and "
        "key_padding_mask (B, S) → (B, 1, 1, S) into one blocked-mask broadcast to (B, H, T, S).",
        "q = split_heads(self.q_proj(query), H); k = …; v = …\n"
        "mask = key_padding_mask[:, None, None, :] (| attn_mask)\n"
        "out, w = scaled_dot_product_attention(q, k, v, mask)   # dropout on w when training\n"
        "out = self.out_proj(merge_heads(out))",
    ),
    # lesson 08
    "FeedForward": (
        "The feed-forward block works on every position separately: widen to d_ff, ReLU, narrow back "
        "to d_model.",
        "Create linear1 = nn.Linear(d_model, d_ff), linear2 = nn.Linear(d_ff, d_model) and an "
        "nn.Dropout(dropout) applied after the ReLU, as torch.nn.TransformerEncoderLayer does.",
        "return self.linear2(self.dropout(torch.relu(self.linear1(x))))",
    ),
    "EncoderLayer": (
        "An encoder layer is two residual sub-layers: self-attention, then the feed-forward network, "
        "each wrapped as in lesson 04 (post-LN or pre-LN).",
        "self_attn is a MultiHeadAttention (query = key = value = x, key_padding_mask = "
        "src_key_padding_mask); norm1 goes with attention, norm2 with ff; dropout on each sub-layer's "
        "output before it is added.",
        "if self.norm_first:\n    x = x + self._sa_block(self.norm1(x), mask); x = x + self._ff_block(self.norm2(x))\n"
        "else:\n    x = self.norm1(x + self._sa_block(x, mask)); x = self.norm2(x + self._ff_block(x))",
    ),
    "DecoderLayer": (
        "A decoder layer has three residual sub-layers: masked self-attention over what was generated "
        "so far, cross-attention to the encoder's memory, then the feed-forward network.",
        "Self-attention uses tgt_mask and tgt_key_padding_mask; cross-attention takes its queries from "
        "the decoder (y) and keys and values from memory, with memory_key_padding_mask. norm1, norm2, "
        "norm3 go with the three sub-layers in that order.",
        "post-LN:\n    y = self.norm1(y + sa(y)); y = self.norm2(y + ca(y, memory)); y = self.norm3(y + ff(y))\n"
        "pre-LN:\n    y = y + sa(self.norm1(y)); y = y + ca(self.norm2(y), memory); y = y + ff(self.norm3(y))",
    ),
    # lesson 09
    "noam_lr": (
        "The Noam schedule rises linearly during warm-up and then decays as 1/sqrt(step); the two "
        "branches meet at step = warmup_steps, where the rate peaks.",
        "lr = factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5). step 0 would divide by zero "
        "in step^-0.5: treat it as step 1 (max(step, 1)) so LambdaLR gets a finite number.",
        "step = max(step, 1)\n"
        "return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)",
    ),
    "teacher_forcing_batch": (
        "With teacher forcing the decoder reads the true target shifted right: at every position it "
        "sees the tokens so far (starting with BOS) and must predict the next one.",
        "Both outputs are (B, T-1): the input drops the last token, the labels drop the first (BOS).",
        "return tgt[:, :-1], tgt[:, 1:]",
    ),
    "label_smoothed_loss": (
        "Label smoothing takes `smoothing` of the probability mass off the true class and spreads it "
        "evenly over all V classes; rows whose target is ignore_index do not count at all.",
        "With logp = log_softmax(logits, -1): loss per row = (1 - ε)·(-logp[target]) + ε·(-logp.mean(-1)). "
        "Average over the rows that are not ignored (and gather with a safe index for the ignored ones).",
        "keep = target != ignore_index; logp = logits.log_softmax(-1)[keep]; t = target[keep]\n"
        "nll = -logp.gather(1, t[:, None]).squeeze(1); smooth = -logp.mean(-1)\n"
        "return ((1 - smoothing) * nll + smoothing * smooth).mean()",
    ),
    "greedy_decode": (
        "Greedy decoding encodes the source once, then repeatedly feeds the tokens generated so far "
        "(starting with BOS) to the decoder and appends the most likely next token.",
        "Use model.encode(src) once and model.decode(tgt_in, memory, src)[:, -1].argmax(-1) in a loop "
        "of at most max_len steps. Remember which rows have produced EOS: after that they get pad_id. "
        "Stop early when every row is finished; return the tokens without the BOS column.",
        "done = torch.zeros(B, dtype=torch.bool)\nfor _ in range(max_len):\n"
        "    nxt = model.decode(ys, memory, src)[:, -1].argmax(-1)\n"
        "    nxt = torch.where(done, pad_id, nxt); ys = torch.cat([ys, nxt[:, None]], 1)\n"
        "    done |= nxt == eos_id\n    if done.all(): break\nreturn ys[:, 1:]",
    ),
    # lesson 10
    "rms_norm": (
        "RMSNorm is layer norm without the centring and without beta: divide each token's features by their "
        "root mean square, then multiply by the per-feature weight.",
        "The statistic is over the last axis only: x.pow(2).mean(dim=-1, keepdim=True). eps goes inside the "
        "square root, as in lesson 03's layer norm.",
        "return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight",
    ),
    "apply_rope": (
        "Each pair of features (x[2i], x[2i+1]) is a point in the plane; the vector at position p turns each "
        "pair by the angle p·ω_i, with lesson 05's frequencies ω_i = base^(−2i/d).",
        "Build the angles as an outer product positions[:, None] * ω[None, :] of shape (T, d/2); take "
        "a = x[..., 0::2], b = x[..., 1::2]; the rotated pair is (a cos − b sin, a sin + b cos). Check d is even first.",
        "torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2) puts the pairs back in columns 2i, 2i+1.",
    ),
    "next_token_distribution": (
        "Filtering means setting the logits of dropped tokens to -inf before one final softmax, so kept tokens "
        "are renormalised automatically and dropped ones get exactly 0. Order: temperature, top-k, top-p.",
        "top-k: compare with the k-th largest value (scaled.topk(k).values[..., -1:]) so ties are kept. top-p: "
        "softmax what top-k left, sort descending, and keep a token while the mass *before* it is < top_p.",
        "keep_sorted = sorted_p.cumsum(-1) - sorted_p < top_p; map back with "
        "torch.zeros_like(keep).scatter(-1, order, keep_sorted); temperature 0 → F.one_hot(logits.argmax(-1), V).",
    ),
    "train_step": (
        "Next-token training scores position t on the token at t + 1: the model reads tokens[:, :-1] and the "
        "targets are tokens[:, 1:]. Pads are not targets.",
        "F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=pad_id); then the usual order: "
        "optimizer.zero_grad(), loss.backward(), clip, optimizer.step(), scheduler.step().",
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) between backward and optimizer.step(); "
        "return loss.item().",
    ),
    # lesson 11
    "attend_with_cache": (
        "The cache holds the keys and values of every earlier position; the new position adds its own, and its "
        "one query attends over all of them — no mask, because the cache contains only the past and itself.",
        "Concatenate on the time axis, dim 2: K = torch.cat([cache[0], k_new], dim=2) (or just k_new when cache "
        "is None); then softmax(q Kᵀ / sqrt(d)) over the last axis.",
        "weights = torch.softmax(q @ K.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1); return weights @ V, (K, V)",
    ),
    "online_softmax_attention": (
        "softmax(s)·v = Σ exp(s_j − m) v_j / Σ exp(s_j − m) for any m; keep the running max m, the running "
        "denominator l and the running numerator acc, and fix up old sums when m grows.",
        "Loop for start in range(0, S, block_size) with k[..., start:start + block_size, :] (the last block may be "
        "shorter). Start with m = -inf, l = 0, acc = 0 shaped (..., T, 1), (..., T, 1), (..., T, dv).",
        "m_new = torch.maximum(m, scores.amax(-1, keepdim=True)); c = torch.exp(m - m_new); p = torch.exp(scores - "
        "m_new); l = l * c + p.sum(-1, keepdim=True); acc = acc * c + p @ v_block; at the end return acc / l.",
    ),
}

_shown: dict[str, int] = {}


def resolve(exercise: str | float) -> str:
    """The exercise name from a name, ``6.3`` or ``"6.3"``."""
    from tfmcourse.checks._core import EXERCISES
    from tfmcourse.progress import exercise_number

    key = str(exercise).strip()
    if key in EXERCISES:
        return key
    for name in EXERCISES:
        if exercise_number(name) == key:
            return name
    raise KeyError(f"no exercise {exercise!r}: use a name such as 'causal_mask' or a number such as 6.1")


def next_hint(exercise: str | float) -> str:
    """The next hint of an exercise (the last one again once all have been shown)."""
    from tfmcourse.checks._display import _wrap

    name = resolve(exercise)
    hints = tuple("\n".join(_wrap(h)) for h in HINTS.get(name, ()))
    if not hints:
        return f"{name}: no hints for this exercise yet."
    i = _shown.get(name, 0)
    _shown[name] = i + 1
    if i >= len(hints):
        return f"Hint {len(hints)}/{len(hints)} for {name} (that was the last one):\n{hints[-1]}"
    more = " — run hint() again for the next one" if i + 1 < len(hints) else " (the last one)"
    return f"Hint {i + 1}/{len(hints)} for {name}{more}:\n{hints[i]}"


def hint(exercise: str | float) -> None:
    """Print the next hint of an exercise: ``hint("causal_mask")`` or ``hint(6.1)``."""
    print(next_hint(exercise))
