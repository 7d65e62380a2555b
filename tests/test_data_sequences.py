"""The reversal task of lessons 01-02: seeded, offline, no leakage of held-out lengths."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tfmcourse.data.sequences import (
    BOS,
    EOS,
    PAD,
    ReversalTask,
    Vocab,
    make_batch,
    pad_sequences,
    tokenize,
)


@pytest.fixture(scope="module")
def task():
    return ReversalTask()


def test_defaults_and_held_out_lengths(task):
    assert task.train_lengths == (3, 12)
    assert task.held_out_lengths == [13, 14, 15, 16]
    assert task.symbols == list("abcdefghij")
    assert task.vocab.itos[:3] == [PAD, BOS, EOS]


def test_targets_are_reversals(task):
    for src, tgt in task.pairs(200, seed=3):
        assert tgt == src[::-1]
        assert set(src) <= set(task.symbols)


def test_same_seed_same_data_other_seed_other_data(task):
    assert task.pairs(50, seed=7) == task.pairs(50, seed=7)
    assert task.pairs(50, seed=7) != task.pairs(50, seed=8)
    assert task.test_set(5) == task.test_set(5)


def test_golden_values_do_not_drift(task):
    """The data are part of the lessons' asserted results: they must not change silently."""
    assert task.pairs(1, seed=0)[0][0] == list("eeifbejefd")
    assert task.test_set(2)[3] == [(list("jaa"), list("aaj")), (list("dib"), list("bid"))]


def test_deterministic_across_processes():
    code = "from tfmcourse.data.sequences import ReversalTask; print(ReversalTask().pairs(3, seed=11))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(h)},
        ).stdout
        for h in (1, 2)
    }
    assert len(outs) == 1, "the data must not depend on the process (hash seed)"


def test_no_held_out_length_in_training_data(task):
    lengths = {len(src) for src, _ in task.pairs(5000, seed=0)}
    assert lengths == set(range(3, 13)), "every trained length appears, and nothing else"
    assert not lengths & set(task.held_out_lengths)
    # the training batches train_reversal draws use the same generator with other seeds
    for seed in range(0, 3_000_000, 1_000_003):
        assert max(len(s) for s, _ in task.pairs(64, seed=seed)) <= task.train_lengths[1]


def test_test_set_covers_trained_and_held_out_lengths(task):
    test = task.test_set(per_length=4)
    assert sorted(test) == list(range(3, 17))
    for L, pairs in test.items():
        assert len(pairs) == 4 and all(len(s) == L and t == s[::-1] for s, t in pairs)


def test_test_set_is_not_the_training_data(task):
    train = {tuple(s) for s, _ in task.pairs(5000, seed=0)}
    long_test = [tuple(s) for L in range(8, 13) for s, _ in task.test_set(50)[L]]
    overlap = sum(s in train for s in long_test)
    assert overlap <= 1, f"{overlap} long test sources also appear in training"


def test_custom_lengths_and_validation():
    t = ReversalTask(n_symbols=4, train_lengths=(2, 5), max_test_length=7)
    assert t.held_out_lengths == [6, 7]
    assert {len(s) for s, _ in t.pairs(300, seed=1, lengths=(4, 4))} == {4}
    with pytest.raises(ValueError, match="train_lengths"):
        ReversalTask(train_lengths=(5, 3))
    with pytest.raises(ValueError, match="max_test_length"):
        ReversalTask(train_lengths=(3, 12), max_test_length=10)
    with pytest.raises(ValueError, match="n_symbols"):
        ReversalTask(n_symbols=1)
    with pytest.raises(ValueError, match="lengths"):
        t.pairs(3, lengths=(0, 2))


def test_tokenize():
    assert tokenize("c a f") == ["c", "a", "f"]
    assert tokenize("caf") == ["c", "a", "f"]
    assert tokenize("  ab ") == ["a", "b"]
    with pytest.raises(TypeError):
        tokenize(["a"])


def test_vocab_roundtrip_and_errors():
    v = Vocab(["x", "y", "z"])
    assert len(v) == 6 and (v.pad_id, v.bos_id, v.eos_id) == (0, 1, 2)
    ids = v.encode(["z", "x"])
    assert ids == [5, 3]
    assert v.decode([1] + ids + [2, 4, 0]) == ["z", "x"], "decode drops BOS and stops at EOS"
    assert v.decode(torch.tensor(ids)) == ["z", "x"]
    with pytest.raises(KeyError, match="unknown symbol"):
        v.encode(["w"])
    with pytest.raises(ValueError, match="distinct"):
        Vocab(["x", "x"])
    with pytest.raises(ValueError, match="reserved"):
        Vocab([EOS])


def test_pad_sequences():
    padded, lengths = pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0]] and padded.dtype == torch.long
    assert lengths.tolist() == [3, 1]
    padded, _ = pad_sequences([[5]], pad_id=9, length=3)
    assert padded.tolist() == [[5, 9, 9]]
    with pytest.raises(ValueError, match="does not fit"):
        pad_sequences([[1, 2, 3]], pad_id=0, length=2)
    with pytest.raises(ValueError, match="at least one"):
        pad_sequences([], pad_id=0)


def test_make_batch_teacher_forcing_layout(task):
    pairs = task.pairs(6, seed=2)
    b = make_batch(pairs, task.vocab)
    B = len(pairs)
    S = max(len(s) for s, _ in pairs)
    assert b.src.shape == (B, S) and b.tgt_in.shape == b.tgt_out.shape == (B, S + 1)
    v = task.vocab
    for i, (src, tgt) in enumerate(pairs):
        n = len(src)
        assert b.src_lengths[i] == n
        assert v.decode(b.src[i]) == src and (b.src[i, n:] == v.pad_id).all()
        assert b.tgt_in[i, 0] == v.bos_id and v.decode(b.tgt_in[i]) == tgt
        assert b.tgt_out[i, n] == v.eos_id and v.decode(b.tgt_out[i]) == tgt
        assert torch.equal(b.tgt_in[i, 1 : n + 1], b.tgt_out[i, :n]), "tgt_out is tgt_in shifted by one"
