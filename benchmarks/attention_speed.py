"""Time the course's reference attention against PyTorch's built-ins on the same inputs.

    .venv/bin/python benchmarks/attention_speed.py

Prints, for a few sizes, the median time of tfmcourse.attention.scaled_dot_product_attention
vs torch.nn.functional.scaled_dot_product_attention, and of tfmcourse's MultiHeadAttention vs
torch.nn.MultiheadAttention (same weights), with their ratio. The reference is written to be
read, not to be fast; the ratio says what that clarity costs.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torch.nn.functional as F

from tfmcourse.attention import MultiHeadAttention, scaled_dot_product_attention
from tfmcourse.masks import causal_mask
from tfmcourse.torch_interop import load_from_torch


def median_time(fn, repeat: int = 30) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| operation | B, H, T, d | reference (ms) | torch (ms) | ratio |\n|---|---|---:|---:|---:|")
    with torch.inference_mode():
        for B, H, T, d in [(8, 4, 32, 32), (8, 4, 128, 32), (4, 8, 256, 16)]:
            q, k, v = (torch.randn(B, H, T, d) for _ in range(3))
            mask = causal_mask(T)
            ours = median_time(lambda: scaled_dot_product_attention(q, k, v, attn_mask=mask))
            theirs = median_time(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=~mask))
            print(
                f"| scaled dot-product, causal | {B}, {H}, {T}, {d} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {ours / theirs:.2f} |"
            )
        for B, H, T, D in [(8, 4, 32, 128), (8, 4, 128, 128)]:
            ref = torch.nn.MultiheadAttention(D, H, batch_first=True).eval()
            mine = load_from_torch(MultiHeadAttention(D, H), ref).eval()
            x = torch.randn(B, T, D)
            mask = causal_mask(T)
            ours = median_time(lambda: mine(x, x, x, attn_mask=mask))
            theirs = median_time(lambda: ref(x, x, x, attn_mask=mask, need_weights=False))
            print(
                f"| multi-head attention, causal | {B}, {H}, {T}, {D // H} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {ours / theirs:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
