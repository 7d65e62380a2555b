"""Lessons 01-02's experiments: train seq2seq models on reversal and measure them by source length.

Lesson 01 trains the fixed-context model and probes how much each source
token still moves its context vector; lesson 02 trains the attention models
with the same runner, so the curves of the two lessons compare like for like.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tfmcourse.data.sequences import Batch, ReversalTask, Vocab, make_batch
from tfmcourse.seq2seq import Seq2Seq
from tfmcourse.train import History, one_thread, train


def sequence_loss(model: Seq2Seq, batch: Batch) -> Tensor:
    """Teacher-forced cross-entropy over the real target tokens (pads ignored)."""
    logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=model.pad_id
    )


@torch.no_grad()
def token_accuracy(model: Seq2Seq, pairs, vocab: Vocab) -> float:
    """Greedy-decoding token accuracy: the share of target tokens (EOS included) produced in place."""
    batch = make_batch(pairs, vocab)
    T = batch.tgt_out.shape[1]
    pred, _ = model.greedy_decode(batch.src, batch.src_lengths, max_len=T)
    pred = F.pad(pred, (0, T - pred.shape[1]), value=model.pad_id)  # (B, T)
    real = batch.tgt_out != vocab.pad_id
    return float(((pred == batch.tgt_out) & real).sum() / real.sum())


def accuracy_by_length(model: Seq2Seq, test_set: dict[int, list], vocab: Vocab) -> dict[int, float]:
    """``{source length: token accuracy}`` under greedy decoding."""
    was = model.training
    model.eval()
    out = {L: token_accuracy(model, pairs, vocab) for L, pairs in sorted(test_set.items())}
    model.train(was)
    return out


@dataclass
class Experiment:
    """A trained model with its loss history and its accuracy by source length."""

    model: Seq2Seq
    history: History
    accuracy: dict[int, float]
    task: ReversalTask

    @property
    def lengths(self) -> list[int]:
        return sorted(self.accuracy)

    def curve(self) -> list[float]:
        return [self.accuracy[L] for L in self.lengths]

    def mean_accuracy(self, lengths) -> float:
        return sum(self.accuracy[L] for L in lengths) / len(lengths)


def train_reversal(
    attention: str | None = None,
    *,
    hidden_size: int = 32,
    emb_size: int = 16,
    bidirectional: bool = False,
    task: ReversalTask | None = None,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    per_length: int = 64,
    progress: bool = True,
    desc: str | None = None,
) -> Experiment:
    """Train a fixed-context (``attention=None``) or attention model on reversal; measure it by length.

    Training data are fresh seeded batches with lengths in ``task.train_lengths``
    only; the accuracy is measured on ``task.test_set(per_length)``, which also
    has the held-out longer lengths. Both kinds get the same unidirectional
    encoder by default, so the context is the only difference
    (Bahdanau et al.'s RNNsearch used ``bidirectional=True``).
    """

    task = task or ReversalTask()
    torch.manual_seed(seed)
    model = Seq2Seq(
        len(task.vocab),
        emb_size=emb_size,
        hidden_size=hidden_size,
        attention=attention,
        bidirectional=bidirectional,
        pad_id=task.vocab.pad_id,
        bos_id=task.vocab.bos_id,
        eos_id=task.vocab.eos_id,
    )

    def batches(step: int) -> Batch:
        return make_batch(task.pairs(batch_size, seed=seed * 1_000_003 + step), task.vocab)

    label = desc or f"{attention or 'fixed context'}, hidden {hidden_size}"
    with one_thread():
        history = train(
            model, batches, sequence_loss, steps=steps, lr=lr, seed=seed, progress=progress, desc=label
        )
        accuracy = accuracy_by_length(model, task.test_set(per_length), task.vocab)
    return Experiment(model, history, accuracy, task)


def context_sensitivity(model: Seq2Seq, src: Tensor, src_lengths: Tensor) -> Tensor:
    """How much the fixed context moves when one source token's embedding moves.

    For every position ``j``, the Frobenius norm of the Jacobian
    ``∂ h_final / ∂ emb(x_j)``, averaged over the batch. All sources must
    have the same length (so position ``j`` means the same thing in each).

    Shape:
        src ``(B, S)``, src_lengths ``(B,)`` all equal to ``S``; returns ``(S,)``.
    """
    if not bool((src_lengths == src.shape[1]).all()):
        raise ValueError("context_sensitivity: use sources of one length, unpadded")
    was = model.training
    model.eval()
    with one_thread():
        emb = model.encoder.embedding(src).detach().requires_grad_(True)  # (B, S, E)
        final = model.encode(src, src_lengths, embedded=emb).final  # (B, H)
        sq = torch.zeros(src.shape, dtype=emb.dtype)  # (B, S): Σ_k ||∂final_k/∂emb_j||²
        for k in range(final.shape[1]):
            (g,) = torch.autograd.grad(final[:, k].sum(), emb, retain_graph=True)  # (B, S, E)
            sq += g.pow(2).sum(-1)
    model.train(was)
    return sq.sqrt().mean(0)  # (S,)
