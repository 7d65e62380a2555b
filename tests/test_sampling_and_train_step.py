"""Tests of next_token_distribution / sample (tfmcourse.decoding) and train_step (tfmcourse.train)."""

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.decoding import next_token_distribution, sample
from tfmcourse.train import train_step


def test_no_filter_is_softmax_of_logits_over_temperature():
    logits = torch.randn(3, 9)
    torch.testing.assert_close(next_token_distribution(logits, 0.7), torch.softmax(logits / 0.7, -1))


def test_top_k_keeps_ties_and_top_k_at_least_v_keeps_all():
    logits = torch.tensor([[3.0, 2.0, 2.0, 1.0, 0.0]])
    p = next_token_distribution(logits, top_k=2)
    assert (p[0, :3] > 0).all() and (p[0, 3:] == 0).all()
    torch.testing.assert_close(next_token_distribution(logits, top_k=9), torch.softmax(logits, -1))


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    p = next_token_distribution(logits, top_p=0.7)  # 0.5 < 0.7 <= 0.8: two tokens
    torch.testing.assert_close(p, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    p = next_token_distribution(logits, top_p=0.5)  # the first token alone reaches 0.5
    torch.testing.assert_close(p, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(next_token_distribution(logits, top_p=1.0), probs)


def test_top_p_applies_to_what_top_k_left():
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    # after top_k=2: (4/7, 3/7); top_p=0.5 keeps only the first
    assert torch.equal(
        next_token_distribution(logits, top_k=2, top_p=0.5) > 0, torch.tensor([[True, False, False, False]])
    )


def test_temperature_zero_is_greedy_with_lowest_index_on_ties():
    logits = torch.tensor([[1.0, 5.0, 5.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(next_token_distribution(logits, 0.0), torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0]]))


@pytest.mark.parametrize(
    "kwargs", [dict(top_k=0), dict(top_p=0.0), dict(top_p=1.2), dict(temperature=-0.5)], ids=str
)
def test_bad_sampling_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        next_token_distribution(torch.zeros(1, 4), **kwargs)


class _Counter(torch.nn.Module):
    """Always predicts (previous token + 1) mod V, with EOS = 3 after token 2."""

    def forward(self, tokens):
        return F.one_hot((tokens + 1) % 5, 5).float() * 50


def test_sample_stops_at_eos_and_pads_after_it():
    out = sample(_Counter(), torch.tensor([[0], [1]]), 6, eos_id=3, pad_id=4, temperature=0.5)
    assert out.tolist() == [[1, 2, 3, 4, 4, 4], [2, 3, 4, 4, 4, 4]]


class _Bigram(torch.nn.Module):
    def __init__(self, V=7):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(V, V) * 0.1)

    def forward(self, tokens):
        return self.table[tokens]


def test_train_step_equals_a_hand_written_step_and_returns_the_loss_before_it():
    torch.manual_seed(0)
    a, b = _Bigram(), _Bigram()
    b.load_state_dict(a.state_dict())
    tokens = torch.tensor([[1, 2, 3, 4, 0, 0], [2, 5, 6, 1, 3, 4]])
    opts = [torch.optim.SGD(m.parameters(), lr=0.3) for m in (a, b)]
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: 0.5**s) for o in opts]
    loss = train_step(a, opts[0], scheds[0], tokens, pad_id=0, max_grad_norm=0.1)
    logits = b(tokens[:, :-1])
    ref = F.cross_entropy(logits.reshape(-1, 7), tokens[:, 1:].reshape(-1), ignore_index=0)
    ref.backward()
    torch.nn.utils.clip_grad_norm_(b.parameters(), 0.1)
    opts[1].step()
    assert isinstance(loss, float) and loss == pytest.approx(ref.item())
    torch.testing.assert_close(a.table, b.table)
    assert opts[0].param_groups[0]["lr"] == pytest.approx(0.15), (
        "the scheduler stepped once, after the optimizer"
    )


def test_train_step_lowers_the_loss_on_a_repeated_batch():
    torch.manual_seed(0)
    m = _Bigram()
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    tokens = (torch.arange(12) + torch.arange(8)[:, None]) % 6 + 1  # a deterministic successor: learnable
    losses = [train_step(m, opt, None, tokens, pad_id=0) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
