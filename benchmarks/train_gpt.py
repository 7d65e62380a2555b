"""Time training lesson 10's GPT to the quality the lesson asserts.

    .venv/bin/python benchmarks/train_gpt.py [--seeds 0 1 2]

The lesson's model and recipe (2 layers, d_model 48, AdamW 3e-3, 30-step warm-up then a
constant rate, batches of 32 fresh bracket sentences, ``train_step``), trained for 300 steps on one
thread. Reports per seed the wall time, the held-out bits per token before and after, and
the share of valid samples at temperature 1 — the lesson asserts that the bits at least
halve and that more than half of the samples are valid.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from tfmcourse.data.brackets import BOS, EOS, PAD, BracketData
from tfmcourse.decoding import sample
from tfmcourse.gpt import GPT, GPTConfig
from tfmcourse.train import next_token_loss, one_thread, train_step


def run(seed: int, steps: int = 300) -> tuple[float, float, float, float]:
    data = BracketData(max_len=24, max_depth=4)
    held_out = data.batch(400, seed=10**6)
    torch.manual_seed(seed)
    model = GPT(
        GPTConfig(vocab_size=data.vocab_size, d_model=48, n_heads=4, d_ff=128, num_layers=2, max_len=64)
    )

    def bits() -> float:
        model.eval()
        with torch.no_grad():
            return next_token_loss(model, held_out, PAD).item() / math.log(2)

    before = bits()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30))
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        train_step(model, opt, sched, data.batch(32, seed=seed * 100_000 + step), PAD)
    seconds = time.perf_counter() - start
    after = bits()
    with torch.no_grad():
        out = sample(
            model,
            torch.full((300, 1), BOS),
            data.seq_len,
            eos_id=EOS,
            pad_id=PAD,
            generator=torch.Generator().manual_seed(1),
        )
    return seconds, before, after, data.judge(out).float().mean().item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(
        "| seed | training time (s) | held-out bits before | after | valid samples |\n|---:|---:|---:|---:|---:|"
    )
    ok = True
    with one_thread():
        for seed in args.seeds:
            seconds, before, after, valid = run(seed)
            ok &= before > 2 * after and valid > 0.5
            print(f"| {seed} | {seconds:.1f} | {before:.2f} | {after:.2f} | {valid:.0%} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
