"""Lessons 01-02's runner: seeded training on reversal, accuracy by length, context sensitivity."""

import pytest
import torch

from tfmcourse.data.sequences import ReversalTask, make_batch
from tfmcourse.experiments import lesson01
from tfmcourse.seq2seq import Seq2Seq

TASK = ReversalTask()


def _batch(seed=0, n=5):
    return make_batch(TASK.pairs(n, seed=seed), TASK.vocab)


def test_context_sensitivity_shape_and_validation():
    torch.manual_seed(0)
    model = Seq2Seq(len(TASK.vocab), hidden_size=16)
    b = make_batch(TASK.pairs(4, seed=1, lengths=(6, 6)), TASK.vocab)
    s = lesson01.context_sensitivity(model, b.src, b.src_lengths)
    assert s.shape == (6,) and (s > 0).all()
    assert s[0] < s[-1], "an untrained GRU's context is far more sensitive to the last token"
    mixed = _batch()
    with pytest.raises(ValueError, match="one length"):
        lesson01.context_sensitivity(model, mixed.src, mixed.src_lengths)


def test_train_reversal_is_seeded_and_measures_every_length():
    small = ReversalTask(n_symbols=4, train_lengths=(2, 4), max_test_length=6)
    runs = [
        lesson01.train_reversal(
            kind, hidden_size=8, emb_size=4, task=small, steps=15, batch_size=8, per_length=4, progress=False
        )
        for kind in (None, None, "additive")
    ]
    assert runs[0].history.loss == runs[1].history.loss, "same seed, same run"
    for exp in runs:
        assert exp.lengths == [2, 3, 4, 5, 6] and all(0 <= a <= 1 for a in exp.curve())
        assert len(exp.history.loss) == 15
    assert runs[2].model.kind == "additive"


@pytest.mark.slow
def test_attention_beats_fixed_context_at_the_longest_trained_length():
    """The lesson 02 claim, at lesson size (a few seconds per model)."""
    fixed = lesson01.train_reversal(None, progress=False)
    attn = lesson01.train_reversal("additive", bidirectional=True, progress=False)
    assert attn.accuracy[12] >= fixed.accuracy[12] + 0.3
    assert fixed.accuracy[3] - fixed.accuracy[12] >= 0.3
