"""Tests of tfmcourse.data.brackets: generated sentences are valid, the judge is exact, encoding round-trips."""

import random

import pytest
import torch

from tfmcourse.data.brackets import BOS, EOS, PAD, BracketData, is_valid, random_sentence


@pytest.mark.parametrize("max_depth", [1, 2, 4])
def test_random_sentences_have_the_asked_length_and_depth(max_depth):
    rng = random.Random(0)
    for _ in range(300):
        n = 2 * rng.randint(1, 20)
        s = random_sentence(n, max_depth, rng)
        assert len(s) == n and is_valid(s, max_depth)


@pytest.mark.parametrize(
    "sentence, valid",
    [
        ("()", True),
        ("([]{})", True),
        ("([)]", False),
        ("(()", False),
        ("())", False),
        ("", False),
        ("((((()))))", False),
        ("(((())))", True),
        ("?", False),
        ("()…", False),
    ],
)
def test_is_valid_at_depth_four(sentence, valid):
    assert is_valid(sentence, 4) is valid


def test_batches_are_padded_sentences_that_decode_and_judge_valid():
    data = BracketData(min_len=4, max_len=12)
    batch = data.batch(64, seed=3)
    assert batch.shape == (64, 14) and (batch[:, 0] == BOS).all()
    assert ((batch == EOS).sum(1) == 1).all()
    assert data.judge(batch).all()
    assert all(4 <= len(data.decode(r)) <= 12 for r in batch)
    assert torch.equal(batch, data.batch(64, seed=3)) and not torch.equal(batch, data.batch(64, seed=4))


def test_judge_rejects_broken_and_unterminated_samples():
    data = BracketData()
    good = data.encode(["([])"])[0]
    crossed = data.encode(["([)]"])[0]
    no_eos = good.clone()
    no_eos[no_eos == EOS] = PAD
    special_inside = good.clone()
    special_inside[2] = BOS
    assert data.judge(torch.stack([good, crossed, no_eos, special_inside])).tolist() == [
        True,
        False,
        False,
        False,
    ]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="even"):
        random_sentence(5, 3, random.Random(0))
    with pytest.raises(ValueError, match="even lengths"):
        BracketData(min_len=3)
