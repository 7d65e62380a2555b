"""Tokens per second of greedy generation with and without the KV cache (lesson 11).

    .venv/bin/python benchmarks/kv_cache.py [--threads N] [--repeats R] [--cpu-time] [--lesson-only]

Lesson 11's model — lesson 10's GPT (2 layers, d_model 48, 4 heads, d_ff 128, RoPE), with
``max_len`` 600 so it can generate 512 tokens; untrained weights: speed does not depend on
them — and a wider one (6 layers, d_model 256, d_ff 1024), batch 1, generating 32 … 512
tokens after a one-token prompt. Recomputing runs the model's full forward on the whole
prefix at every step; the cache feeds one token per step through ``GPT.forward_step``. Both
go through :func:`tfmcourse.inference.generate` (the same ``inference_mode``, the same
thread setting). Like the lessons, it runs torch on one thread by default (``--threads 2``
to compare). Each figure is the median of ``R`` runs; the machine's load average is printed
before and after, since other work on the machine slows both. On a busy machine wall-clock
figures swing both ways; ``--cpu-time`` divides by the CPU seconds the process used instead
(on one thread: the time it actually ran, not the time it waited for a core). Prints a
Markdown table with the ratio; the target is at least 5× at 256 tokens for the lesson's model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from tfmcourse.data.brackets import BOS, BracketData
from tfmcourse.gpt import GPT, GPTConfig
from tfmcourse.inference import generate

LENGTHS = (32, 64, 128, 256, 512)


def tokens_per_second(
    model: GPT, n_new: int, use_cache: bool, repeats: int, clock=time.perf_counter
) -> float:
    prompt = torch.full((1, 1), BOS)
    seconds = []
    for _ in range(repeats):
        start = clock()
        generate(model, prompt, n_new, use_cache=use_cache)
        seconds.append(clock() - start)
    return n_new / statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the lessons)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure; the median is reported")
    parser.add_argument("--cpu-time", action="store_true", help="tokens per CPU second instead of per second")
    parser.add_argument("--lesson-only", action="store_true", help="only the lesson's model")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    torch.set_num_threads(args.threads)
    data = BracketData(max_len=24, max_depth=4)  # lesson 10's data: its vocabulary
    lesson = GPTConfig(vocab_size=data.vocab_size, d_model=48, n_heads=4, d_ff=128, num_layers=2, max_len=600)
    models = {
        "lesson 11 (d 48, 2 layers)": lesson,
        "wider (d 256, 6 layers)": lesson.replace(d_model=256, d_ff=1024, num_layers=6),
    }
    if args.lesson_only:
        models = dict(list(models.items())[:1])
    unit = "tokens per CPU second" if args.cpu_time else "tokens per second (wall clock)"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {unit}, median of {args.repeats} runs"
    )
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("\n| model | generated tokens | recompute (tok/s) | KV cache (tok/s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    ratios = {}
    for name, cfg in models.items():
        torch.manual_seed(0)
        model = GPT(cfg).eval()
        generate(model, torch.full((1, 1), BOS), 8)  # warm up
        for n in LENGTHS:
            slow = tokens_per_second(model, n, use_cache=False, repeats=args.repeats, clock=clock)
            fast = tokens_per_second(model, n, use_cache=True, repeats=args.repeats, clock=clock)
            ratios[name, n] = fast / slow
            print(f"| {name} | {n} | {slow:,.0f} | {fast:,.0f} | {ratios[name, n]:.1f}× |", flush=True)
    print("\nload average (1, 5, 15 min) after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0 if ratios[next(iter(models)), 256] >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
