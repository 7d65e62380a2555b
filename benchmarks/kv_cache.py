"""Tokens per second of greedy generation with and without the KV cache (lesson 11).

    .venv/bin/python benchmarks/kv_cache.py

Lesson 10's model (2 layers, d_model 48, 4 heads, RoPE; untrained weights: speed does not
depend on them) and a wider one (6 layers, d_model 256), batch 1, generating 32 … 512 tokens
after a one-token prompt, recomputing the whole prefix at every step vs feeding one token
through ``GPT.forward_step``. Each figure is the best of a few runs (the least disturbed by
other work on the machine). Prints a Markdown table with the ratio; the target is at least
5× at 256 tokens. For the small model the fixed cost of each call (Python, many small
operations) is a large share of a cached step, which caps its speed-up.
"""

from __future__ import annotations

import math
import sys
import time

import torch

from tfmcourse.data.brackets import BOS, BracketData
from tfmcourse.gpt import GPT, GPTConfig
from tfmcourse.inference import generate


def tokens_per_second(model, n_new: int, use_cache: bool, repeats: int) -> float:
    prompt = torch.full((1, 1), BOS)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        generate(model, prompt, n_new, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return n_new / best


def main() -> int:
    data = BracketData()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| model | generated tokens | recompute (tok/s) | KV cache (tok/s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    ratios = {}
    models = (("lesson 10 (d 48, 2 layers)", 48, 2, 128), ("wider (d 256, 6 layers)", 256, 6, 1024))
    for name, d, layers, d_ff in models:
        torch.manual_seed(0)
        cfg = GPTConfig(
            vocab_size=data.vocab_size, d_model=d, n_heads=4, d_ff=d_ff, num_layers=layers, max_len=600
        )
        model = GPT(cfg).eval()
        for n in (32, 64, 128, 256, 512):
            repeats = 5 if n <= 128 else 2
            slow = tokens_per_second(model, n, use_cache=False, repeats=repeats)
            fast = tokens_per_second(model, n, use_cache=True, repeats=repeats)
            ratios[name, n] = fast / slow
            print(f"| {name} | {n} | {slow:,.0f} | {fast:,.0f} | {ratios[name, n]:.1f}× |", flush=True)
    return 0 if ratios[models[0][0], 256] >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
