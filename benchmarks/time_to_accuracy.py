"""Time to 99 % held-out exact match on the dates task: the course Transformer vs torch.nn's.

Both models have the same size and start from the same weights (``TorchTransformer`` builds
the course model and moves its encoder/decoder stacks into ``nn.TransformerEncoder`` /
``nn.TransformerDecoder``); they see the same batches with the same optimiser, warm-up
schedule and label-smoothed loss (the recipe of lesson 09). The clock counts training steps
only (wall clock, and the process's CPU time): evaluations (greedy decoding of held-out dates every ``--eval-every`` steps) are timed
separately and left out.

    .venv/bin/python benchmarks/time_to_accuracy.py            # about 1.5-3 minutes on 2 idle cores

Timings depend on the machine's load: the script prints the load average next to them.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from tfmcourse.data.dates import BOS, EOS, PAD, DateData, exact_match
from tfmcourse.decoding import greedy_decode, label_smoothed_loss, teacher_forcing_batch
from tfmcourse.schedule import noam_lr, peak_lr
from tfmcourse.torch_interop import TorchTransformer
from tfmcourse.train import count_parameters, train
from tfmcourse.transformer import Transformer, TransformerConfig


def held_out_accuracy(model, data: DateData, limit: int | None = None) -> float:
    correct = n = 0
    with torch.no_grad():
        for examples, src, tgt in data.test_batches(500, limit=limit):
            pred = greedy_decode(model, src, data.max_target_len, BOS, EOS, PAD)
            correct += int(exact_match(pred, tgt).sum())
            n += len(examples)
    return correct / n


def run(model_cls, config: TransformerConfig, data: DateData, args) -> dict:
    torch.manual_seed(args.seed)
    model = model_cls(config)
    opt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    factor = args.peak / peak_lr(
        config.d_model, args.warmup
    )  # lesson 09: the warm-up schedule peaking at --peak
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: noam_lr(step, config.d_model, args.warmup, factor)
    )
    eval_seconds = eval_cpu = 0.0

    def loss_fn(m, batch):
        src, tgt = batch
        decoder_input, labels = teacher_forcing_batch(tgt)
        logits = m.decode(decoder_input, m.encode(src), src)
        return label_smoothed_loss(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), args.smoothing, PAD
        )

    def evaluate(m):
        nonlocal eval_seconds, eval_cpu
        t0, c0 = time.perf_counter(), time.process_time()
        acc = held_out_accuracy(m, data, limit=args.eval_limit)
        if acc >= args.target:  # confirm on the whole held-out set before stopping
            acc = held_out_accuracy(m, data)
        eval_seconds += time.perf_counter() - t0
        eval_cpu += time.process_time() - c0
        return {"exact_match": acc}

    cpu0 = time.process_time()
    hist = train(
        model,
        lambda step: data.train_batch(step, args.batch),
        loss_fn,
        steps=args.max_steps,
        optimizer=opt,
        scheduler=sched,
        evaluate=evaluate,
        eval_every=args.eval_every,
        stop_when=lambda m: m["exact_match"] >= args.target,
        progress=not args.quiet,
        desc=model_cls.__name__,
        seed=args.seed,
    )
    cpu = time.process_time() - cpu0 - eval_cpu
    final = hist.evals[-1][1]["exact_match"]
    return {
        "name": model_cls.__name__,
        "params": count_parameters(model),
        "steps": hist.step[-1],
        "train_seconds": hist.seconds - eval_seconds,
        "cpu_seconds": cpu,
        "exact_match": final,
        "reached": final >= args.target,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--max-steps", type=int, default=4000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-limit", type=int, default=500, help="held-out examples checked every eval")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--peak", type=float, default=3e-3, help="peak learning rate (reached at step --warmup)")
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--encoder-layers", type=int, default=2)
    p.add_argument("--decoder-layers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = DateData(seed=0)
    config = TransformerConfig(
        len(data.src_vocab),
        len(data.tgt_vocab),
        d_model=args.d_model,
        n_heads=4,
        num_encoder_layers=args.encoder_layers,
        num_decoder_layers=args.decoder_layers,
        d_ff=2 * args.d_model,
        dropout=0.0,
        max_len=40,
        pad_id=PAD,
    )
    results = [run(cls, config, data, args) for cls in (Transformer, TorchTransformer)]
    print(
        f"\nTime to {args.target:.0%} held-out exact match on the dates task "
        f"(d_model {args.d_model}, {args.encoder_layers}+{args.decoder_layers} layers, batch {args.batch}, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"{'model':18s} {'parameters':>10s} {'steps':>6s} {'train s':>8s} {'CPU s':>7s} {'exact match':>12s}"
    )
    for r in results:
        flag = "" if r["reached"] else "  (target not reached)"
        print(
            f"{r['name']:18s} {r['params']:>10,d} {r['steps']:>6d} {r['train_seconds']:>8.1f} "
            f"{r['cpu_seconds']:>7.1f} {r['exact_match']:>12.2%}{flag}"
        )
    ours, theirs = results
    print(
        "(train s: wall-clock seconds of training steps, evaluations excluded; CPU s: the process's CPU time "
        "for the same, a figure less sensitive to other load)"
    )
    print(
        f"ratio course / torch: {ours['train_seconds'] / theirs['train_seconds']:.2f}× the seconds "
        f"({ours['cpu_seconds'] / theirs['cpu_seconds']:.2f}× CPU), "
        f"{ours['train_seconds'] / ours['steps'] / (theirs['train_seconds'] / theirs['steps']):.2f}× per step"
    )


if __name__ == "__main__":
    main()
